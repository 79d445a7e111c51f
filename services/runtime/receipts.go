package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
)

// Nondeterministic inputs a receipt names (Receipt.nondeterministic_inputs).
const (
	InputClock          = "clock"
	InputRandom         = "random"
	InputDB             = "db"
	InputStorage        = "storage"
	InputHTTP           = "http"
	InputRequestNotKept = "request_not_kept"
)

// validateReceipts adds the problems of the Receipt* fields to p.
func (c Config) validateReceipts(p *service.Problems) {
	if math.IsNaN(c.ReceiptSampleRate) || c.ReceiptSampleRate < 0 || c.ReceiptSampleRate > 1 {
		p.Addf("receipt_sample_rate", "must be in [0, 1], got %v", c.ReceiptSampleRate)
	}
	p.NotNegative("receipt_max_request_bytes", int64(c.ReceiptMaxRequestBytes))
	p.Positive("receipt_queue_size", int64(c.ReceiptQueueSize))
	p.Positive("receipt_batch_size", int64(c.ReceiptBatchSize))
	p.PositiveDuration("receipt_send_timeout", c.ReceiptSendTimeout)
}

// engineString is Receipt.engine for an engine built from cfg: the wasm
// engine's fingerprint (wasmtime version, metering, stack, opt level,
// features, instrumentation and bulk price) and the other settings a
// call's fuel depends on: the price of random bytes, the frame limit the
// guest is told (FrameSizeEnv) and the table bounds (which decide how much
// of the memory limit a table may take, so which grows succeed).
func engineString(e *wasm.Engine, cfg Config) string {
	return e.Fingerprint() + ";random=" + strconv.Itoa(cfg.RandomBytesPerFuel) + ";frame=" + strconv.Itoa(cfg.MaxFrameSize) +
		";tables=" + strconv.Itoa(cfg.MaxTables) + "x" + strconv.FormatUint(cfg.MaxTableElements, 10)
}

// receipts samples calls and sends their receipts to the sink in the
// background: a bounded queue, batches of ReceiptBatchSize, each send
// bounded by ReceiptSendTimeout; receipts that find the queue full or
// whose send fails are dropped and counted. Safe for concurrent use.
type receipts struct {
	cfg    Config
	sink   usage.ReceiptSink // nil: no receipts
	engine string
	region []byte // Receipt.region_id: Config.RegionID, or empty for billing to fill
	keys   *usage.Keys
	log    *slog.Logger
	queue  chan *billingv1.Receipt
	done   chan struct{}
	mu     sync.RWMutex // add (read) against close (write)
	closed bool

	sent, dropped, made prometheus.Counter
}

func newReceipts(cfg Config, sink usage.ReceiptSink, engine *wasm.Engine, reg prometheus.Registerer, log *slog.Logger) (*receipts, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mu_runtime_receipts_total",
		Help: "Receipts of sampled calls: made, sent to billing, or dropped (queue full or send failed).",
	}, []string{"result"})
	if err := reg.Register(vec); err != nil {
		return nil, fmt.Errorf("runtime: register receipt metrics: %w", err)
	}
	r := &receipts{
		cfg: cfg, sink: sink, engine: engineString(engine, cfg), log: log,
		keys:    usage.NewKeys("receipt/" + cfg.NodeName),
		queue:   make(chan *billingv1.Receipt, cfg.ReceiptQueueSize),
		done:    make(chan struct{}),
		made:    vec.WithLabelValues("made"),
		sent:    vec.WithLabelValues("sent"),
		dropped: vec.WithLabelValues("dropped"),
	}
	if cfg.RegionID != "" {
		pk, err := ledger.ParsePubkey(cfg.RegionID) // Validate has checked it
		if err != nil {
			return nil, fmt.Errorf("runtime: region_id: %w", err)
		}
		r.region = pk[:]
	}
	if sink == nil {
		close(r.done)
		return r, nil
	}
	go r.send()
	return r, nil
}

// sample decides whether a call gets a receipt.
func (r *receipts) sample() bool {
	switch rate := r.cfg.ReceiptSampleRate; {
	case r.sink == nil || rate <= 0:
		return false
	case rate >= 1:
		return true
	default:
		return rand.Float64() < rate
	}
}

// add queues rc for the sender, or drops it when the queue is full or the
// node is closing (a straggling call). It never blocks.
func (r *receipts) add(rc *billingv1.Receipt) {
	r.made.Inc()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed || r.sink == nil {
		r.dropped.Inc()
		return
	}
	select {
	case r.queue <- rc:
	default:
		r.dropped.Inc()
	}
}

