package chainindexer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Server (not global), so several nodes can share a
// process (with separate registries).
type metrics struct {
	ledgerErrors  prometheus.Counter
	events        *prometheus.CounterVec // by kind and type
	resyncs       prometheus.Counter
	watchersCut   prometheus.Counter
	persistErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		ledgerErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_chain_indexer_ledger_errors_total", Help: "Ledger calls that failed (the indexer keeps serving its last view and retries).",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mu_chain_indexer_events_total", Help: "Events issued, by kind of object and change type.",
		}, []string{"kind", "type"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_chain_indexer_resyncs_total", Help: "Full reads of the ledger (at start and after its change log was compacted).",
		}),
		watchersCut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_chain_indexer_watchers_cut_total", Help: "Watch streams closed with RESOURCE_EXHAUSTED because they fell watch_buffer events behind.",
		}),
		persistErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_chain_indexer_persist_errors_total", Help: "Failed writes of the view file.",
		}),
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mu_chain_indexer_ledger_slot", Help: "The ledger slot the served view reflects.",
		}, func() float64 { return float64(s.idx.Position().Slot) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mu_chain_indexer_sequence", Help: "The last sequence issued.",
		}, func() float64 { return float64(s.idx.Position().Seq) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mu_chain_indexer_staleness_seconds", Help: "Seconds since the view was last found up to date with the ledger.",
		}, func() float64 { return s.staleness(s.idx.Status().SyncedAt).Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mu_chain_indexer_watchers", Help: "Watch streams open.",
		}, func() float64 { return float64(s.idx.Status().Subscribers) }),
	}
	for _, c := range append([]prometheus.Collector{m.ledgerErrors, m.events, m.resyncs, m.watchersCut, m.persistErrors}, gauges...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("chain-indexer: register metrics: %w", err)
		}
	}
	return m, nil
}
