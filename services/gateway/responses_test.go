package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// testClock is a settable clock for the gateway's response counts.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.set(t)
	return c
}

func (c *testClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// switchableRuntimes answers with no runtime while off is set.
type switchableRuntimes struct {
	gateway.RuntimeResolver
	off *atomic.Bool
}

func (s switchableRuntimes) Candidates(id ids.StackID, limit int, dst []gateway.Candidate) []gateway.Candidate {
	if s.off.Load() {
		return dst
	}
	return s.RuntimeResolver.Candidates(id, limit, dst)
}

func responses(t *testing.T, h *harness) []gateway.ResponseBucket {
	t.Helper()
	return getStatus(t, h, h.stack).Responses
}

func wantResponses(t *testing.T, h *harness, want ...gateway.ResponseBucket) {
	t.Helper()
	if want == nil {
		want = []gateway.ResponseBucket{}
	}
	if got := responses(t, h); !reflect.DeepEqual(got, want) {
		t.Fatalf("responses %+v, want %+v", got, want)
	}
}

var clockStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestResponses_CountsEveryAnswerOfTheStackByClass(t *testing.T) {
	clock := newTestClock(clockStart)
	var off atomic.Bool
	h := newHarnessClock(t, clock.now, func(_ *gateway.Config, d *gateway.Deps) {
		d.Runtimes = switchableRuntimes{RuntimeResolver: d.Runtimes, off: &off}
	})
	h.rt.setHandle(func(_ context.Context, req *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
		if req.GetFunction() == "api.file" { // a function's own 3xx
			return &runtimev1.InvokeResponse{Response: &typesv1.HttpResponse{Status: 304,
				Headers: []*typesv1.Header{{Name: "ETag", Value: `"1"`}}}}, nil
		}
		return okResponse(req.GetFunction()), nil
	})
	wantResponses(t, h) // nothing yet: []

	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "web/todos", 200},
		{"GET", "web/todos/7", 200},
		{"HEAD", "web/", 200},
		{"GET", "web/files/a", 304},
		{"GET", "web/nope/nope", 404}, // no endpoint in the stack's gateway
		{"GET", "nogateway/x", 404},   // no such gateway in the stack
		{"PATCH", "web/todos", 405},
	} {
		if resp, body := h.do(c.method, h.url(c.path), nil, nil); resp.StatusCode != c.status {
			t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, resp.StatusCode, body, c.status)
		}
	}
	h.srv.SetStackEnabled(h.stack, false, "escrow empty")
	resp, body := h.do("GET", h.url("web/todos"), nil, nil)
	wantError(t, resp, body, http.StatusPaymentRequired, gateway.KindStackDisabled)
	h.srv.SetStackEnabled(h.stack, true, "")
	off.Store(true)
	resp, body = h.do("GET", h.url("web/todos"), nil, nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
	off.Store(false)

	// Not the stack's: an unknown stack, and headers refused before the
	// stack is looked up.
	other, _, _ := ids.NewStackID()
	resp, body = h.do("GET", h.base+"/"+other.String()+"/web/todos", nil, nil)
	wantError(t, resp, body, http.StatusNotFound, gateway.KindStackNotFound)
	resp, body = h.do("GET", h.url("web/todos"), nil, http.Header{"X-Big": {strings.Repeat("x", 70<<10)}})
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("big headers: %d %s", resp.StatusCode, body)
	}

	// The status requests themselves (/_mu/) are not counted either.
	want := gateway.ResponseBucket{Start: "2026-01-02T03:00:00Z", C2xx: 3, C3xx: 1, C4xx: 4, C5xx: 1}
	wantResponses(t, h, want)
	wantResponses(t, h, want)

	// The exact JSON of the field.
	resp, body = h.do("GET", h.statusURL(h.stack), nil, nil)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if got := string(raw["responses"]); got != `[{"start":"2026-01-02T03:00:00Z","2xx":3,"3xx":1,"4xx":4,"5xx":1}]` {
		t.Fatalf("responses JSON %s", got)
	}
}

