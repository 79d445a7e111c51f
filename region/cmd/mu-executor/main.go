// Command mu-executor runs a node's services together in one process — a
// gateway, a runtime, muDB and storage (the litepaper's executor, design
// section 2) — and joins the region's cluster: the gateway calls its own
// runtime in process and the owners of other stacks over gRPC. A provider
// without Kubernetes runs one per machine with the TiKV cluster's PD
// endpoints (mudb_pd_endpoints), an S3 bucket (storage_s3_*), the
// chain-indexer that follows the ledger (chain_indexer_addr, region_id) and
// the cluster's join list (cluster_join); mudb_addr and storage_addr use a
// muDB or storage running elsewhere instead.
//
// Settings start from region.DefaultExecutorConfig; a YAML file (--config)
// with a section per service (gateway:, runtime:, mudb:, storage:,
// cluster:), MU_EXECUTOR_<FIELD> environment variables (MU_EXECUTOR_
// RUNTIME_DATA_DIR) and --<field> flags (--runtime-data-dir) override it;
// --help lists every setting. SIGTERM stops it gracefully: the gateway
// first, then the runtime leaves the cluster and drains, then muDB and
// storage. Exit codes: 0 after SIGINT/SIGTERM, 2 for bad settings, 1 for
// failures.
package main

import (
	"context"
	"log/slog"

	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/region"
)

func main() { service.Main(command()) }

func command() service.Command[region.ExecutorConfig] {
	return service.Command[region.ExecutorConfig]{
		Name:   "executor",
		Config: region.DefaultExecutorConfig(),
		Docs:   region.ExecutorConfigDocs(),
		New: func(_ context.Context, cfg region.ExecutorConfig, log *slog.Logger) (service.Service, error) {
			return region.NewExecutor(cfg, region.ExecutorDeps{Logger: log})
		},
	}
}
