#!/usr/bin/env bash
# scripts/proto.sh — build tooling for the protobuf APIs in proto/.
#
# Usage: scripts/proto.sh <command>
#   tools      install the pinned buf, protoc-gen-go and protoc-gen-go-grpc into .tmp/bin
#   generate   regenerate the Go code beside every .proto file (make proto)
#   lint       buf lint plus a buf format check (make proto-lint)
#   format     rewrite the .proto files in buf's canonical format
#   breaking   compare against a git ref (default: main) with the WIRE_JSON rules
#
# The tools are installed with `GOBIN=.tmp/bin go install module@version`, so they are built by the
# local Go toolchain at exactly the versions pinned below and never come from $PATH. An install is
# skipped when the binary in .tmp/bin already reports the pinned module version.
set -euo pipefail

# Pinned tool versions. protoc-gen-go must match google.golang.org/protobuf in proto/go.mod.
BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/.tmp/bin"
PROTO_DIR="${ROOT}/proto"

# Scratch directory of `generate`, removed on exit whatever happens.
GEN_OUT=""
trap '[[ -z "${GEN_OUT}" ]] || rm -rf "${GEN_OUT}"' EXIT

log() { printf 'proto.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# install_tool NAME MODULE PACKAGE VERSION: go install PACKAGE@VERSION into $BIN unless the binary
# there was already built from MODULE at VERSION (read back with `go version -m`).
install_tool() {
	local name="$1" module="$2" pkg="$3" version="$4"
	local bin="${BIN}/${name}"
	if [[ -x "${bin}" ]]; then
		local have
		have="$(go version -m "${bin}" 2>/dev/null | awk -v m="${module}" '$1 == "mod" && $2 == m { print $3 }')"
		if [[ "${have}" == "${version}" ]]; then
			return 0
		fi
		log "${name}: have ${have:-unknown}, want ${version}"
	fi
	log "installing ${pkg}@${version}"
	mkdir -p "${BIN}"
	# Outside any module: go install pkg@version ignores go.work and the repo's go.mod files.
	(cd "${ROOT}/.tmp" && GOWORK=off GOFLAGS=-mod=mod GOBIN="${BIN}" go install "${pkg}@${version}")
}

tools() {
	command -v go >/dev/null || die "go is not on PATH"
	mkdir -p "${ROOT}/.tmp"
	install_tool buf github.com/bufbuild/buf github.com/bufbuild/buf/cmd/buf "${BUF_VERSION}"
	install_tool protoc-gen-go google.golang.org/protobuf google.golang.org/protobuf/cmd/protoc-gen-go "${PROTOC_GEN_GO_VERSION}"
	install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "${PROTOC_GEN_GO_GRPC_VERSION}"
}

# buf runs with .tmp/bin first on PATH so buf.gen.yaml's `local:` plugins resolve to the pinned ones,
# and with its cache under .tmp so it never writes to $HOME.
run_buf() {
	(cd "${PROTO_DIR}" && PATH="${BIN}:${PATH}" BUF_CACHE_DIR="${ROOT}/.tmp/buf-cache" "${BIN}/buf" "$@")
}

# generate writes into a scratch directory first and then syncs proto/mu: files whose content did not
# change are left untouched, generated files whose .proto is gone are removed, and a failed generation
# leaves the committed code as it was.
generate() {
	tools
	GEN_OUT="$(mktemp -d "${ROOT}/.tmp/gen.XXXXXX")"
	local out="${GEN_OUT}" f rel
	run_buf generate --output "${out}"
	while IFS= read -r -d '' f; do
		rel="${f#"${out}"/}"
		if ! cmp -s "${f}" "${PROTO_DIR}/${rel}"; then
			mkdir -p "$(dirname "${PROTO_DIR}/${rel}")"
			# Replace by rename so a concurrent go build never reads a half-written file.
			cp "${f}" "${PROTO_DIR}/${rel}.tmp"
			mv -f "${PROTO_DIR}/${rel}.tmp" "${PROTO_DIR}/${rel}"
			log "wrote proto/${rel}"
		fi
	done < <(find "${out}" -type f -name '*.pb.go' -print0)
	while IFS= read -r -d '' f; do
		rel="${f#"${PROTO_DIR}"/}"
		if [[ ! -e "${out}/${rel}" ]]; then
			rm -f "${f}"
			log "removed stale proto/${rel}"
		fi
	done < <(find "${PROTO_DIR}/mu" -type f -name '*.pb.go' -print0)
}

lint() {
	tools
	run_buf lint
	run_buf format --diff --exit-code
}

format() {
	tools
	run_buf format --write
}

breaking() {
	tools
	local ref="${1:-main}"
	run_buf breaking --against "${ROOT}/.git#ref=${ref},subdir=proto"
}

cmd="${1:-}"
case "${cmd}" in
tools) tools ;;
generate) generate ;;
lint) lint ;;
format) format ;;
breaking) shift; breaking "$@" ;;
*) die "usage: $0 {tools|generate|lint|format|breaking [ref]}" ;;
esac
