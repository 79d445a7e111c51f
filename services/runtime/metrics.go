package runtime

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/fnproto"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// metrics are per Server (not global), so several nodes can share a process.
type metrics struct {
	invocations *prometheus.CounterVec
	// invocationsOK and invocationsKind are invocations' series, resolved
	// once so that a call does not look its label up.
	invocationsOK         prometheus.Counter
	invocationsKind       map[wasm.ErrorKind]prometheus.Counter
	workers               workerMetrics
	fuel                  prometheus.Counter
	startupFuel           prometheus.Counter
	instancesStarted      prometheus.Counter
	callSeconds           prometheus.Histogram
	compileSeconds        *prometheus.HistogramVec
	activeMemory          prometheus.Gauge
	memoryRefused         prometheus.Counter
	dbRequests            *prometheus.CounterVec
	storageRequests       *prometheus.CounterVec
	uploadsAbandoned      prometheus.Counter
	binaries              *prometheus.CounterVec
	snapshots             *prometheus.CounterVec
	snapshotBuildsPending prometheus.Gauge
	instanceStart         *prometheus.HistogramVec
	// chainDeployFailures is registered with the other chain metrics
	// (registerChainMetrics).
	chainDeployFailures prometheus.Counter
	// ownershipMoves counts the region's stacks whose owner changed with
	// a membership change (as this node computed it).
	ownershipMoves prometheus.Counter
	// onDemandDeploys counts stacks deployed because a call reached the
	// node before it had them (a retry while ownership moved).
	onDemandDeploys prometheus.Counter
	// releases counts stacks dropped after release_grace because another
	// node owns them.
	releases prometheus.Counter
	// standbyCompiles counts binaries compiled into the artifact cache
	// because this node is the next candidate for their stacks.
	standbyCompiles prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mu_runtime_invocations_total", Help: "Function calls by outcome (ok or the error kind).",
		}, []string{"result"}),
		fuel: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_runtime_fuel_total", Help: "Fuel consumed by calls (about one unit per wasm instruction).",
		}),
		startupFuel: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_runtime_startup_fuel_total", Help: "Fuel consumed by instance start-up.",
		}),
		instancesStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mu_runtime_instances_started_total", Help: "Instances started (cold starts and prewarming).",
		}),
		callSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mu_runtime_call_seconds", Help: "Wall-clock time of Invoke.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
		}),
		compileSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mu_runtime_module_load_seconds", Help: "Time to compile (from_cache=false) or deserialize (true) a module.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"from_cache"}),
	}
	m.activeMemory = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mu_runtime_active_memory_bytes", Help: "Memory reserved by running calls (their functions' memory_limit), of active_memory_budget.",
	})
	m.memoryRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mu_runtime_memory_refused_total", Help: "Calls refused because active_memory_budget stayed full for active_memory_wait.",
	})
	m.dbRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mu_runtime_db_requests_total",
		Help: "Functions' db requests by message kind and outcome (ok, error, undeclared, unconfigured, invalid, too_large, deadline). Not usage: muDB reports db reads and writes to billing itself.",
	}, []string{"kind", "outcome"})
	m.storageRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mu_runtime_storage_requests_total",
		Help: "Functions' storage requests by message kind and outcome (ok, error, undeclared, unconfigured, invalid, too_large, deadline). Not usage: the storage service reports bytes read and written to billing itself.",
	}, []string{"kind", "outcome"})
	m.uploadsAbandoned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mu_runtime_storage_uploads_abandoned_total", Help: "Uploads still open when their call ended, aborted (nothing stored).",
	})
	m.binaries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mu_runtime_binaries_loaded_total", Help: "Binaries not sent inline with a deploy, by where they came from (cache: a compiled artifact; storage: fetched and compiled).",
	}, []string{"source"})
	m.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mu_runtime_snapshots_total", Help: "Functions given a snapshot start after their deploy (in the background), by result (built, cached: loaded from the artifact cache, refused: the start-up cannot be snapshotted, failed: the build failed; the last two start normally).",
	}, []string{"result"})
	m.snapshotBuildsPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mu_runtime_snapshot_builds_pending", Help: "Functions of deployed stacks whose snapshot is queued or being built (or loaded from the artifact cache) in the background (snapshot_build_concurrency stacks at a time); they start normally meanwhile.",
	})
	m.instanceStart = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mu_runtime_instance_start_seconds", Help: "Time to start an instance (instantiate and run its start-up, or instantiate a snapshot), by snapshot (true: from a snapshot).",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2, 18),
	}, []string{"snapshot"})
	m.chainDeployFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mu_runtime_chain_deploy_failures_total", Help: "Deploys of stacks from the chain indexer that failed (each is retried with backoff).",
	})
	m.ownershipMoves = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mu_runtime_ownership_moves_total", Help: "Stacks of the region whose owner changed with a membership change, as this node computed it.",
	})
	m.onDemandDeploys = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mu_runtime_on_demand_deploys_total", Help: "Stacks deployed because a call reached the node before it had deployed them (a gateway retry while ownership moved, or a call that came before the node's own deploy).",
	})
	m.releases = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mu_runtime_stacks_released_total", Help: "Stacks dropped from the node release_grace after another node became their owner.",
	})
	m.standbyCompiles = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mu_runtime_standby_compiles_total", Help: "Binaries compiled into the artifact cache ahead of a takeover, for stacks whose next candidate after the owner is this node.",
	})
	workers, workerCollectors := newWorkerMetrics()
	m.workers = workers
	m.invocationsOK = m.invocations.WithLabelValues("ok")
	m.invocationsKind = make(map[wasm.ErrorKind]prometheus.Counter)
	for k := wasm.KindFuelExhausted; k <= wasm.KindUnavailable; k++ {
		m.invocationsKind[k] = m.invocations.WithLabelValues(k.String())
	}
	for _, c := range append(workerCollectors, m.ownershipMoves, m.onDemandDeploys, m.releases, m.standbyCompiles, m.invocations, m.fuel, m.startupFuel, m.instancesStarted, m.callSeconds, m.compileSeconds, m.activeMemory, m.memoryRefused, m.dbRequests, m.storageRequests, m.uploadsAbandoned, m.binaries, m.snapshots, m.snapshotBuildsPending, m.instanceStart) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("runtime: register metrics: %w", err)
		}
	}
	return m, nil
}

