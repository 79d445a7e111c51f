package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
)

// Errors of Audit, wrapped with the details; match them with errors.Is.
var (
	// ErrEngineMismatch: the receipt was made with other engine settings
	// (Receipt.engine) than the audit's Config gives; its fuel is not
	// comparable.
	ErrEngineMismatch = errors.New("runtime: audit: engine settings differ from the receipt's")
	// ErrNotReproducible: the call read inputs from outside (db, storage,
	// http) or its request was not kept, so it cannot be re-run from the
	// receipt alone.
	ErrNotReproducible = errors.New("runtime: audit: the receipt's call cannot be re-run")
	// ErrBadReceiptInput: the receipt does not hold together (binary id,
	// request hash, function name, request encoding).
	ErrBadReceiptInput = errors.New("runtime: audit: the receipt does not match its inputs")
)

// AuditOptions are what a receipt does not carry about the call.
type AuditOptions struct {
	// Env is the function's environment as its manifest declares it (the
	// frame limit the runtime adds is added again); the hello example
	// declares none.
	Env map[string]string
}

// AuditResult is what re-running a receipt's call measured.
type AuditResult struct {
	// Fuel is the fuel the re-run burnt: start-up and call, as the
	// sampled call on its fresh instance.
	Fuel uint64
	// MbInstructions is Fuel × the receipt's memory limit in MiB, rounded up.
	MbInstructions uint64
	// Status is the HTTP status the function answered (0: none).
	Status uint32
	// Outcome is how the re-run ended, in Receipt.outcome's words.
	Outcome string
	// Message is the error of a re-run that did not end with a result.
	Message string
	// TapeUsed is how many of the receipt's tape entries the re-run read
	// (of TapeLen).
	TapeUsed, TapeLen int
	// Match reports that Fuel, MbInstructions, Status and Outcome are the
	// receipt's.
	Match bool
}

