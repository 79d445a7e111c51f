# mu — the two commands that matter are `make run` and `make test`.
# Everything a target needs beyond Go and gcc is installed into .tmp/ at the versions pinned here.

SHELL := /bin/bash
GO ?= go
export CGO_ENABLED := 1

# Every module of the workspace (go.work), in dependency order.
MODULES := libs/fnproto proto libs sdk/go services/runtime services/gateway services/mudb services/storage \
           services/chain-indexer services/billing region cli bench examples deployments/check

TEST_FLAGS ?= -count=1 -timeout=20m
# The S3 server of the storage tests (design section 2), installed into .tmp/bin at this version.
VERSITYGW_VERSION := v1.8.0
VERSITYGW := $(CURDIR)/.tmp/bin/versitygw
export MU_VERSITYGW := $(VERSITYGW)
# helm, for the chart checks (helm lint --strict, helm template and deployments/check), installed into .tmp/bin.
HELM_VERSION := v4.3.2
HELM := $(CURDIR)/.tmp/bin/helm
export MU_HELM := $(HELM)
# helm keeps its cache, config and plugins here, not in the user's home; it needs no network for lint and template.
HELM_ENV := HELM_CACHE_HOME=$(CURDIR)/.tmp/helm/cache HELM_CONFIG_HOME=$(CURDIR)/.tmp/helm/config HELM_DATA_HOME=$(CURDIR)/.tmp/helm/data
# A go-installed helm assumes Kubernetes 1.20; the chart needs 1.24 or later.
KUBE_VERSION := 1.30.0
RUN_DIR ?= examples/hello
GATEWAY_ADDR ?= 127.0.0.1:12080
# Where `make cluster` keeps its processes' pids, logs, data and keys.
CLUSTER_DIR ?= .mu/cluster
CLUSTER_RUNTIMES ?= 3
# EXECUTORS=N makes `make cluster` start N mu-executors (gateway and runtime in one process each)
# instead of CLUSTER_RUNTIMES runtimes and a gateway.
EXECUTORS ?=

.PHONY: all build run cluster cluster-down test test-race vet versitygw helm chromium chart test-wasm bench bench-quick proto proto-lint checkgenerate lint fuzz fuzz-short clean help

all: build

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## Build every module and the mu binary into .tmp/bin/mu.
	@for m in $(MODULES); do (cd $$m && $(GO) build ./...) || exit 1; done
	@mkdir -p .tmp/bin && $(GO) build -o .tmp/bin/mu ./cli

run: ## Start the local runtime with embedded defaults and serve the example stack.
	$(GO) run ./cli run --gateway-addr $(GATEWAY_ADDR) $(RUN_DIR)

cluster: ## Start a region of separate processes on 127.0.0.1 (gateway, 3 runtimes, muDB, storage, chain-indexer; EXECUTORS=3: 3 mu-executors instead of gateway and runtimes) serving examples/hello and examples/todo.
	$(GO) run ./cli cluster up --repo $(CURDIR) --dir $(CLUSTER_DIR) $(if $(EXECUTORS),--executors $(EXECUTORS),--runtimes $(CLUSTER_RUNTIMES))

cluster-down: ## Stop the processes `make cluster` started.
	$(GO) run ./cli cluster down --dir $(CLUSTER_DIR)

test: versitygw helm chromium vet test-wasm chart test-race fuzz-short ## Vet and test every module (the README's test command; CI runs this).
	@set -o pipefail; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && $(GO) test $(TEST_FLAGS) ./...) || exit 1; \
	done

test-race: ## The concurrency-sensitive packages under the race detector.
	cd libs && $(GO) test $(TEST_FLAGS) -race ./usage ./service
	cd services/runtime && $(GO) test $(TEST_FLAGS) -race ./...
	cd services/gateway && $(GO) test $(TEST_FLAGS) -race ./...

# How long make fuzz runs each fuzz target, and make test's bounded run.
FUZZTIME ?= 10s
FUZZTIME_SHORT ?= 3s

