package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// billed flushes usage and returns what stack has been billed so far.
func (h *harness) billed(stack ids.StackID) (requests, bytes uint64) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.FlushUsage(ctx); err != nil {
		h.t.Fatal(err)
	}
	return h.sink.Total(stack, usage.GatewayRequests), h.sink.Total(stack, usage.GatewayTrafficBytes)
}

// errorResponseBytes is the metered size of a gateway error response:
// Content-Type, Content-Length, any extra headers named, and the body.
func errorResponseBytes(resp *http.Response, body []byte, extra ...string) int {
	n := hdrBytes("Content-Type", "application/json") + hdrBytes("Content-Length", strconv.Itoa(len(body))) + len(body)
	for _, name := range extra {
		for _, v := range resp.Header.Values(name) {
			n += hdrBytes(name, v)
		}
	}
	return n
}

func TestGateway_MalformedQueryGets400(t *testing.T) {
	h := newHarness(t)
	S := h.stack.String()
	cases := []struct {
		name, query, message string
	}{
		{"more than MaxQueryParams", strings.Repeat("a&", 10_000) + "a", "query: more than 10000 parameters"},
		{"semicolon separator", "a=1;b=2",
			"query: invalid semicolon separator in parameter 1 (separate parameters with '&'; write a literal ';' as %3B)"},
		{"semicolon in a later parameter", "x=1&a=1;b=2",
			"query: invalid semicolon separator in parameter 2 (separate parameters with '&'; write a literal ';' as %3B)"},
		{"bad escape in a value", "a=%zz&b=2", `query: invalid URL escape "%zz"`},
		{"bad escape in a key", "ok=1&%g1=2", `query: invalid URL escape "%g1"`},
		{"truncated escape", "a=%4", `query: invalid URL escape "%4"`},
		{"value not UTF-8", "q=%FE", `query: parameter q: value "\xfe" is not valid UTF-8`},
		{"key not UTF-8", "%C3%28=1", `query: parameter "\xc3(" is not valid UTF-8`},
	}
	wantRequests, wantBytes := 0, 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := h.dialRaw()
			resp, body := rc.roundTrip("GET", "GET /"+S+"/web/todos?"+c.query+" HTTP/1.1\r\nHost: gw.test\r\n\r\n")
			e := wantError(t, resp, body, http.StatusBadRequest, gateway.KindBadRequest)
			if e.Error.Message != c.message {
				t.Errorf("message = %q, want %q", e.Error.Message, c.message)
			}
			// Billed like any answer for a known stack: one request, the
			// request line's path and query, the headers and the response.
			wantRequests++
			wantBytes += len("/"+S+"/web/todos") + len(c.query) + hdrBytes("Host", "gw.test") + errorResponseBytes(resp, body)
			requests, bytes := h.billed(h.stack)
			if requests != uint64(wantRequests) || bytes != uint64(wantBytes) {
				t.Errorf("billed %d requests, %d bytes; want %d, %d", requests, bytes, wantRequests, wantBytes)
			}
		})
	}
	if n := h.rt.callCount(); n != 0 {
		t.Fatalf("runtime called %d times for malformed queries", n)
	}

	// A malformed query is refused before the body is read, so the body
	// is not billed (net/http still reads it past the handler, to keep the
	// connection).
	rc := h.dialRaw()
	resp, body := rc.roundTrip("POST", "POST /"+S+"/web/echo?a=%zz HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1000\r\n\r\n"+
		strings.Repeat("b", 1000))
	wantError(t, resp, body, http.StatusBadRequest, gateway.KindBadRequest)
	wantBytes += len("/"+S+"/web/echo") + len("a=%zz") + hdrBytes("Host", "gw.test") + hdrBytes("Content-Length", "1000") +
		errorResponseBytes(resp, body)
	if requests, bytes := h.billed(h.stack); requests != uint64(wantRequests+1) || bytes != uint64(wantBytes) {
		t.Errorf("with an unread body: billed %d requests, %d bytes; want %d, %d", requests, bytes, wantRequests+1, wantBytes)
	}
}

func TestGateway_QueryWithinLimitsReachesTheFunction(t *testing.T) {
	h := newHarness(t)
	// Exactly MaxQueryParams, empty settings not counted; the first value
	// of a key wins, '+' is a space.
	resp, body := h.do("GET", h.url("web/todos?&&"+strings.Repeat("a=1&", 9_998)+"b=x+y&a=2&&"), nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("10,000 parameters: %d %s", resp.StatusCode, body)
	}
	q := h.rt.last(t).GetRequest().GetQueryParams()
	if len(q) != 2 || q["a"] != "1" || q["b"] != "x y" {
		t.Fatalf("query = %v", q)
	}
}

