package runtime

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
)

// receiptSink keeps the receipts it is given.
type receiptSink struct {
	mu   sync.Mutex
	got  []*billingv1.Receipt
	fail error
}

func (s *receiptSink) ReportReceipts(_ context.Context, rs ...*billingv1.Receipt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, rs...)
	return nil
}

func (s *receiptSink) receipts() []*billingv1.Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// newReceiptServer starts a runtime (not listening) with the hello stack
// deployed as id and receipts going to sink.
func newReceiptServer(t *testing.T, id ids.StackID, sink usage.ReceiptSink, edit func(*Config)) (*Server, Config, []byte) {
	t.Helper()
	bin := helloFunc(t)
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = ""
	cfg.DataDir = t.TempDir()
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg, Deps{Usage: usage.Discard{}, Receipts: sink})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	bid := ids.BinaryID(bin)
	if _, err := srv.Deploy(context.Background(), &runtimev1.DeployRequest{
		Stack:    &runtimev1.Stack{Id: id.Bytes(), Revision: 1, Manifest: helloManifest(bid)},
		Binaries: []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: bin}},
	}); err != nil {
		t.Fatal(err)
	}
	return srv, cfg, bin
}

func TestReceipts_SampledHelloCallIsBilledWhatItsReceiptSaysAndAuditMatches(t *testing.T) {
	id := ids.StackID{0xec, 1}
	sink := &receiptSink{}
	srv, cfg, bin := newReceiptServer(t, id, sink, func(c *Config) { c.ReceiptSampleRate = 1 })
	req := helloRequest(id)
	var resps []*runtimev1.InvokeResponse
	for range 2 {
		resp, err := srv.Invoke(context.Background(), req)
		if err != nil || resp.GetError() != nil || resp.GetResponse().GetStatus() != 200 {
			t.Fatalf("invoke: %v %v", resp, err)
		}
		resps = append(resps, resp)
	}
	if err := srv.Close(); err != nil { // sends the queued receipts
		t.Fatal(err)
	}
	got := sink.receipts()
	if len(got) != 2 {
		t.Fatalf("%d receipts for 2 sampled calls", len(got))
	}
	wantReq, _ := proto.MarshalOptions{Deterministic: true}.Marshal(req.GetRequest())
	for k, rc := range got {
		resp := resps[k]
		if rc.GetFuel() != resp.GetFuelUsed() || rc.GetMbInstructions() != resp.GetMbInstructions() || rc.GetMbInstructions() != rc.GetFuel()*64 {
			t.Errorf("receipt %d: fuel %d mb_instructions %d; the call was billed fuel %d mb_instructions %d (memory 64 MiB)",
				k, rc.GetFuel(), rc.GetMbInstructions(), resp.GetFuelUsed(), resp.GetMbInstructions())
		}
		if rc.GetFunction() != "hello.greet_user" || rc.GetBinaryId() != ids.BinaryID(bin) || string(rc.GetStackId()) != string(id.Bytes()) ||
			rc.GetMemoryLimitBytes() != 64<<20 || rc.GetStatus() != 200 || rc.GetOutcome() != "ok" || rc.GetReceiptId() == "" ||
			string(rc.GetRequest()) != string(wantReq) || string(rc.GetRequestHash()) != string(usage.RequestHash(wantReq)) {
			t.Errorf("receipt %d: %v", k, rc)
		}
		// Go's runtime reads the clock and random bytes (map seeds) at
		// start-up: both are taped, nothing from outside.
		if !slices.Equal(rc.GetNondeterministicInputs(), []string{InputRandom, InputClock}) &&
			!slices.Equal(rc.GetNondeterministicInputs(), []string{InputClock, InputRandom}) {
			t.Errorf("receipt %d: nondeterministic_inputs %v", k, rc.GetNondeterministicInputs())
		}
		if len(rc.GetTape().GetEntries()) == 0 {
			t.Errorf("receipt %d: empty tape", k)
		}
	}
	if got[0].GetReceiptId() == got[1].GetReceiptId() {
		t.Errorf("receipt ids repeat: %s", got[0].GetReceiptId())
	}
	// Both calls ran on fresh instances; their fuel may still differ, since
	// Go's map seeds come from random_get: the tape is what makes a re-run
	// exact. Each receipt's own tape reproduces its own fuel.
	t.Logf("fuel of two sampled calls: %d, %d", got[0].GetFuel(), got[1].GetFuel())
	if res, err := Audit(context.Background(), cfg, bin, got[1], AuditOptions{}); err != nil || !res.Match {
		t.Fatalf("audit of the second receipt: %+v %v", res, err)
	}

	rc := got[0]
	for run := range 2 { // replaying the tape is deterministic, every time
		res, err := Audit(context.Background(), cfg, bin, rc, AuditOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Match || res.Fuel != rc.GetFuel() || res.Status != 200 || res.TapeUsed != res.TapeLen {
			t.Fatalf("audit %d: %+v, receipt fuel %d", run, res, rc.GetFuel())
		}
		t.Logf("audit %d: fuel %d, tape %d entries", run, res.Fuel, res.TapeLen)
	}

	altered := proto.Clone(rc).(*billingv1.Receipt)
	altered.Fuel--
	if res, err := Audit(context.Background(), cfg, bin, altered, AuditOptions{}); err != nil || res.Match || res.Fuel != rc.GetFuel() {
		t.Fatalf("audit of a receipt with fuel-1: %+v %v", res, err)
	}

	other := cfg
	other.BulkBytesPerFuel = 16
	if _, err := Audit(context.Background(), other, bin, rc, AuditOptions{}); !errors.Is(err, ErrEngineMismatch) {
		t.Fatalf("audit with bulk_bytes_per_fuel 16: %v", err)
	}

	// A tape from another run does not fit the call: the re-run fails or
	// burns other fuel, never a silent match of made-up values.
	short := proto.Clone(rc).(*billingv1.Receipt)
	short.Tape.Entries = short.Tape.Entries[:len(short.Tape.Entries)/2]
	if res, err := Audit(context.Background(), cfg, bin, short, AuditOptions{}); err != nil || res.Match || !strings.Contains(res.Message, "replay tape diverged") {
		t.Fatalf("audit with half the tape: %+v %v", res, err)
	}
}

func TestReceipts_SampleRateZeroMakesNoneAndOneMakesOnePerCall(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want int
	}{{0, 0}, {1, 3}} {
		id := ids.StackID{0xec, 2, byte(tc.want)}
		sink := &receiptSink{}
		srv, _, _ := newReceiptServer(t, id, sink, func(c *Config) { c.ReceiptSampleRate = tc.rate })
		for range 3 {
			invokeHello(t, srv, helloRequest(id))
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if got := len(sink.receipts()); got != tc.want {
			t.Errorf("sample rate %v: %d receipts for 3 calls, want %d", tc.rate, got, tc.want)
		}
	}
}

func TestReceipts_SendFailuresAreDroppedAndCounted(t *testing.T) {
	id := ids.StackID{0xec, 3}
	sink := &receiptSink{fail: errors.New("billing down")}
	srv, _, _ := newReceiptServer(t, id, sink, func(c *Config) { c.ReceiptSampleRate = 1 })
	for range 2 {
		invokeHello(t, srv, helloRequest(id)) // the calls succeed all the same
	}
	srv.Close()
	if got := testutil.ToFloat64(srv.receipts.dropped); got != 2 {
		t.Fatalf("dropped = %v, want 2", got)
	}
	if got := testutil.ToFloat64(srv.receipts.made); got != 2 {
		t.Fatalf("made = %v, want 2", got)
	}
}

func TestReceipts_DbCallIsMarkedAndNotReproducible(t *testing.T) {
	bin := dbFunc(t)
	fake := newFakeMudb()
	sink := &receiptSink{}
	h := newDBHarness(t, func(c *Config) { c.MudbAddr = serveFakeMudb(t, fake); c.ReceiptSampleRate = 1 }, Deps{Receipts: sink})
	id := ids.StackID{0xec, 4}
	if err := h.deployDB(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	resp := h.invokeRaw(t, id, "ops", "", nil)
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	got := sink.receipts()
	if len(got) != 1 {
		t.Fatalf("%d receipts", len(got))
	}
	rc := got[0]
	if !slices.Contains(rc.GetNondeterministicInputs(), InputDB) || slices.Contains(rc.GetNondeterministicInputs(), InputStorage) {
		t.Fatalf("nondeterministic_inputs %v, want db among them", rc.GetNondeterministicInputs())
	}
	if rc.GetFuel() != resp.GetFuelUsed() {
		t.Fatalf("receipt fuel %d, billed %d", rc.GetFuel(), resp.GetFuelUsed())
	}
	if _, err := Audit(context.Background(), h.srv.cfg, bin, rc, AuditOptions{}); !errors.Is(err, ErrNotReproducible) || !strings.Contains(err.Error(), "db") {
		t.Fatalf("audit of a db call: %v", err)
	}
}

func TestReceipts_LargeRequestIsHashedNotKept(t *testing.T) {
	id := ids.StackID{0xec, 5}
	sink := &receiptSink{}
	srv, cfg, bin := newReceiptServer(t, id, sink, func(c *Config) { c.ReceiptSampleRate = 1; c.ReceiptMaxRequestBytes = 16 })
	req := helloRequest(id)
	invokeHello(t, srv, req)
	srv.Close()
	got := sink.receipts()
	if len(got) != 1 {
		t.Fatalf("%d receipts", len(got))
	}
	rc := got[0]
	full, _ := proto.MarshalOptions{Deterministic: true}.Marshal(req.GetRequest())
	if len(rc.GetRequest()) != 0 || string(rc.GetRequestHash()) != string(usage.RequestHash(full)) ||
		!slices.Contains(rc.GetNondeterministicInputs(), InputRequestNotKept) {
		t.Fatalf("receipt of a %d-byte request with a 16-byte limit: %v", len(full), rc)
	}
	if _, err := Audit(context.Background(), cfg, bin, rc, AuditOptions{}); !errors.Is(err, ErrNotReproducible) {
		t.Fatalf("audit: %v", err)
	}
}

func TestConfig_ReceiptSettingsAreValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.ReceiptSampleRate = 1.5
	cfg.ReceiptQueueSize = 0
	cfg.ReceiptBatchSize = -1
	cfg.ReceiptSendTimeout = 0
	cfg.ReceiptMaxRequestBytes = -1
	err := cfg.Validate()
	for _, field := range []string{"receipt_sample_rate", "receipt_queue_size", "receipt_batch_size", "receipt_send_timeout", "receipt_max_request_bytes"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate: %v, want it to name %s", err, field)
		}
	}
	def := DefaultConfig()
	def.Plaintext = true // the defaults but for the TLS files, which have none
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestReceipts_OutcomeNamesEveryEnding(t *testing.T) {
	for _, tc := range []struct {
		ce   *wasm.CallError
		want string
	}{
		{nil, "ok"},
		{&wasm.CallError{Kind: wasm.KindFunctionError}, "error"},
		{&wasm.CallError{Kind: wasm.KindFuelExhausted}, "out_of_fuel"},
		{&wasm.CallError{Kind: wasm.KindDeadline}, "deadline"},
		{&wasm.CallError{Kind: wasm.KindCrash}, "trap"},
		{&wasm.CallError{Kind: wasm.KindCrash, Exited: true}, "exit"},
		{&wasm.CallError{Kind: wasm.KindMemoryLimit}, "trap"},
		{&wasm.CallError{Kind: wasm.KindProtocol}, "protocol_error"},
	} {
		if got := outcomeOf(tc.ce); got != tc.want {
			t.Errorf("outcomeOf(%v) = %q, want %q", tc.ce, got, tc.want)
		}
	}
}
