package runtime

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/muprotocol/mu/libs/ids"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// recvN reads n entries of stream.
func recvN(t *testing.T, stream runtimev1.RuntimeService_StreamLogsClient, n int) []*runtimev1.LogEntry {
	t.Helper()
	var out []*runtimev1.LogEntry
	for range n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d entries: %v", len(out), err)
		}
		out = append(out, resp.GetEntry())
	}
	return out
}

func (h *harness) invokeOK(t *testing.T, id ids.StackID) {
	t.Helper()
	resp, err := h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn.handler",
		Request: &typesv1.HttpRequest{Method: "GET"}})
	if err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("invoke: %v %v", resp, err)
	}
}

func TestStreamLogs_TailSendsRecentLinesAndNoFollowEnds(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := ids.StackID{21}
	if err := h.deploy(t, id, 1, wat(t, okWAT)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.invokeOK(t, id) // each call logs "hello"
	}

	// History only: the last 2 lines of the function, then the end.
	stream, err := h.client.StreamLogs(ctx, &runtimev1.StreamLogsRequest{StackId: id.Bytes(), Function: "fn", Tail: 2, NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range recvN(t, stream, 2) {
		if e.GetBody() != "hello" || e.GetFunction() != "fn" || e.GetNode() != h.srv.cfg.NodeName || e.GetDropped() != 0 {
			t.Fatalf("entry %v", e)
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("no_follow stream after the history: %v, want EOF", err)
	}

	// Every stack, no function filter: the runtime's deploy line is there too.
	stream, err = h.client.StreamLogs(ctx, &runtimev1.StreamLogsRequest{Tail: 100, NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	if es := recvN(t, stream, 4); es[0].GetSource() != runtimev1.LogSource_LOG_SOURCE_RUNTIME {
		t.Fatalf("first kept entry %v, want the deploy line", es[0])
	}

	// History then live lines, without a gap or a repeat. Instances tag
	// their lines with the assembly, so the assembly filter selects them.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	follow, err := h.client.StreamLogs(sctx, &runtimev1.StreamLogsRequest{StackId: id.Bytes(), Function: "fn", Tail: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := follow.Header(); err != nil { // sent before any entry
		t.Fatal(err)
	}
	recvN(t, follow, 3)
	h.invokeOK(t, id)
	if es := recvN(t, follow, 1); es[0].GetBody() != "hello" {
		t.Fatalf("live entry %v", es[0])
	}
}

func TestStreamLogs_TailZeroFollowsAsBefore(t *testing.T) {
	h := newHarness(t)
	id := ids.StackID{22}
	if err := h.deploy(t, id, 1, wat(t, okWAT)); err != nil {
		t.Fatal(err)
	}
	h.invokeOK(t, id) // kept, but not asked for
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := h.client.StreamLogs(ctx, &runtimev1.StreamLogsRequest{StackId: id.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	waitForSubscriber(t, h.srv)
	h.invokeOK(t, id)
	if es := recvN(t, stream, 1); es[0].GetBody() != "hello" || es[0].GetTime().AsTime().IsZero() {
		t.Fatalf("entry %v", es[0])
	}
}

func TestStreamLogs_UndeployDropsTheHistory(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id, other := ids.StackID{23}, ids.StackID{24}
	for _, s := range []ids.StackID{id, other} {
		if err := h.deploy(t, s, 1, wat(t, okWAT)); err != nil {
			t.Fatal(err)
		}
		h.invokeOK(t, s)
	}
	if _, err := h.client.Undeploy(ctx, &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
		t.Fatal(err)
	}
	kept := func(s ids.StackID) int {
		return len(h.srv.Logs().Recent(logs.Filter{Stack: s}, 100))
	}
	if n := kept(id); n != 0 {
		t.Fatalf("%d lines kept for the undeployed stack", n)
	}
	if n := kept(other); n != 2 { // its deploy line and "hello"
		t.Fatalf("%d lines kept for the neighbour, want 2", n)
	}
}
