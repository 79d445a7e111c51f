package mudb

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Server (not global), so several nodes can share a process.
type metrics struct {
	ops       *prometheus.CounterVec // by rpc and outcome
	reads     prometheus.Counter
	writes    prometheus.Counter
	swept     prometheus.Counter
	conflicts prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mu_mudb_ops_total", Help: "MudbService calls by rpc and outcome (ok or the gRPC code).",
		}, []string{"rpc", "outcome"}),
		reads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_mudb_metered_reads_total", Help: "Read operations metered to stacks (billed as DB_READS).",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_mudb_metered_writes_total", Help: "Write operations metered to stacks (billed as DB_WRITES).",
		}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_mudb_ttl_swept_keys_total", Help: "Expired keys deleted by the TTL sweeper.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_mudb_txn_conflict_retries_total", Help: "Write transactions re-run after a write conflict.",
		}),
	}
	for _, c := range []prometheus.Collector{m.ops, m.reads, m.writes, m.swept, m.conflicts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mudb: register metrics: %w", err)
		}
	}
	return m, nil
}