// newWorkerMetrics makes the call workers' metrics and returns them with
// the collectors to register.
func newWorkerMetrics() (workerMetrics, []prometheus.Collector) {
	var w workerMetrics
	w.busy = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mu_runtime_call_workers_busy", Help: "Call workers running a call (of call_workers).",
	})
	waited := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mu_runtime_call_worker_waits_total", Help: "Calls that found every call worker busy and waited for one (up to call_worker_wait).",
	})
	w.waited = waited
	overflows := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mu_runtime_call_worker_overflows_total",
		Help: "Calls that ran on their own goroutine instead of a call worker, by reason: wait (no worker free within call_worker_wait), host_call (a call worker was inside a db or storage call, which may block), closed (the node is shutting down).",
	}, []string{"reason"})
	w.overflowWait = overflows.WithLabelValues("wait")
	w.overflowHostCall = overflows.WithLabelValues("host_call")
	w.overflowClosed = overflows.WithLabelValues("closed")
	return w, []prometheus.Collector{w.busy, waited, overflows}
}

// invocationsBy is the invocations counter of calls that failed with k.
func (m *metrics) invocationsBy(k wasm.ErrorKind) prometheus.Counter {
	if c, ok := m.invocationsKind[k]; ok {
		return c
	}
	return m.invocations.WithLabelValues(k.String())
}

// toLogEntry is e as StreamLogs sends it, from this node.
func (s *Server) toLogEntry(e *logs.Entry) *runtimev1.LogEntry {
	src := runtimev1.LogSource_LOG_SOURCE_LOG
	switch e.Source {
	case logs.SourceStderr:
		src = runtimev1.LogSource_LOG_SOURCE_STDERR
	case logs.SourceRuntime:
		src = runtimev1.LogSource_LOG_SOURCE_RUNTIME
	}
	return &runtimev1.LogEntry{
		StackId:  e.Stack.Bytes(),
		Function: e.Function,
		Level:    toLogLevel(e.Level),
		Body:     e.Body,
		Time:     timestamppb.New(e.Time),
		Source:   src,
		Dropped:  e.Dropped,
		Node:     s.cfg.NodeName,
		TraceId:  e.TraceID,
	}
}

func toLogLevel(l fnproto.LogLevel) runtimev1.LogLevel {
	switch l {
	case fnproto.LogLevelTrace:
		return runtimev1.LogLevel_LOG_LEVEL_TRACE
	case fnproto.LogLevelDebug:
		return runtimev1.LogLevel_LOG_LEVEL_DEBUG
	case fnproto.LogLevelInfo:
		return runtimev1.LogLevel_LOG_LEVEL_INFO
	case fnproto.LogLevelWarn:
		return runtimev1.LogLevel_LOG_LEVEL_WARN
	case fnproto.LogLevelError:
		return runtimev1.LogLevel_LOG_LEVEL_ERROR
	}
	return runtimev1.LogLevel_LOG_LEVEL_UNSPECIFIED
}
