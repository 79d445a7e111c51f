package gateway_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mr-tron/base58"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/reqsign"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
)

func (f *fakeRuntime) Status(ctx context.Context, req *runtimev1.StatusRequest) (*runtimev1.StatusResponse, error) {
	f.mu.Lock()
	fn := f.status
	f.mu.Unlock()
	if fn == nil {
		return f.UnimplementedRuntimeServiceServer.Status(ctx, req)
	}
	return fn(ctx, req)
}

func (f *fakeRuntime) setStatus(fn func(context.Context, *runtimev1.StatusRequest) (*runtimev1.StatusResponse, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = fn
}

// metered is how many usage records the sink has once what was answered
// is flushed.
func (h *harness) metered() int {
	h.t.Helper()
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	return h.sink.Records()
}

// unmetered fails the test if what ran since metered returned before was
// metered.
func (h *harness) unmetered(before int) {
	h.t.Helper()
	if n := h.metered(); n != before {
		h.t.Fatalf("metered: %d usage records, %d before", n, before)
	}
}

func (f *fakeRuntime) StreamLogs(req *runtimev1.StreamLogsRequest, stream runtimev1.RuntimeService_StreamLogsServer) error {
	f.mu.Lock()
	fn := f.logs
	f.mu.Unlock()
	if fn == nil {
		return f.UnimplementedRuntimeServiceServer.StreamLogs(req, stream)
	}
	return fn(req, stream)
}

// fakeLogs serves StreamLogs as the runtime does: the last tail entries
// of its history that match the filter, then (unless no_follow) what is
// sent on live.
type fakeLogs struct {
	mu      sync.Mutex
	history []*runtimev1.LogEntry
	reqs    []*runtimev1.StreamLogsRequest
	live    chan *runtimev1.LogEntry
	open    atomic.Int32
}

func newFakeLogs(rt *fakeRuntime) *fakeLogs {
	l := &fakeLogs{live: make(chan *runtimev1.LogEntry, 16)}
	rt.mu.Lock()
	rt.logs = l.serve
	rt.mu.Unlock()
	return l
}

func matches(req *runtimev1.StreamLogsRequest, e *runtimev1.LogEntry) bool {
	fn := req.GetFunction()
	return fn == "" || e.GetFunction() == fn || strings.HasPrefix(e.GetFunction(), fn+".")
}

func (l *fakeLogs) serve(req *runtimev1.StreamLogsRequest, stream runtimev1.RuntimeService_StreamLogsServer) error {
	l.mu.Lock()
	l.reqs = append(l.reqs, proto.Clone(req).(*runtimev1.StreamLogsRequest))
	var hist []*runtimev1.LogEntry
	for _, e := range l.history {
		if matches(req, e) {
			hist = append(hist, e)
		}
	}
	l.mu.Unlock()
	hist = hist[max(len(hist)-int(req.GetTail()), 0):]
	l.open.Add(1)
	defer l.open.Add(-1)
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	for _, e := range hist {
		if err := stream.Send(&runtimev1.StreamLogsResponse{Entry: e}); err != nil {
			return err
		}
	}
	if req.GetNoFollow() {
		return nil
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case e := <-l.live:
			if matches(req, e) {
				if err := stream.Send(&runtimev1.StreamLogsResponse{Entry: e}); err != nil {
					return err
				}
			}
		}
	}
}

func (l *fakeLogs) lastReq(t *testing.T) *runtimev1.StreamLogsRequest {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reqs) == 0 {
		t.Fatal("StreamLogs was not called")
	}
	return l.reqs[len(l.reqs)-1]
}

var logTime = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

func logEntry(id ids.StackID, fn, body string) *runtimev1.LogEntry {
	return &runtimev1.LogEntry{StackId: id.Bytes(), Function: fn, Body: body, Level: runtimev1.LogLevel_LOG_LEVEL_INFO,
		Source: runtimev1.LogSource_LOG_SOURCE_LOG, Time: timestamppb.New(logTime), Node: "runtime-1"}
}

func (h *harness) statusURL(id ids.StackID) string { return h.base + gateway.StacksPath + id.String() }

