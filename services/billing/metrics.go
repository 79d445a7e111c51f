package billing

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Server (not global), so several nodes can share a process.
type metrics struct {
	persisted       prometheus.Counter
	duplicates      prometheus.Counter
	commitSeconds   prometheus.Histogram
	conflicts       prometheus.Counter
	settlements     *prometheus.CounterVec // by status
	unsettledStacks prometheus.Gauge
	underMinimum    prometheus.Gauge
	receipts        *prometheus.CounterVec // by result
	swept           prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		persisted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_billing_records_persisted_total", Help: "Usage records persisted (new idempotency keys).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_billing_records_duplicate_total", Help: "Usage records ignored as duplicates of a known key.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mu_billing_commit_seconds", Help: "Latency of one group commit of usage records (one TiKV transaction).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_billing_txn_conflict_retries_total", Help: "Transactions re-run after a write conflict.",
		}),
		settlements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mu_billing_settlements_total", Help: "Settlement attempts by outcome: settled, insufficient_escrow, failed, pending (no answer; retried with the same seed).",
		}, []string{"status"}),
		unsettledStacks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mu_billing_unsettled_stacks", Help: "Stacks with usage not yet settled, after the latest settlement round.",
		}),
		underMinimum: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mu_billing_stacks_under_minimum", Help: "Stacks whose owner's escrow was under the region's min_escrow_balance at their latest settlement.",
		}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mu_billing_receipts_total", Help: "Receipts reported, by result: accepted (signed and kept) or duplicate.",
		}, []string{"result"}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_billing_keys_swept_total", Help: "Idempotency keys deleted after key_retention.",
		}),
	}
	for _, c := range []prometheus.Collector{m.persisted, m.duplicates, m.commitSeconds, m.conflicts, m.settlements,
		m.unsettledStacks, m.underMinimum, m.receipts, m.swept} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("billing: register metrics: %w", err)
		}
	}
	return m, nil
}