// TestGateway_QueryParamLimitIsOurs checks that the limit is
// MaxQueryParams, not net/url's own GODEBUG urlmaxqueryparams (10,000
// since Go 1.26): 15,000 parameters pass under a limit of 20,000.
func TestGateway_QueryParamLimitIsOurs(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) {
		c.MaxQueryParams = 20_000
		c.MaxRequestBodyBytes = c.MaxBodyForFrame()
	})
	resp, body := h.do("GET", h.url("web/todos?"+strings.Repeat("a&", 14_999)+"z"), nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("15,000 parameters under a limit of 20,000: %d %s", resp.StatusCode, body)
	}
	if q := h.rt.last(t).GetRequest().GetQueryParams(); len(q) != 2 {
		t.Fatalf("query = %v", q)
	}
	resp, body = h.do("GET", h.url("web/todos?"+strings.Repeat("a&", 20_000)+"z"), nil, nil)
	e := wantError(t, resp, body, http.StatusBadRequest, gateway.KindBadRequest)
	if e.Error.Message != "query: more than 20000 parameters" {
		t.Errorf("message = %q", e.Error.Message)
	}
}

// paddedHead is a request line and header section for method and target
// with fields ("Name: value"), padded with "A: " fields to exactly limit
// bytes as the gateway counts them (request line, "Name: value\r\n" per
// field, the empty line), the most MaxHeaderBytes lets through.
func paddedHead(t *testing.T, method, target string, fields []string, limit int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	for {
		left := limit - b.Len() - 2
		switch {
		case left < 5:
			t.Fatalf("no room to pad the head to %d bytes (%d left)", limit, left)
		case left < 10:
			b.WriteString("A: " + strings.Repeat("p", left-5) + "\r\n")
			b.WriteString("\r\n")
			return b.String()
		}
		b.WriteString("A: \r\n") // an empty value: the most header fields per byte
	}
}

// shortKeys are n distinct query keys, shortest first: the most
// parameters the fewest bytes can carry.
func shortKeys(n int) []string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	keys := make([]string, 0, n)
	for width := 1; len(keys) < n; width++ {
		idx := make([]int, width)
		for len(keys) < n {
			k := make([]byte, width)
			for i, d := range idx {
				k[i] = alphabet[d]
			}
			keys = append(keys, string(k))
			i := width - 1
			for i >= 0 && idx[i] == len(alphabet)-1 {
				idx[i] = 0
				i--
			}
			if i < 0 {
				break
			}
			idx[i]++
		}
	}
	return keys
}