func getStatus(t *testing.T, h *harness, id ids.StackID) gateway.StackStatus {
	t.Helper()
	resp, body := h.do("GET", h.statusURL(id), nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var st gateway.StackStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStackStatus_ServedStackReportsGatewayAndOwnerRevisions(t *testing.T) {
	h := newHarness(t)
	h.rt.setStatus(func(_ context.Context, req *runtimev1.StatusRequest) (*runtimev1.StatusResponse, error) {
		return &runtimev1.StatusResponse{NodeName: "runtime-1",
			Stacks: []*runtimev1.StackStatus{{StackId: req.GetStackId(), Revision: 1}}}, nil
	})
	before := h.metered()
	want := gateway.StackStatus{Stack: h.stack.String(), Revision: 1, Enabled: true,
		Owner:     gateway.OwnerStatus{Node: "runtime-1", Revision: 1, Deployed: true},
		Responses: []gateway.ResponseBucket{}} // nothing answered yet: [], not null
	if got := getStatus(t, h, h.stack); !reflect.DeepEqual(got, want) {
		t.Fatalf("status %+v, want %+v", got, want)
	}
	if resp, body := h.do("HEAD", h.statusURL(h.stack), nil, nil); resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	resp, body := h.do("POST", h.statusURL(h.stack), nil, nil)
	wantError(t, resp, body, 405, gateway.KindMethodNotAllowed)
	if resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("Allow %q", resp.Header.Get("Allow"))
	}
	h.unmetered(before)
}

func TestStackStatus_NotDeployedOnTheOwnerIsNoError(t *testing.T) {
	h := newHarness(t)
	h.rt.setStatus(func(context.Context, *runtimev1.StatusRequest) (*runtimev1.StatusResponse, error) {
		return nil, status.Error(codes.NotFound, "stack is not deployed on this node")
	})
	st := getStatus(t, h, h.stack)
	if st.Owner != (gateway.OwnerStatus{Node: gateway.StaticNode}) {
		t.Fatalf("owner %+v", st.Owner)
	}
}

func TestStackStatus_UnknownOrMalformedStackGets404(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{newStackID(t).String(), "not_base58", newStackID(t).String() + "/nope"} {
		resp, body := h.do("GET", h.base+gateway.StacksPath+path, nil, nil)
		kind := gateway.KindStackNotFound
		if strings.HasSuffix(path, "/nope") {
			kind = gateway.KindNotFound
		}
		wantError(t, resp, body, 404, kind)
	}
}

func TestStackStatus_DisabledStackSaysWhy(t *testing.T) {
	h := newHarness(t)
	h.srv.SetStackEnabled(h.stack, false, "escrow balance 5 is under the minimum 10")
	st := getStatus(t, h, h.stack)
	if st.Enabled || st.DisabledReason != "escrow balance 5 is under the minimum 10" || st.Revision != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestStackStatus_OwnerDownFillsErrorWith200(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.StatusTimeout = 5 * time.Second })
	h.rt.kill()
	st := getStatus(t, h, h.stack)
	if st.Owner.Error == "" || st.Owner.Deployed || st.Owner.Node != gateway.StaticNode || st.Revision != 1 {
		t.Fatalf("status %+v", st)
	}
	if strings.Contains(st.Owner.Error, h.rt.addr) {
		t.Fatalf("the error names the runtime's address: %q", st.Owner.Error)
	}
}

// logsHarness is a gateway following a chain that holds one stack owned
// by key, with a fake runtime log stream.
type logsHarness struct {
	*chainHarness
	key  ed25519.PrivateKey
	id   ids.StackID
	logs *fakeLogs
}

func newLogsHarness(t *testing.T, opts ...harnessOpt) *logsHarness {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := newChainHarness(t, opts...)
	id := newStackID(t)
	st := chainStack(id, 1, true)
	st.Owner = pub
	ch.x.PutStack(st)
	eventually(t, "the stack routed", statusIs(ch, id, "web/todos", 200))
	return &logsHarness{chainHarness: ch, key: key, id: id, logs: newFakeLogs(ch.rt)}
}

func (h *logsHarness) logsURL(query string) string {
	u := h.base + gateway.StacksPath + h.id.String() + "/logs"
	if query != "" {
		u += "?" + query
	}
	return u
}