fuzz: ## Run every fuzz target for FUZZTIME (10s) each; a failing input lands in the package's testdata/fuzz.
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash scripts/fuzz.sh

fuzz-short: ## The bounded fuzz run of make test (FUZZTIME_SHORT, 3s, per target).
	FUZZTIME=$(FUZZTIME_SHORT) GO=$(GO) bash scripts/fuzz.sh

versitygw: ## Install the pinned versitygw (the storage tests' S3 server) into .tmp/bin.
	@have=$$($(GO) version -m $(VERSITYGW) 2>/dev/null | awk '$$1 == "mod" && $$2 == "github.com/versity/versitygw" { print $$3 }'); \
	if [ "$$have" != "$(VERSITYGW_VERSION)" ]; then \
		echo "installing github.com/versity/versitygw@$(VERSITYGW_VERSION)"; \
		mkdir -p .tmp/bin && cd .tmp && GOWORK=off GOFLAGS=-mod=mod GOBIN=$(CURDIR)/.tmp/bin \
			$(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi

helm: ## Install the pinned helm (the chart checks) into .tmp/bin.
	@have=$$($(GO) version -m $(HELM) 2>/dev/null | awk '$$1 == "mod" && $$2 == "helm.sh/helm/v4" { print $$3 }'); \
	if [ "$$have" != "$(HELM_VERSION)" ]; then \
		echo "installing helm.sh/helm/v4@$(HELM_VERSION)"; \
		mkdir -p .tmp/bin && cd .tmp && GOWORK=off GOFLAGS=-mod=mod GOBIN=$(CURDIR)/.tmp/bin \
			$(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION); \
	fi

chromium: ## Install Debian's chromium for the console page's browser tests (cli/internal/consoleui), which skip without it.
	@if [ ! -x /usr/bin/chromium ]; then \
		if command -v apt-get >/dev/null 2>&1 && echo "installing chromium (apt-get)" && \
			apt-get update -qq >/dev/null 2>&1 && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then :; \
		else echo "chromium is not installed (no apt-get, or it failed): the browser tests of cli/internal/consoleui will skip"; fi; \
	fi

chart: helm ## helm lint --strict and helm template of helm/mu with each values file in helm/mu/ci.
	@for v in helm/mu/ci/*.yaml; do \
		echo "== helm lint --strict, helm template -f $$v"; \
		$(HELM_ENV) $(HELM) lint --strict --kube-version $(KUBE_VERSION) helm/mu -f $$v >/dev/null || { $(HELM_ENV) $(HELM) lint --strict --kube-version $(KUBE_VERSION) helm/mu -f $$v; exit 1; }; \
		$(HELM_ENV) $(HELM) template mu helm/mu --kube-version $(KUBE_VERSION) -f $$v >/dev/null || exit 1; \
	done

vet: ## go vet across every module.
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

test-wasm: ## The SDK and examples must build for GOOS=wasip1 GOARCH=wasm.
	@cd sdk/go && GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 $(GO) build ./...
	@cd examples && GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 $(GO) build ./...

bench: versitygw ## Run the benchmark suite; writes bench/results.json and bench/results.md.
	$(GO) run ./bench/cmd/mubench -out bench

bench-quick: ## Key benchmark figures in under a minute, one per line as name: value.
	@$(GO) run ./bench/cmd/mubench -quick

proto: ## Regenerate the Go code from proto/ with pinned buf and plugins.
	bash scripts/proto.sh generate

proto-lint: ## buf lint over proto/.
	bash scripts/proto.sh lint

checkgenerate: proto ## Fail if regenerating the protos changes anything.
	@test -z "$$(git status --porcelain -- proto)" || { git status --porcelain -- proto; echo "generated code is stale: run make proto"; exit 1; }

lint: vet proto-lint ## go vet, gofmt check and buf lint.
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }

clean: ## Remove build outputs (keeps installed tools).
	rm -rf .tmp/bin/mu