// frameOf is the function protocol frame the runtime writes for req,
// with the whole route_to as the function name (the runtime sends only
// the part after the dot, so this is the larger).
func frameOf(t *testing.T, req *runtimev1.InvokeRequest) []byte {
	t.Helper()
	r := req.GetRequest()
	m := &fnproto.ExecuteFunction{Function: req.GetFunction(), Request: fnproto.Request{
		Method:      r.GetMethod(),
		PathParams:  r.GetPathParams(),
		QueryParams: r.GetQueryParams(),
		Body:        r.GetBody(),
	}}
	for _, hd := range r.GetHeaders() {
		m.Request.Headers = append(m.Request.Headers, fnproto.Header{Name: hd.GetName(), Value: hd.GetValue()})
	}
	frame, err := fnproto.AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// TestGateway_LargestAcceptedRequestFitsTheRuntimeFrame sends, with the
// default limits, a body of exactly MaxRequestBodyBytes beside 10,000
// distinct query parameters and header fields filling MaxHeaderBytes to
// the byte, and encodes what the runtime receives as the runtime does:
// the frame is within the runtime's default 8 MiB. One body byte more
// gets 413 from the gateway, without a call.
func TestGateway_LargestAcceptedRequestFitsTheRuntimeFrame(t *testing.T) {
	h := newHarness(t)
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	body := int(cfg.MaxRequestBodyBytes)
	target := "/" + h.stack.String() + "/web/echo?" + strings.Join(shortKeys(cfg.MaxQueryParams), "&")
	head := func(contentLength int) string {
		return paddedHead(t, "POST", target, []string{"Host: gw", "Content-Length: " + strconv.Itoa(contentLength)}, cfg.MaxHeaderBytes)
	}

	rc := h.dialRaw()
	resp, got := rc.roundTrip("POST", head(body)+strings.Repeat("b", body))
	if resp.StatusCode != 200 {
		t.Fatalf("the largest request: %d %s", resp.StatusCode, got)
	}
	req := h.rt.last(t)
	if n := len(req.GetRequest().GetBody()); n != body {
		t.Fatalf("the runtime got a %d-byte body, want %d", n, body)
	}
	if n := len(req.GetRequest().GetQueryParams()); n != cfg.MaxQueryParams {
		t.Fatalf("the runtime got %d query parameters, want %d", n, cfg.MaxQueryParams)
	}
	frame := frameOf(t, req)
	t.Logf("%d query parameters, %d headers, a %d-byte body: a %d-byte frame of %d",
		cfg.MaxQueryParams, len(req.GetRequest().GetHeaders()), body, len(frame)-4, fnproto.DefaultMaxFrameSize)
	// The runtime's default max_frame_size is 8 MiB (services/runtime
	// DefaultConfig), which is what its reader and the SDK's enforce.
	if _, _, err := fnproto.ParseFrame(fnproto.ToFunction, frame, 8<<20); err != nil {
		t.Fatalf("the runtime's reader refuses the frame: %v", err)
	}

	calls := h.rt.callCount()
	rc = h.dialRaw()
	resp, got = rc.roundTrip("POST", head(body+1))
	wantError(t, resp, got, http.StatusRequestEntityTooLarge, gateway.KindBodyTooLarge)
	if h.rt.callCount() != calls {
		t.Fatal("the runtime was called for a body over the limit")
	}
}

// TestGateway_RequestOverTheRuntimeFrameGets413 covers endpoints whose
// names outgrow the 4 KiB Validate sets aside for them: the gateway works
// out each request's frame and answers 413 itself, naming the largest body
// that fits, which then fits the frame to the byte.
func TestGateway_RequestOverTheRuntimeFrameGets413(t *testing.T) {
	const frameLimit = 64 << 10
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) {
		c.MaxHeaderBytes, c.MaxQueryParams, c.RuntimeMaxFrameSize = 4096, 100, frameLimit
		c.MaxRequestBodyBytes = c.MaxBodyForFrame()
	})
	longName := strings.Repeat("x", 20_000)
	m, err := manifest.Parse([]byte(`
name: Long
version: "1"
services:
  - type: Function
    name: api
    binary: bin1
    runtime: wasi1.0
    memory_limit: 64MiB
  - type: Gateway
    name: web
    endpoints:
      /long: {post: api.` + longName + `}
      /short: {post: api.short}
`))
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := ids.NewStackID()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.PutStack(id, m, 1); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.MaxHeaderBytes, cfg.MaxQueryParams, cfg.RuntimeMaxFrameSize = 4096, 100, frameLimit
	maxBody := int(cfg.MaxBodyForFrame())
	post := func(path string, n int) (*http.Response, []byte) {
		return h.do("POST", h.base+"/"+id.String()+"/web/"+path, strings.NewReader(strings.Repeat("b", n)), nil)
	}

	resp, body := post("long", maxBody)
	e := wantError(t, resp, body, http.StatusRequestEntityTooLarge, gateway.KindBodyTooLarge)
	if !strings.Contains(e.Error.Message, "frame limit of 65536 bytes") {
		t.Errorf("message %q does not name the frame limit", e.Error.Message)
	}
	if h.rt.callCount() != 0 {
		t.Fatal("the runtime was called for a request over its frame")
	}
	sub := regexp.MustCompile(`at most (\d+) bytes`).FindStringSubmatch(e.Error.Message)
	if sub == nil {
		t.Fatalf("message %q names no largest body", e.Error.Message)
	}
	fits, _ := strconv.Atoi(sub[1])
	if len(strconv.Itoa(fits)) != len(strconv.Itoa(maxBody)) {
		t.Fatalf("largest body %d: Content-Length would change size; pick other limits", fits)
	}

	resp, body = post("long", fits)
	if resp.StatusCode != 200 {
		t.Fatalf("the largest body that fits, %d bytes: %d %s", fits, resp.StatusCode, body)
	}
	if n := len(frameOf(t, h.rt.last(t))) - 4; n != frameLimit {
		t.Errorf("with the largest body that fits the frame is %d bytes, want exactly %d", n, frameLimit)
	}
	resp, body = post("long", fits+1)
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, gateway.KindBodyTooLarge)

	// An endpoint with short names takes MaxRequestBodyBytes.
	resp, body = post("short", maxBody)
	if resp.StatusCode != 200 {
		t.Fatalf("short names, the largest body: %d %s", resp.StatusCode, body)
	}
	if h.rt.callCount() != 2 {
		t.Fatalf("runtime called %d times, want 2", h.rt.callCount())
	}
	if requests, _ := h.billed(id); requests != 4 {
		t.Errorf("billed %d requests, want 4 (the 413s included)", requests)
	}
	if requests, _ := h.billed(h.stack); requests != 0 {
		t.Errorf("the neighbour stack was billed %d requests", requests)
	}
}

