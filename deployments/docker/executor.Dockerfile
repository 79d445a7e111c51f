# syntax=docker/dockerfile:1
# mu-executor, the executor: a gateway, a runtime, muDB and storage in one process, for providers without Kubernetes
#
# Build from the repository root (the build context is the whole workspace):
#   docker build -f deployments/docker/executor.Dockerfile -t ghcr.io/muprotocol/mu-executor:dev .
# Run: docker run ghcr.io/muprotocol/mu-executor:dev --config /etc/mu/executor.yaml (see deployments/README.md).
# CGO_ENABLED=1: mu-executor links wasmtime through cgo (wasmtime-go ships a static libwasmtime.a;
# the binary still needs glibc, libm and libgcc_s at run time, which distroless/cc has).

FROM golang:1.26-bookworm AS build
WORKDIR /src
# The workspace (go.work) ties every module together, so the build resolves the repository's
# own modules from the source tree. GOTOOLCHAIN=local: build with the image's Go, never download one.
ENV GOWORK=/src/go.work GOTOOLCHAIN=local CGO_ENABLED=1 GOFLAGS=-buildvcs=false

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
    go build -trimpath -ldflags="-s -w" -o /out/mu-executor ./region/cmd/mu-executor
# The state directory, owned by the nonroot user: a volume mounted on /var/lib/mu starts with
# this owner (docker copies it into an empty named volume), so the service can write there.
RUN mkdir -p /out/state

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=dev
# The repository has no LICENSE file yet: pass --build-arg LICENSE=<SPDX id> once it has one.
ARG LICENSE=NOASSERTION
LABEL org.opencontainers.image.source="https://github.com/muprotocol/mu" \
      org.opencontainers.image.title="mu-executor" \
      org.opencontainers.image.description="mu executor: a gateway, a runtime, muDB and storage in one process, for providers without Kubernetes" \
      org.opencontainers.image.licenses="${LICENSE}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/mu-executor /mu-executor
COPY --from=build --chown=65532:65532 /out/state /var/lib/mu
USER 65532:65532
# ports of deployments/config/executor.yaml: gateway http 8080, storage http 8081, executor grpc 9090 / admin 9091, gateway grpc 9100, runtime grpc 9110, muDB grpc 9120, storage grpc 9130, gossip 7946 (runtime) and 7947 (gateway) tcp+udp
EXPOSE 8080/tcp 8081/tcp 9090/tcp 9091/tcp 9100/tcp 9110/tcp 9120/tcp 9130/tcp 7946/tcp 7946/udp 7947/tcp 7947/udp
ENTRYPOINT ["/mu-executor"]
