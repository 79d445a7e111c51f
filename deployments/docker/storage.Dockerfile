# syntax=docker/dockerfile:1
# mu-storage, the storage: the stacks' object boxes and function binaries over S3
#
# Build from the repository root (the build context is the whole workspace):
#   docker build -f deployments/docker/storage.Dockerfile -t ghcr.io/muprotocol/mu-storage:dev .
# Run: docker run ghcr.io/muprotocol/mu-storage:dev --config /etc/mu/storage.yaml (see deployments/README.md).
# CGO_ENABLED=0: a static binary, so the final image needs no libc.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# The workspace (go.work) ties every module together, so the build resolves the repository's
# own modules from the source tree. GOTOOLCHAIN=local: build with the image's Go, never download one.
ENV GOWORK=/src/go.work GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# Module files first: this layer, and the download, are reused until a go.mod or go.sum changes.
COPY go.work go.work.sum ./
COPY libs/go.mod libs/go.sum libs/
COPY libs/fnproto/go.mod libs/fnproto/
COPY proto/go.mod proto/go.sum proto/
COPY sdk/go/go.mod sdk/go/
COPY services/runtime/go.mod services/runtime/go.sum services/runtime/
COPY services/gateway/go.mod services/gateway/go.sum services/gateway/
COPY services/mudb/go.mod services/mudb/go.sum services/mudb/
COPY services/storage/go.mod services/storage/go.sum services/storage/
COPY services/chain-indexer/go.mod services/chain-indexer/go.sum services/chain-indexer/
COPY services/billing/go.mod services/billing/go.sum services/billing/
COPY region/go.mod region/go.sum region/
COPY cli/go.mod cli/go.sum cli/
COPY bench/go.mod bench/go.sum bench/
COPY examples/go.mod examples/go.sum examples/
RUN --mount=type=cache,target=/root/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/mu-storage ./services/storage/cmd/mu-storage
# The state directory, owned by the nonroot user: a volume mounted on /var/lib/mu starts with
# this owner (docker copies it into an empty named volume), so the service can write there.
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
# The repository has no LICENSE file yet: pass --build-arg LICENSE=<SPDX id> once it has one.
ARG LICENSE=NOASSERTION
LABEL org.opencontainers.image.source="https://github.com/muprotocol/mu" \
      org.opencontainers.image.title="mu-storage" \
      org.opencontainers.image.description="mu storage: the stacks' object boxes and function binaries over S3" \
      org.opencontainers.image.licenses="${LICENSE}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/mu-storage /mu-storage
COPY --from=build --chown=65532:65532 /out/state /var/lib/mu
USER 65532:65532
# http 8080 (uploads, public reads, signed URLs), grpc 9090, admin 9091 (/metrics /healthz /readyz)
EXPOSE 8080/tcp 9090/tcp 9091/tcp
ENTRYPOINT ["/mu-storage"]
