package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/gobuild"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/runtime"
)

type receiptCollector struct {
	mu  sync.Mutex
	got []*billingv1.Receipt
}

func (c *receiptCollector) ReportReceipts(_ context.Context, rs ...*billingv1.Receipt) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, rs...)
	return nil
}

// sampledHello serves one GET /greet/audit call of examples/hello on a
// runtime node that samples every call, and returns the call's receipt
// and the binary.
func sampledHello(t *testing.T) (*billingv1.Receipt, []byte) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go function")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	path, err := gobuild.Cached(ctx, filepath.Join("..", "..", "..", "examples", "hello"), gobuild.TestCacheDir(), gobuild.Reactor)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := runtime.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr, cfg.AdminAddr, cfg.DataDir = "127.0.0.1:0", "", t.TempDir()
	cfg.ReceiptSampleRate = 1
	sink := &receiptCollector{}
	srv, err := runtime.New(cfg, runtime.Deps{Usage: usage.Discard{}, Receipts: sink})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	id := ids.StackID{0xa0, 0xd1}
	bid := ids.BinaryID(bin)
	manifest := fmt.Sprintf("name: hello\nversion: \"0.1\"\nservices:\n  - type: Function\n    name: hello\n    binary: %s\n    runtime: wasi1.0\n    memory_limit: 64MiB\n", bid)
	if _, err := srv.Deploy(ctx, &runtimev1.DeployRequest{
		Stack:    &runtimev1.Stack{Id: id.Bytes(), Revision: 1, Manifest: []byte(manifest)},
		Binaries: []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: bin}},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Invoke(ctx, &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "hello.greet_user",
		Request: &typesv1.HttpRequest{Method: "GET", PathParams: map[string]string{"name": "audit"}}})
	if err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("invoke: %v %v", resp, err)
	}
	if err := srv.Close(); err != nil { // sends the receipt
		t.Fatal(err)
	}
	if len(sink.got) != 1 || sink.got[0].GetFuel() != resp.GetFuelUsed() {
		t.Fatalf("receipts %v for a call billed fuel %d", sink.got, resp.GetFuelUsed())
	}
	return sink.got[0], bin
}

func writeSigned(t *testing.T, dir, name string, sr *billingv1.SignedReceipt) string {
	t.Helper()
	b, err := protojson.Marshal(sr)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, string(b))
}

func TestAudit_SignedReceiptOfASampledHelloCallMatches(t *testing.T) {
	rc, bin := sampledHello(t)
	kp, err := ledger.GenerateKeypair()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	binPath := filepath.Join(dir, "hello.wasm")
	if err := os.WriteFile(binPath, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	sr, err := usage.SignReceipt(kp, rc)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "audit", "--file", writeSigned(t, dir, "ok.json", sr), "--binary", binPath)
	if want := fmt.Sprintf("match: fuel %d (%d MB-instructions)\n", rc.GetFuel(), rc.GetMbInstructions()); code != ExitOK || !strings.HasSuffix(out, want) {
		t.Fatalf("audit: exit %d\n%s%s\nwant it to end with %q", code, out, errOut, want)
	}
	if !strings.Contains(out, "signature: valid, by "+kp.Pubkey().String()) {
		t.Errorf("audit output does not name the signer:\n%s", out)
	}

	// An altered receipt: one byte of the signed bytes changed.
	altered := proto.Clone(sr).(*billingv1.SignedReceipt)
	altered.Receipt[len(altered.Receipt)/2] ^= 1
	code, out, errOut = run(t, "", "audit", "--file", writeSigned(t, dir, "altered.json", altered), "--binary", binPath)
	if code != ExitInvalid || !strings.Contains(errOut, "receipt refused") || strings.Contains(out, "match") {
		t.Fatalf("altered receipt: exit %d\n%s%s", code, out, errOut)
	}

	// A receipt with a false fuel, signed all the same: the re-run says so.
	lie := proto.Clone(rc).(*billingv1.Receipt)
	lie.Fuel += 1000
	srLie, err := usage.SignReceipt(kp, lie)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "", "audit", "--file", writeSigned(t, dir, "lie.json", srLie), "--binary", binPath)
	if want := fmt.Sprintf("MISMATCH: receipt says %d, re-run used %d\n", lie.GetFuel(), rc.GetFuel()); code != ExitInvalid || !strings.Contains(out, want) {
		t.Fatalf("receipt with fuel+1000: exit %d\n%s%s\nwant %q", code, out, errOut, want)
	}
}

func TestAudit_UsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "name the receipt"},
		{[]string{"audit", "rt/1"}, "needs --billing"},
		{[]string{"audit", "rt/1", "--file", "x.json"}, "not both"},
		{[]string{"audit", "--file", filepath.Join(dir, "missing.json")}, "--file"},
	} {
		code, _, errOut := run(t, "", tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("mu %v: exit %d %q, want exit %d and %q", tc.args, code, errOut, ExitUsage, tc.want)
		}
	}
	code, _, errOut := run(t, "", "audit", "--file", writeFile(t, dir, "junk.json", `{"receipt": 5}`))
	if code != ExitInvalid || !strings.Contains(errOut, "not a SignedReceipt") {
		t.Errorf("junk file: exit %d %q", code, errOut)
	}
}