func TestResponses_HourlyBucketsRollOverWithinTheWindow(t *testing.T) {
	clock := newTestClock(clockStart)
	h := newHarnessClock(t, clock.now, func(c *gateway.Config, _ *gateway.Deps) { c.ResponseHistory = 3 * time.Hour })
	get := func(path string, n int) {
		t.Helper()
		for range n {
			h.do("GET", h.url(path), nil, nil)
		}
	}
	get("web/todos", 2)                                      // 03:04
	clock.set(time.Date(2026, 1, 2, 3, 59, 59, 0, time.UTC)) // still 03:00
	get("web/nope/nope", 1)
	clock.add(time.Second) // 04:00:00 sharp: the next bucket
	get("web/todos", 1)
	clock.add(2 * time.Hour) // 06:00, 05:00 answers nothing
	get("web/nope/nope", 3)
	// A window of 3 hours ending at 06:00 holds 04:00..06:00: 03:00 is
	// gone, and the empty 05:00 is not listed.
	wantResponses(t, h,
		gateway.ResponseBucket{Start: "2026-01-02T04:00:00Z", C2xx: 1},
		gateway.ResponseBucket{Start: "2026-01-02T06:00:00Z", C4xx: 3},
	)
	// A quiet window later, nothing is left.
	clock.add(3 * time.Hour)
	wantResponses(t, h)
	// The reused buckets count from zero.
	get("web/todos", 1)
	wantResponses(t, h, gateway.ResponseBucket{Start: "2026-01-02T09:00:00Z", C2xx: 1})
}

func TestResponses_DefaultWindowIs24Hours(t *testing.T) {
	clock := newTestClock(clockStart)
	h := newHarnessClock(t, clock.now)
	for i := range 30 { // 03:04 on the 2nd to 08:04 on the 3rd, one request an hour
		if i > 0 {
			clock.add(time.Hour)
		}
		h.do("GET", h.url("web/todos"), nil, nil)
	}
	got := responses(t, h)
	if len(got) != 24 {
		t.Fatalf("%d buckets, want 24: %+v", len(got), got)
	}
	// The window ends with the current hour, 08:00 on the 3rd.
	if got[0].Start != "2026-01-02T09:00:00Z" || got[23].Start != "2026-01-03T08:00:00Z" {
		t.Fatalf("window %s .. %s", got[0].Start, got[23].Start)
	}
	for _, b := range got {
		if b != (gateway.ResponseBucket{Start: b.Start, C2xx: 1}) {
			t.Fatalf("bucket %+v", b)
		}
	}
}

func TestResponses_NewRevisionKeepsCountsRemovalDropsThem(t *testing.T) {
	clock := newTestClock(clockStart)
	h := newHarnessClock(t, clock.now)
	h.do("GET", h.url("web/todos"), nil, nil)
	m, err := manifest.Parse([]byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.PutStack(h.stack, m, 2); err != nil {
		t.Fatal(err)
	}
	h.do("GET", h.url("web/todos"), nil, nil)
	wantResponses(t, h, gateway.ResponseBucket{Start: "2026-01-02T03:00:00Z", C2xx: 2})

	h.srv.RemoveStack(h.stack)
	if err := h.srv.PutStack(h.stack, m, 3); err != nil {
		t.Fatal(err)
	}
	wantResponses(t, h)
	h.do("GET", h.url("web/todos"), nil, nil)
	wantResponses(t, h, gateway.ResponseBucket{Start: "2026-01-02T03:00:00Z", C2xx: 1})
}

func TestResponses_ZeroHistoryTurnsCountingOff(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.ResponseHistory = 0 })
	h.do("GET", h.url("web/todos"), nil, nil)
	h.do("GET", h.url("web/nope/nope"), nil, nil)
	resp, body := h.do("GET", h.statusURL(h.stack), nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"responses":[]`) {
		t.Fatalf("%d %s, want responses []", resp.StatusCode, body)
	}
}

func TestConfig_ResponseHistoryMustBeWholeHoursUpToAWeek(t *testing.T) {
	if got := gateway.DefaultConfig().ResponseHistory; got != 24*time.Hour {
		t.Fatalf("default response_history %v", got)
	}
	for _, c := range []struct {
		history time.Duration
		err     string // "" valid
	}{
		{0, ""},
		{time.Hour, ""},
		{7 * 24 * time.Hour, ""},
		{-time.Hour, "response_history: must not be negative"},
		{90 * time.Minute, "response_history: must be a whole number of hours"},
		{7*24*time.Hour + time.Hour, "response_history: must be at most 168h0m0s"},
	} {
		cfg := gateway.DefaultConfig()
		cfg.Plaintext = true // tests run on loopback
		cfg.ResponseHistory = c.history
		err := cfg.Validate()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%v: %v", c.history, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: %v, want %q", c.history, err, c.err)
		}
	}
}