// send is the background sender: it ends once close has closed the queue
// and what was queued has been sent (or dropped).
func (r *receipts) send() {
	defer close(r.done)
	batch := make([]*billingv1.Receipt, 0, r.cfg.ReceiptBatchSize)
	for rc := range r.queue {
		batch = append(batch[:0], rc)
	more:
		for len(batch) < r.cfg.ReceiptBatchSize {
			select {
			case rc, ok := <-r.queue:
				if !ok {
					break more
				}
				batch = append(batch, rc)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ReceiptSendTimeout)
		err := r.sink.ReportReceipts(ctx, batch...)
		cancel()
		if err != nil {
			r.dropped.Add(float64(len(batch)))
			r.log.Warn("receipts dropped", "count", len(batch), "err", err)
			continue
		}
		r.sent.Add(float64(len(batch)))
	}
}

// close stops taking receipts and waits until the queued ones have been
// sent (each batch bounded by ReceiptSendTimeout); later adds are
// dropped. Safe to call twice.
func (r *receipts) close() {
	r.mu.Lock()
	if !r.closed && r.sink != nil {
		close(r.queue)
	}
	r.closed = true
	r.mu.Unlock()
	<-r.done
}

// sampledCall is what a sampled call collects for its receipt: the tape
// of its fresh instance and the inputs it read, in the order first read.
type sampledCall struct {
	tape   *wasm.Tape
	inputs []string
}

func newSampledCall() *sampledCall {
	sc := &sampledCall{}
	sc.tape = wasm.NewRecordingTape(sc.note)
	return sc
}

// note records input unless it is already there.
func (sc *sampledCall) note(input string) {
	for _, in := range sc.inputs {
		if in == input {
			return
		}
	}
	sc.inputs = append(sc.inputs, input)
}

// receipt builds the receipt of a sampled call that was billed resp's fuel.
func (r *receipts) receipt(inv *invocation, req *typesv1.HttpRequest, fuel, mbi uint64, status uint32, outcome string) *billingv1.Receipt {
	sc := inv.sampled
	reqBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil { // an HttpRequest that came in over gRPC always encodes
		r.log.Warn("receipt: encode request", "err", err)
		return nil
	}
	rc := &billingv1.Receipt{
		ReceiptId:              r.keys.Next(),
		StackId:                inv.id.Bytes(),
		RegionId:               r.region,
		Function:               inv.f.assembly + "." + inv.fnName,
		BinaryId:               inv.f.binaryID,
		RequestHash:            usage.RequestHash(reqBytes),
		Request:                reqBytes,
		Fuel:                   fuel,
		MemoryLimitBytes:       inv.f.memoryLimit,
		MbInstructions:         mbi,
		Engine:                 r.engine,
		NondeterministicInputs: append([]string(nil), sc.inputs...),
		Time:                   timestamppb.Now(),
		Status:                 status,
		Outcome:                outcome,
	}
	if len(reqBytes) > r.cfg.ReceiptMaxRequestBytes {
		rc.Request = nil
		rc.NondeterministicInputs = append(rc.NondeterministicInputs, InputRequestNotKept)
	}
	if es := sc.tape.Entries(); len(es) > 0 {
		rc.Tape = &billingv1.ReplayTape{Entries: make([]*billingv1.TapeEntry, len(es))}
		for k, e := range es {
			if e.IsRandom {
				rc.Tape.Entries[k] = &billingv1.TapeEntry{Value: &billingv1.TapeEntry_Random{Random: e.Random}}
			} else {
				rc.Tape.Entries[k] = &billingv1.TapeEntry{Value: &billingv1.TapeEntry_Clock{Clock: e.Clock}}
			}
		}
	}
	return rc
}

// outcomeOf is Receipt.outcome of a call that ended with ce (nil: a result).
func outcomeOf(ce *wasm.CallError) string {
	if ce == nil {
		return "ok"
	}
	switch ce.Kind {
	case wasm.KindFunctionError, wasm.KindUnavailable:
		return "error"
	case wasm.KindFuelExhausted:
		return "out_of_fuel"
	case wasm.KindDeadline:
		return "deadline"
	case wasm.KindProtocol:
		return "protocol_error"
	case wasm.KindCrash:
		if ce.Exited {
			return "exit"
		}
	}
	return "trap" // KindCrash, KindMemoryLimit: the guest trapped
}

// runSampled is the wasm part of a sampled call: it runs on a fresh
// instance whose clock and random reads are taped from its instantiation
// on, so that its fuel (the start-up and the call, as any fresh
// instance's first call) can be reproduced by an audit. The instance is
// closed afterwards: it is not pooled, so the pool's warm instances never
// carry a tape. Its memory is reserved as any call's.
func (inv *invocation) runSampled() {
	s, ctx, f := inv.s, inv.ctx, inv.f
	wctx, wait := s.waitSpan(ctx, inv)
	inst, err := s.engine.NewInstance(wctx, f.mod, s.instanceConfig(f, inv.sampled.tape))
	if err != nil {
		endWait(wait, nil, err)
		if c, ok := wasm.AsCallError(err); ok {
			inv.ce = c
			inv.ce.Message = "instance failed to start: " + inv.ce.Message
			return
		}
		inv.err = poolStatus(err)
		return
	}
	defer inst.Close()
	s.metrics.instancesStarted.Inc()
	s.metrics.startupFuel.Add(float64(inst.StartupFuel))
	if err := s.reserveMemory(wctx, f); err != nil {
		endWait(wait, nil, err)
		inv.err = err
		return
	}
	endWait(wait, inst, nil)
	defer s.releaseMemory(f)
	host := inv.d.newCall()
	host.worker = inv.worker
	host.sampled = inv.sampled
	cctx, span := s.callSpan(ctx, inv)
	res, err := inst.Call(cctx, inv.fnName, &inv.req, host.handle, inv.lim)
	endWasmCall(span, res, err)
	host.end()
	inv.sampled.tape.Stop()
	inv.finish(res, err)
}
