package runtime

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// Every RuntimeService method answers the in-process client as it answers
// a gRPC client: the same responses, error codes and reasons, and the same
// billing.
func TestInProcessClient_AnswersAsGRPCDoes(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	clients := []struct {
		name string
		c    runtimev1.RuntimeServiceClient
	}{{"grpc", h.client}, {"in_process", h.srv.InProcessClient()}}
	bin := wat(t, okWAT)
	bid := ids.BinaryID(bin)
	type outcome struct {
		resp   proto.Message
		code   codes.Code
		reason rpcerr.Reason
	}
	var results [2][]outcome
	for i, cl := range clients {
		id := ids.StackID{byte(40 + i)}
		rec := func(resp proto.Message, err error) {
			results[i] = append(results[i], outcome{resp, code(err), rpcerr.ReasonOf(err)})
		}
		invoke := func(stack []byte, fn string) {
			resp, err := cl.c.Invoke(ctx, &runtimev1.InvokeRequest{StackId: stack, Function: fn,
				Request: &typesv1.HttpRequest{Method: "GET", Body: []byte("x")}})
			rec(resp, err)
		}
		sctx, scancel := context.WithCancel(ctx)
		stream, err := cl.c.StreamLogs(sctx, &runtimev1.StreamLogsRequest{StackId: id.Bytes()})
		if err != nil {
			t.Fatalf("%s: StreamLogs: %v", cl.name, err)
		}
		waitForSubscriber(t, h.srv)
		rec(cl.c.Deploy(ctx, &runtimev1.DeployRequest{
			Stack:    &runtimev1.Stack{Id: id.Bytes(), Revision: 1, Manifest: manifestFor(bid)},
			Binaries: []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: bin}},
		}))
		invoke(id.Bytes(), "fn.handler") // pays the prewarmed instance's start-up
		invoke(id.Bytes(), "fn.handler")
		invoke(id.Bytes(), "nope.handler")
		invoke(id.Bytes(), "no-dot")
		invoke([]byte{1, 2}, "fn.handler")
		st, err := cl.c.Status(ctx, &runtimev1.StatusRequest{StackId: id.Bytes()})
		if err != nil {
			t.Fatalf("%s: Status: %v", cl.name, err)
		}
		if got := st.GetStacks()[0].GetFunctions()[0].GetInvocations(); got != 2 {
			t.Errorf("%s: Status counts %d invocations, want 2", cl.name, got)
		}
		var logged []string // the deploy's line, then the function's
		for len(logged) < 2 {
			entry, err := stream.Recv()
			if err != nil {
				t.Fatalf("%s: log stream after %q: %v", cl.name, logged, err)
			}
			logged = append(logged, entry.GetEntry().GetBody())
		}
		if logged[1] != "hello" {
			t.Errorf("%s: log stream %q, want the function's hello second", cl.name, logged)
		}
		scancel()
		// So that the next stream's waitForSubscriber waits for that one.
		for deadline := time.Now().Add(10 * time.Second); h.srv.Logs().Subscribers() != 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the log stream never unsubscribed", cl.name)
			}
		}
		rec(cl.c.Undeploy(ctx, &runtimev1.UndeployRequest{StackId: id.Bytes()}))
		invoke(id.Bytes(), "fn.handler")
		if err := h.srv.FlushUsage(ctx); err != nil {
			t.Fatal(err)
		}
		var billed uint64
		for _, o := range results[i] {
			if r, ok := o.resp.(*runtimev1.InvokeResponse); ok {
				billed += r.GetMbInstructions()
			}
		}
		if got := h.usage.Total(id, usage.FunctionMBInstructions); got != billed || billed == 0 {
			t.Errorf("%s: usage %d mb-instructions, responses say %d", cl.name, got, billed)
		}
	}
	if len(results[0]) != len(results[1]) {
		t.Fatalf("outcomes: %d over gRPC, %d in process", len(results[0]), len(results[1]))
	}
	for j := range results[0] {
		g, p := results[0][j], results[1][j]
		if g.code != p.code || g.reason != p.reason || !proto.Equal(g.resp, p.resp) {
			t.Errorf("call %d: gRPC %v %s %v; in process %v %s %v", j, g.code, g.reason, g.resp, p.code, p.reason, p.resp)
		}
	}
}

func TestInProcessClient_UnavailableBeforeStartAndAfterClose(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = ""
	cfg.DataDir = t.TempDir()
	srv, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	c := srv.InProcessClient()
	req := &runtimev1.InvokeRequest{StackId: ids.StackID{1}.Bytes(), Function: "fn.handler", Request: &typesv1.HttpRequest{}}
	if _, err := c.Invoke(context.Background(), req); code(err) != codes.Unavailable {
		t.Errorf("before Start: %v, want UNAVAILABLE", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(context.Background(), req); code(err) != codes.NotFound {
		t.Errorf("started: %v, want NOT_FOUND (no such stack)", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(context.Background(), req); code(err) != codes.Unavailable || rpcerr.ReasonOf(err) != rpcerr.ShuttingDown {
		t.Errorf("after Close: %v, want UNAVAILABLE SHUTTING_DOWN", err)
	}
	if _, err := c.StreamLogs(context.Background(), &runtimev1.StreamLogsRequest{}); code(err) != codes.Unavailable {
		t.Errorf("StreamLogs after Close: %v, want UNAVAILABLE", err)
	}
}