// Audit re-runs the call a receipt describes on wasmBytes (the binary it
// names) and reports the fuel it burnt: on a fresh instance of an engine
// built from cfg, with the receipt's memory limit, its clock and random
// values replayed from its tape, the request it carries. cfg must give the
// engine settings the receipt names (ErrEngineMismatch otherwise); a
// receipt marked with outside inputs (db, storage, http) or without its
// request is ErrNotReproducible. Audit compiles the module without a disk
// cache and may take as long as the call's start-up and call budgets.
func Audit(ctx context.Context, cfg Config, wasmBytes []byte, r *billingv1.Receipt, opts AuditOptions) (AuditResult, error) {
	var res AuditResult
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	if bad := slices.DeleteFunc(slices.Clone(r.GetNondeterministicInputs()), func(in string) bool {
		return in == InputClock || in == InputRandom
	}); len(bad) > 0 {
		return res, fmt.Errorf("%w: it read %s (nondeterministic_inputs %v)", ErrNotReproducible, strings.Join(bad, ", "), r.GetNondeterministicInputs())
	}
	if id := ids.BinaryID(wasmBytes); id != r.GetBinaryId() {
		return res, fmt.Errorf("%w: binary_id: the receipt names %s, the binary given is %s", ErrBadReceiptInput, r.GetBinaryId(), id)
	}
	if h := usage.RequestHash(r.GetRequest()); string(h) != string(r.GetRequestHash()) {
		return res, fmt.Errorf("%w: request_hash %x is not the SHA-256 of the request (%x)", ErrBadReceiptInput, r.GetRequestHash(), h)
	}
	req := new(typesv1.HttpRequest)
	if err := proto.Unmarshal(r.GetRequest(), req); err != nil {
		return res, fmt.Errorf("%w: request: %v", ErrBadReceiptInput, err)
	}
	assembly, fnName, ok := strings.Cut(r.GetFunction(), ".")
	if !ok || assembly == "" || fnName == "" {
		return res, fmt.Errorf("%w: function %q: want \"assembly.function\"", ErrBadReceiptInput, r.GetFunction())
	}
	if r.GetMemoryLimitBytes() == 0 {
		return res, fmt.Errorf("%w: memory_limit_bytes is 0", ErrBadReceiptInput)
	}

	ecfg := cfg.engineConfig()
	ecfg.CacheDir = "" // an audit compiles; it must not depend on a cache
	engine, err := wasm.NewEngine(ecfg)
	if err != nil {
		return res, fmt.Errorf("runtime: audit: engine: %w", err)
	}
	defer engine.Close()
	if e := engineString(engine, cfg); e != r.GetEngine() {
		return res, fmt.Errorf("%w: receipt %q, this audit %q", ErrEngineMismatch, r.GetEngine(), e)
	}
	mod, err := engine.Compile(wasmBytes)
	if err != nil {
		return res, fmt.Errorf("runtime: audit: compile %s: %w", r.GetBinaryId(), err)
	}
	defer mod.Close()

	entries := make([]wasm.TapeEntry, len(r.GetTape().GetEntries()))
	for k, e := range r.GetTape().GetEntries() {
		switch v := e.GetValue().(type) {
		case *billingv1.TapeEntry_Clock:
			entries[k] = wasm.TapeEntry{Clock: v.Clock}
		case *billingv1.TapeEntry_Random:
			entries[k] = wasm.TapeEntry{IsRandom: true, Random: v.Random}
		default:
			return res, fmt.Errorf("%w: tape entry %d holds no value", ErrBadReceiptInput, k)
		}
	}
	tape := wasm.NewReplayTape(entries)
	res.TapeLen = len(entries)
	miB := manifest.ByteSize(r.GetMemoryLimitBytes()).MiBCeil()

	var ce *wasm.CallError
	var result *wasm.Result
	inst, err := engine.NewInstance(ctx, mod, wasm.InstanceConfig{
		MemoryLimit: r.GetMemoryLimitBytes(),
		CallTimeout: cfg.CallTimeout,
		Env:         instanceEnv(opts.Env, cfg.MaxFrameSize),
		Args:        []string{assembly},
		Tape:        tape,
	})
	if err != nil {
		c, ok := wasm.AsCallError(err)
		if !ok {
			return res, fmt.Errorf("runtime: audit: start: %w", err)
		}
		ce = c
	} else {
		defer inst.Close()
		lim := wasm.Limits{Fuel: cfg.MaxFuelPerCall, Timeout: cfg.CallTimeout}
		if r.GetOutcome() == "out_of_fuel" && r.GetFuel() > inst.StartupFuel {
			// The call ran out of the budget it was given (a region may
			// lower it); give the re-run the same.
			lim.Fuel = r.GetFuel() - inst.StartupFuel
		}
		fr := fnproto.Request{Method: req.GetMethod(), PathParams: req.GetPathParams(), QueryParams: req.GetQueryParams(), Body: req.GetBody()}
		for _, h := range req.GetHeaders() {
			fr.Headers = append(fr.Headers, fnproto.Header{Name: h.GetName(), Value: h.GetValue()})
		}
		result, err = inst.Call(ctx, fnName, &fr, auditHost, lim)
		if err != nil {
			c, ok := wasm.AsCallError(err)
			if !ok {
				return res, fmt.Errorf("runtime: audit: call: %w", err)
			}
			ce = c
		}
	}
	res.TapeUsed = tape.Replayed()
	res.Outcome = outcomeOf(ce)
	if ce != nil {
		res.Fuel, res.Message = ce.Fuel, ce.Error()
	} else {
		res.Fuel, res.Status = result.Fuel, uint32(result.Response.Status)
	}
	res.MbInstructions = mulSat(res.Fuel, miB)
	res.Match = res.Fuel == r.GetFuel() && res.MbInstructions == r.GetMbInstructions() &&
		res.Status == r.GetStatus() && res.Outcome == r.GetOutcome()
	return res, nil
}

// auditHost answers the host requests of an audited call: none are
// expected (a receipt with db, storage or http inputs is not re-run), so a
// request ends the re-run as a divergence.
func auditHost(_ context.Context, m fnproto.Message) (fnproto.Message, error) {
	return nil, fmt.Errorf("audit: the re-run sent %s, which the receipt does not mark as an input", fnproto.KindName(fnproto.FromFunction, m.Kind()))
}
