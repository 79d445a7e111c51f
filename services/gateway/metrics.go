package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics. Labels are low-cardinality
// on purpose: no stack ids or paths (per-stack numbers are what usage
// records are for).
type metrics struct {
	requests *prometheus.CounterVec   // by status class
	duration *prometheus.HistogramVec // by status class
	errors   *prometheus.CounterVec   // by error kind of the JSON body
	// retries counts Invoke calls sent to the next runtime after one
	// answered UNAVAILABLE, by HTTP method (GET, HEAD, PUT, DELETE: the
	// only ones retried).
	retries *prometheus.CounterVec
	// ownerChanges counts the gateway's stacks whose owner changed with
	// a change of the member list (cluster mode).
	ownerChanges prometheus.Counter
	// invokes counts Invoke calls by transport: in_process or grpc.
	invokes *prometheus.CounterVec
	// rateLimited counts the 429s of the stacks' limits, by reason;
	// rateLimitedBy are its children, indexed by limitedRate and
	// limitedConcurrency.
	rateLimited   *prometheus.CounterVec
	rateLimitedBy [len(limitedReasons)]prometheus.Counter
	// classes are requests' and duration's children for 1xx..5xx, looked
	// up once so observe neither formats nor hashes a label.
	classes [5]struct {
		requests prometheus.Counter
		duration prometheus.Observer
	}
}

var statusClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "http_requests_total",
			Help: "Stack requests answered, by status class (2xx, 4xx, ...). /_mu/ endpoints are not counted.",
		}, []string{"code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "http_request_duration_seconds",
			Help:    "Time from request headers read to response written, by status class.",
			Buckets: prometheus.DefBuckets,
		}, []string{"code_class"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "errors_total",
			Help: "Requests answered with a gateway error body, by error kind (route_not_found, fuel_exhausted, ...).",
		}, []string{"kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "invoke_retries_total",
			Help: "Invoke calls sent to the next runtime candidate because the previous one was unreachable or answered UNAVAILABLE, " +
				"by HTTP method (only GET, HEAD, PUT and DELETE are retried). A request retried twice counts 2.",
		}, []string{"method"}),
		ownerChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "owner_changes_total",
			Help: "Stacks of this gateway whose owner runtime changed when the member list changed (cluster mode): " +
				"a stack that moves counts once per change, also when its region had no runtime before or has none after.",
		}),
		invokes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "invokes_total",
			Help: "Invoke calls sent to runtimes, retries included, by transport: in_process for a runtime in the gateway's own process " +
				"(Deps.Local, NewLocalStaticRuntime), grpc for one over the network. Not counted for a Deps.Runtimes other than a StaticRuntime.",
		}, []string{"transport"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "rate_limited_total",
			Help: "Stack requests refused with 429 by the stack's own limits, by reason: rate (over stack_rate, kind rate_limited) " +
				"or concurrency (stack_concurrency requests in flight, kind too_many_requests_in_flight).",
		}, []string{"reason"}),
	}
	for i, r := range limitedReasons {
		m.rateLimitedBy[i] = m.rateLimited.WithLabelValues(r)
	}
	for i, c := range statusClasses {
		m.classes[i].requests = m.requests.WithLabelValues(c)
		m.classes[i].duration = m.duration.WithLabelValues(c)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		m.retries.WithLabelValues(method)
	}
	m.invokes.WithLabelValues(transportInProcess)
	m.invokes.WithLabelValues(transportGRPC)
	cs := []prometheus.Collector{
		m.requests, m.duration, m.errors, m.retries, m.ownerChanges, m.invokes, m.rateLimited,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "cluster_members",
			Help: "Live members of the gateway's member list, every role and this gateway included (0 when not clustered).",
		}, func() float64 {
			if s.cluster == nil {
				return 0
			}
			n, _ := s.cluster.counts()
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "cluster_runtimes",
			Help: "Runtime members of the gateway's region that stacks are placed on (0 when not clustered).",
		}, func() float64 {
			if s.cluster == nil {
				return 0
			}
			_, n := s.cluster.counts()
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "stacks",
			Help: "Stacks installed on this gateway.",
		}, func() float64 { n, _ := s.stacks.counts(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "stacks_disabled",
			Help: "Installed stacks that are disabled (answering 402).",
		}, func() float64 { _, d := s.stacks.counts(); return float64(d) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "log_streams",
			Help: "Log streams (/_mu/stacks/{stack_id}/logs) open on the public port.",
		}, func() float64 { return float64(len(s.logSlots)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "usage_pending_records",
			Help: "Usage records waiting to be accepted by the usage sink.",
		}, func() float64 { return float64(s.usage.Pending()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "usage_report_failures_total",
			Help: "Failed usage reports (each is retried with the same records).",
		}, func() float64 { return float64(s.usage.Failures()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return m, nil
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

func (m *metrics) observe(status int, d time.Duration) {
	if i := status/100 - 1; status >= 100 && i < len(m.classes) {
		m.classes[i].requests.Inc()
		m.classes[i].duration.Observe(d.Seconds())
		return
	}
	c := statusClass(status)
	m.requests.WithLabelValues(c).Inc()
	m.duration.WithLabelValues(c).Observe(d.Seconds())
}