// open sends GET of url signed with key at when (unsigned with a nil key).
func (h *logsHarness) open(ctx context.Context, url string, key ed25519.PrivateKey, when time.Time) *http.Response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if key != nil {
		reqsign.SignRequest(req, key, when)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readLines reads the NDJSON lines of resp until its end.
func readLines(t *testing.T, resp *http.Response) []gateway.LogLine {
	t.Helper()
	var out []gateway.LogLine
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l gateway.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantStream(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != gateway.ContentTypeNDJSON {
		var e errorJSON
		_ = json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("status %d %q: %+v", resp.StatusCode, resp.Header.Get("Content-Type"), e)
	}
}

func wantErrorResp(t *testing.T, resp *http.Response, code int, kind string) errorJSON {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.Write(sc.Bytes())
	}
	return wantError(t, resp, []byte(b.String()), code, kind)
}

func TestLogs_HistoryOnlyEndsAfterTheTail(t *testing.T) {
	h := newLogsHarness(t)
	for i := range 5 {
		h.logs.history = append(h.logs.history, logEntry(h.id, "api.get", "line "+strconv.Itoa(i)))
	}
	before := h.metered()
	resp := h.open(context.Background(), h.logsURL("tail=2"), h.key, time.Now())
	wantStream(t, resp)
	lines := readLines(t, resp)
	want := []gateway.LogLine{
		{Time: "2026-01-02T03:04:05.000000006Z", Stack: h.id.String(), Function: "api.get", Level: "info", Source: "log", Body: "line 3", Node: "runtime-1"},
		{Time: "2026-01-02T03:04:05.000000006Z", Stack: h.id.String(), Function: "api.get", Level: "info", Source: "log", Body: "line 4", Node: "runtime-1"},
	}
	if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Fatalf("lines %+v", lines)
	}
	if r := h.logs.lastReq(t); !r.GetNoFollow() || r.GetTail() != 2 || string(r.GetStackId()) != string(h.id[:]) {
		t.Fatalf("StreamLogs request %v", r)
	}
	// No tail: the gateway's maximum.
	readLines(t, h.open(context.Background(), h.logsURL(""), h.key, time.Now()))
	if r := h.logs.lastReq(t); r.GetTail() != uint32(gateway.DefaultConfig().LogsMaxTail) {
		t.Fatalf("tail without one asked: %d", r.GetTail())
	}
	h.unmetered(before)
}

func TestLogs_FollowSeesALineProducedAfterConnecting(t *testing.T) {
	h := newLogsHarness(t)
	h.logs.history = []*runtimev1.LogEntry{logEntry(h.id, "api.get", "before")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := h.open(ctx, h.logsURL("follow=1&tail=10"), h.key, time.Now())
	wantStream(t, resp)
	dec := json.NewDecoder(resp.Body)
	var l gateway.LogLine
	if err := dec.Decode(&l); err != nil || l.Body != "before" {
		t.Fatalf("history line %+v %v", l, err)
	}
	h.logs.live <- logEntry(h.id, "api.get", "after")
	if err := dec.Decode(&l); err != nil || l.Body != "after" {
		t.Fatalf("live line %+v %v", l, err)
	}
	if r := h.logs.lastReq(t); r.GetNoFollow() {
		t.Fatalf("followed stream asked no_follow: %v", r)
	}
}

func TestLogs_FunctionFilterReachesTheRuntime(t *testing.T) {
	h := newLogsHarness(t)
	h.logs.history = []*runtimev1.LogEntry{
		logEntry(h.id, "api.get", "get"), logEntry(h.id, "other.x", "other"), logEntry(h.id, "api", "assembly"),
	}
	for _, c := range []struct {
		function string
		want     []string
	}{
		{"api", []string{"get", "assembly"}},
		{"api.get", []string{"get"}},
	} {
		resp := h.open(context.Background(), h.logsURL("function="+c.function), h.key, time.Now())
		wantStream(t, resp)
		var got []string
		for _, l := range readLines(t, resp) {
			got = append(got, l.Body)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") || h.logs.lastReq(t).GetFunction() != c.function {
			t.Fatalf("function %q: lines %v", c.function, got)
		}
	}
}

func TestLogs_UnsignedOrStaleGets401(t *testing.T) {
	h := newLogsHarness(t)
	resp := h.open(context.Background(), h.logsURL(""), nil, time.Time{})
	e := wantErrorResp(t, resp, 401, gateway.KindUnauthorized)
	if !strings.Contains(e.Error.Message, base58.Encode(h.key.Public().(ed25519.PublicKey))) || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("401 %q does not name the owner, or no WWW-Authenticate", e.Error.Message)
	}
	stale := time.Now().Add(-gateway.DefaultConfig().LogsMaxSkew - time.Minute)
	e = wantErrorResp(t, h.open(context.Background(), h.logsURL(""), h.key, stale), 401, gateway.KindUnauthorized)
	if !strings.Contains(e.Error.Message, "skew") {
		t.Fatalf("stale 401 says %q", e.Error.Message)
	}
	// A signature over another query does not cover this one.
	req, _ := http.NewRequest("GET", h.logsURL("tail=1"), nil)
	reqsign.SignRequest(req, h.key, time.Now())
	req.URL.RawQuery = "tail=5"
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	wantErrorResp(t, resp2, 401, gateway.KindUnauthorized)
}