func TestGateway_Retryable503sCarryRetryAfter(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config, _ *gateway.Deps) { c.OverloadRetryAfter = 1500 * time.Millisecond })
	cases := []struct {
		err        error
		status     int
		kind       string
		retryAfter string // "" for none
	}{
		{rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted, "all 64 instance slots are busy"),
			503, gateway.KindRuntimeOverloaded, "2"},
		{rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted, "active memory budget full"),
			503, gateway.KindRuntimeOverloaded, "2"},
		{status.Error(codes.Unavailable, "draining"), 503, gateway.KindRuntimeUnavailable, "2"},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max"), 502, gateway.KindMessageTooLarge, ""},
		{status.Error(codes.Internal, "boom"), 502, gateway.KindRuntimeError, ""},
	}
	wantBytes := 0
	for i, c := range cases {
		t.Run(fmt.Sprint(c.err), func(t *testing.T) {
			h.rt.setHandle(func(context.Context, *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
				return nil, c.err
			})
			rc := h.dialRaw()
			resp, body := rc.roundTrip("GET", "GET /"+h.stack.String()+"/web/todos HTTP/1.1\r\nHost: gw.test\r\n\r\n")
			wantError(t, resp, body, c.status, c.kind)
			if got := resp.Header.Values("Retry-After"); c.retryAfter == "" && got != nil ||
				c.retryAfter != "" && (len(got) != 1 || got[0] != c.retryAfter) {
				t.Errorf("Retry-After = %q, want %q", got, c.retryAfter)
			}
			// The header is billed as a response header the gateway sets.
			wantBytes += len("/"+h.stack.String()+"/web/todos") + hdrBytes("Host", "gw.test") +
				errorResponseBytes(resp, body, "Retry-After")
			if requests, bytes := h.billed(h.stack); requests != uint64(i+1) || bytes != uint64(wantBytes) {
				t.Errorf("billed %d requests, %d bytes; want %d, %d", requests, bytes, i+1, wantBytes)
			}
		})
	}
}

func TestRetryAfterSeconds_RoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Nanosecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", 2 * time.Second: "2", 90 * time.Second: "90",
	} {
		if got := gateway.RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %q, want %q", d, got, want)
		}
	}
}

// countingListener counts the connections its Accept returned.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// TestLimitConnections_ThirdWaitsUntilOneCloses serves the gateway on a
// loopback listener wrapped by its connection cap (MaxConnections 2), as
// the public listener will be: two keep-alive clients are served, a third
// connects but is neither accepted nor answered until one of the two
// closes, and closing the server ends the Accept that waits for a slot.
func TestLimitConnections_ThirdWaitsUntilOneCloses(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections = 2
	srv, err := gateway.New(cfg, gateway.Deps{
		Runtimes: noRuntimes,
		Usage:    usage.Discard{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	hs := &http.Server{Handler: srv}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(srv.LimitConnections(counted)) }()

	const health = "GET " + gateway.HealthPath + " HTTP/1.1\r\nHost: gw\r\n\r\n"
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, health); err != nil {
			t.Fatal(err)
		}
		return c
	}
	answered := func(c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("health: %d", resp.StatusCode)
		}
	}

	c1, c2 := dial(), dial()
	answered(c1)
	answered(c2) // both stay open (keep-alive)

	c3 := dial() // the kernel completes the handshake; the request is sent
	c3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var one [1]byte
	if n, err := c3.Read(one[:]); !isTimeout(err) {
		t.Fatalf("the third connection was answered while two are open: %d bytes, %v", n, err)
	}
	if n := counted.accepted.Load(); n != 2 {
		t.Fatalf("%d connections accepted with a limit of 2", n)
	}

	c1.Close()
	answered(c3)
	if n := counted.accepted.Load(); n != 3 {
		t.Fatalf("%d connections accepted after one closed, want 3", n)
	}

	// c2 and c3 hold both slots, so Serve waits in Accept for a third;
	// Close must end that wait.
	hs.Close()
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close while waiting for a connection slot")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