func TestLogs_WrongKeyGets403NamingBoth(t *testing.T) {
	h := newLogsHarness(t)
	otherPub, other, _ := ed25519.GenerateKey(nil)
	e := wantErrorResp(t, h.open(context.Background(), h.logsURL(""), other, time.Now()), 403, gateway.KindForbidden)
	want := "signed by " + base58.Encode(otherPub) + ", stack " + h.id.String() + " is owned by " + base58.Encode(h.key.Public().(ed25519.PublicKey))
	if e.Error.Message != want {
		t.Fatalf("403 says %q, want %q", e.Error.Message, want)
	}
}

func TestLogs_TailOverTheMaxGets400(t *testing.T) {
	h := newLogsHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.LogsMaxTail = 10 })
	for _, q := range []string{"tail=11", "tail=-1", "tail=x", "follow=maybe"} {
		wantErrorResp(t, h.open(context.Background(), h.logsURL(q), h.key, time.Now()), 400, gateway.KindBadRequest)
	}
	wantStream(t, h.open(context.Background(), h.logsURL("tail=10"), h.key, time.Now()))
}

func TestLogs_ConcurrencyLimitGets429(t *testing.T) {
	h := newLogsHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.LogsMaxStreams = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	first := h.open(ctx, h.logsURL("follow=1"), h.key, time.Now())
	wantStream(t, first)
	wantErrorResp(t, h.open(context.Background(), h.logsURL(""), h.key, time.Now()), 429, gateway.KindTooManyLogStreams)
	cancel() // the slot is given back when the first stream ends
	first.Body.Close()
	eventually(t, "the runtime stream closed", func() bool { return h.logs.open.Load() == 0 })
	eventually(t, "a stream slot free", func() bool {
		resp := h.open(context.Background(), h.logsURL(""), h.key, time.Now())
		defer resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func TestLogs_CloseWithAFollowedStreamReturnsPromptly(t *testing.T) {
	h := newLogsHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.ShutdownTimeout = time.Minute })
	resp := h.open(context.Background(), h.logsURL("follow=1"), h.key, time.Now())
	wantStream(t, resp)
	done := make(chan error, 1)
	go func() { done <- h.srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second): // a third of ShutdownTimeout: the stream did not hold Close
		t.Fatal("Close waits for the open log stream")
	}
	readLines(t, resp) // the stream ended
}

func TestLogs_StaticStackWithoutOwner(t *testing.T) {
	h := newHarness(t)
	newFakeLogs(h.rt)
	url := h.base + gateway.StacksPath + h.stack.String() + "/logs"
	resp, body := h.do("GET", url, nil, nil)
	e := wantError(t, resp, body, 403, gateway.KindForbidden)
	if !strings.Contains(e.Error.Message, "does not know the owner of stack "+h.stack.String()) {
		t.Fatalf("403 says %q", e.Error.Message)
	}

	open := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.LogsAllowUnsigned = true })
	newFakeLogs(open.rt)
	resp, _ = open.do("GET", open.base+gateway.StacksPath+open.stack.String()+"/logs", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("with logs_allow_unsigned: %d", resp.StatusCode)
	}
}

func TestLogs_FollowReconnectsWithoutHistoryWhenTheRuntimeGoesAway(t *testing.T) {
	h := newLogsHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.LogsReconnectDelay = time.Millisecond })
	h.logs.history = []*runtimev1.LogEntry{logEntry(h.id, "api.get", "old")}
	var calls atomic.Int32
	h.rt.mu.Lock()
	h.rt.logs = func(req *runtimev1.StreamLogsRequest, stream runtimev1.RuntimeService_StreamLogsServer) error {
		switch calls.Add(1) {
		case 1: // the history, then the node shuts down
			stream.SendHeader(nil)
			stream.Send(&runtimev1.StreamLogsResponse{Entry: logEntry(h.id, "api.get", "old")})
			return status.Error(codes.Unavailable, "runtime is shutting down")
		case 2: // the next owner is not ready yet
			return status.Error(codes.Unavailable, "connection refused")
		}
		return h.logs.serve(req, stream)
	}
	h.rt.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := h.open(ctx, h.logsURL("follow=1&tail=5"), h.key, time.Now())
	wantStream(t, resp)
	dec := json.NewDecoder(resp.Body)
	var l gateway.LogLine
	if err := dec.Decode(&l); err != nil || l.Body != "old" {
		t.Fatalf("history %+v %v", l, err)
	}
	eventually(t, "the stream reconnected", func() bool { return h.logs.open.Load() == 1 })
	if r := h.logs.lastReq(t); r.GetTail() != 0 || r.GetNoFollow() {
		t.Fatalf("reconnection asked %v, want no history and follow", r)
	}
	h.logs.live <- logEntry(h.id, "api.get", "new")
	if err := dec.Decode(&l); err != nil || l.Body != "new" {
		t.Fatalf("after reconnecting %+v %v", l, err)
	}
}
