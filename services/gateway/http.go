package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/usage"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/gateway/internal/httphdr"
	"github.com/muprotocol/mu/services/gateway/internal/router"
)

// Paths the gateway serves itself. Base58 stack ids never contain '_', so
// they cannot collide with a stack.
const (
	HealthPath  = "/_mu/health"
	internalDir = "/_mu/"
)

// traceHeaders are the W3C Trace Context headers forwarded to the runtime
// as gRPC metadata, so a trace continues gateway → runtime → mudb/storage:
// the metadata key and the header's canonical name (the key net/http
// files it under, so looking it up needs no canonicalization).
var traceHeaders = [...]struct{ key, header string }{
	{"traceparent", "Traceparent"},
	{"tracestate", "Tracestate"},
}

// withTraceContext adds the first value of each trace header of h to
// ctx's outgoing metadata; without any, it returns ctx as it is.
func withTraceContext(ctx context.Context, h http.Header) context.Context {
	var kv []string
	for _, th := range traceHeaders {
		if vs := h[th.header]; len(vs) > 0 && vs[0] != "" {
			kv = append(kv, th.key, vs[0])
		}
	}
	if len(kv) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// exchange is one request in flight and what it will be billed.
type exchange struct {
	w     http.ResponseWriter
	r     *http.Request
	start time.Time
	// stack is set once the URL names an installed stack; from then on the
	// request is metered (except when the stack is disabled).
	stack    *stack
	metered  bool
	reqBytes int64 // path + query + header names/values + body bytes read
	function string
	// cands holds the request's runtime candidates without an allocation
	// of their own for up to len(cands) of them.
	cands [4]Candidate
	// recs are the usage records of the exchange, handed to the batcher
	// (which copies them) without a slice of their own.
	recs [2]usage.Record
	// span is the request's gateway route span, nil with tracing off.
	span trace.Span
}

// replayable reports whether a request of method may be sent to another
// runtime after one failed with UNAVAILABLE: the idempotent methods whose
// effect is the same however often they run (RFC 9110 section 9.2.2).
// POST, PATCH and the rest are sent once; the client decides whether to
// repeat them.
func replayable(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryInvoke reports whether a failed Invoke may be tried on the next
// runtime: only gRPC UNAVAILABLE, and only while the request's context is
// live (not past InvokeTimeout, the client still there). DEADLINE_EXCEEDED,
// CANCELED, every other code and function errors (InvokeResponse.error,
// which are answers, not failures) are final.
func retryInvoke(ctx context.Context, err error) bool {
	return ctx.Err() == nil && status.Code(err) == codes.Unavailable
}

// ServeHTTP serves /{stack_id}/{gateway}/{path} and the /_mu/ endpoints.
// See the package documentation for the routing and status rules.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, internalDir) {
		s.serveInternal(w, r)
		return
	}
	c := getCall()
	defer putCall(c)
	x := &c.x
	x.w, x.r, x.start = w, r, time.Now()
	if s.tracing {
		s.startRouteSpan(x)
		defer endRouteSpan(x)
	}
	if !s.flight.Enter() {
		s.finishError(x, errorf(http.StatusServiceUnavailable, KindShuttingDown, "the gateway is shutting down"))
		return
	}
	defer s.flight.Leave()
	if herr := s.serve(c); herr != nil {
		s.finishError(x, herr)
	}
}

func (s *Server) serveInternal(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, StacksPath); ok {
		s.serveStack(w, r, rest)
		return
	}
	switch r.URL.Path {
	case HealthPath:
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		if s.run.IsClosing() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting_down"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	default:
		writeJSON(w, http.StatusNotFound, errorBody(KindNotFound, "unknown gateway endpoint "+r.URL.Path))
	}
}

// serve handles a stack request with c's exchange. It writes the
// response itself on success and returns the error response to write
// otherwise.
func (s *Server) serve(c *call) *httpError {
	x := &c.x
	r := x.r
	hs := readHeaders(r, c.names[:0])
	c.names = hs.names
	if hs.wire > s.cfg.MaxHeaderBytes {
		return errorf(http.StatusRequestHeaderFieldsTooLarge, KindHeadersTooLarge,
			"the request line and headers are %d bytes, the limit is %d", hs.wire, s.cfg.MaxHeaderBytes)
	}
	esc := r.URL.EscapedPath()
	stackSeg, rest, _ := strings.Cut(strings.TrimPrefix(esc, "/"), "/")
	gwSeg, epPath, more := strings.Cut(rest, "/")
	if !strings.HasPrefix(esc, "/") || stackSeg == "" {
		return errorf(http.StatusNotFound, KindNotFound, "URLs have the form /{stack_id}/{gateway}/{path}")
	}
	id, err := ids.ParseStackID(stackSeg)
	if err != nil {
		return errorf(http.StatusNotFound, KindStackNotFound, "no stack %q: %v", stackSeg, err)
	}
	st, disabled, reason := s.stacks.lookup(id)
	if st == nil {
		return errorf(http.StatusNotFound, KindStackNotFound, "no stack %s on this gateway", id)
	}
	// From here on the request is the stack's, and metered unless the
	// stack is disabled (a disabled stack is billed for nothing).
	x.stack, x.metered = st, !disabled
	x.reqBytes = int64(len(esc)+len(r.URL.RawQuery)) + hs.metered
	// The stack's own limits (stack_rate, stack_concurrency and its
	// stack_limits entry), before anything else is done for it. A 429 of
	// them is not billed: see the package documentation's Metering.
	if lim := st.limits; lim != nil {
		herr, reason := lim.enter(id, s.now())
		if herr != nil {
			x.metered = false
			s.metrics.rateLimitedBy[reason].Inc()
			return herr
		}
		defer lim.leave()
	}

	gwName, err := url.PathUnescape(gwSeg)
	if err != nil {
		return errorf(http.StatusBadRequest, KindBadRequest, "gateway name %q: %v", gwSeg, err)
	}
	rt := st.gateways[gwName]
	if rt == nil {
		return errorf(http.StatusNotFound, KindGatewayNotFound, "stack %s has no gateway %q", id, gwName)
	}
	if more {
		epPath = rest[len(gwSeg):] // from the '/' after the gateway name
	}
	segs, err := router.AppendSplitPath(c.segs[:0], epPath)
	c.segs = segs
	if err != nil {
		return errorf(http.StatusBadRequest, KindBadRequest, "%v", err)
	}
	m, allow, out := rt.LookupParams(r.Method, segs, c.paramsMap())
	switch out {
	case router.NotFound:
		return errorf(http.StatusNotFound, KindRouteNotFound, "gateway %q of stack %s has no endpoint for path %q", gwName, id, orRoot(epPath))
	case router.MethodNotAllowed:
		e := errorf(http.StatusMethodNotAllowed, KindMethodNotAllowed, "%s is not allowed on %q; allowed: %s",
			r.Method, orRoot(epPath), strings.Join(allow, ", "))
		e.allow = allow
		return e
	}
	x.function = m.Function
	if x.span != nil {
		routeSpanRouted(x.span, gwName, m.Path, m.Function)
	}
	if disabled {
		if reason == "" {
			reason = "escrow balance below the region minimum"
		}
		return errorf(http.StatusPaymentRequired, KindStackDisabled, "stack %s is disabled: %s", id, reason)
	}

	// Everything but the body is checked before the body is read.
	hreq := &c.hreq
	headerBytes, herr := s.buildRequest(c, hreq, m)
	if herr != nil {
		return herr
	}
	body, herr := s.readBody(x)
	if herr != nil {
		return herr
	}
	hreq.Body = body
	if herr := s.checkFrame(m.Function, hreq, headerBytes); herr != nil {
		return herr
	}
	limit := 1 // a request that may not be replayed goes to the owner alone
	if replayable(r.Method) {
		limit = s.cfg.InvokeAttempts
	}
	cands := s.runtimes.Candidates(st.id, limit, x.cands[:0])
	if len(cands) == 0 {
		s.log.Warn("no runtime for stack", "stack", id, "function", m.Function)
		e := errorf(http.StatusServiceUnavailable, KindRuntimeUnavailable, "no runtime is available for stack %s; try again later", id)
		e.retry = true
		return e
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.InvokeTimeout)
	defer cancel()
	if !s.tracing {
		// Untraced, the gateway still hands the caller's trace context on
		// (a traced runtime continues it); traced, the route span's
		// context goes instead, through the runtime client.
		ctx = withTraceContext(ctx, r.Header)
	}
	c.stackID = append(c.stackID[:0], st.id[:]...)
	req := &c.req
	req.StackId, req.Function, req.Request = c.stackID, m.Function, hreq
	c.opts[0] = s.recvLimitOpt
	opts := c.opts[:]
	var resp *runtimev1.InvokeResponse
	for i, cand := range cands {
		resp, err = cand.Client.Invoke(ctx, req, opts...)
		if err == nil || i+1 == len(cands) || !retryInvoke(ctx, err) {
			break
		}
		// UNAVAILABLE: the node is unreachable, the connection broke
		// mid-call or the node is shutting down. The request is
		// idempotent and its body buffered: send it to the next node.
		// Debug, not info: until the list declares a killed node dead,
		// every request for its stacks is retried (thousands a second
		// under load); the metric and the member list's own log lines
		// tell operators.
		s.metrics.retries.WithLabelValues(r.Method).Inc()
		s.log.Debug("runtime unavailable; retrying on the next node", "stack", id, "function", m.Function,
			"method", r.Method, "from", cand.Node, "to", cands[i+1].Node, "attempt", i+2, "err", err)
	}
	if err != nil {
		herr := rpcErrorStatus(r.Context(), err, m.Function)
		level := slog.LevelWarn
		if herr.status == StatusClientClosedRequest {
			level = slog.LevelDebug
		}
		s.log.Log(r.Context(), level, "invoke failed", "stack", id, "function", m.Function,
			"status", herr.status, "kind", herr.kind, "err", err)
		return herr
	}
	if ie := resp.GetError(); ie != nil {
		herr := invokeErrorStatus(ie)
		s.log.Info("function failed", "stack", id, "function", m.Function, "kind", herr.kind,
			"message", ie.GetMessage(), "fuel_used", resp.GetFuelUsed())
		return herr
	}
	return s.writeFunctionResponse(x, resp.GetResponse())
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// requestHeaders is what one walk over a request's header map finds.
type requestHeaders struct {
	// wire is the size of the request line and header section as a
	// client writes them ("Name: value\r\n" per field, CRLF line ends),
	// from what net/http parsed. It matches the bytes on the wire for
	// HTTP/1.1 requests written without extra whitespace, and is what
	// Config.MaxHeaderBytes bounds.
	wire int
	// metered is the billed size of the headers: httphdr.Size of the
	// header map, plus "Host" and the host when there is one.
	metered int64
	// names are the names of the end-to-end headers (those that cross
	// the gateway; see httphdr.Filter), in map order.
	names []string
	// values is how many values the forwarded names have in all.
	values int
}

// readHeaders walks r's header map once for everything the gateway
// needs from it: the sizes to check and bill and the headers to forward,
// whose names it appends to names.
func readHeaders(r *http.Request, names []string) requestHeaders {
	h := requestHeaders{wire: len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2}
	if r.Host != "" {
		h.wire += len("Host: ") + len(r.Host) + 2
		h.metered += int64(len("Host") + len(r.Host))
	}
	filter := httphdr.NewFilter(r.Header["Connection"])
	for k, vs := range r.Header {
		for _, v := range vs {
			h.wire += len(k) + 2 + len(v) + 2
			h.metered += int64(len(k) + len(v))
		}
		if filter.Forward(k) {
			names = append(names, k)
			h.values += len(vs)
		}
	}
	for _, te := range r.TransferEncoding { // net/http moves it out of Header
		h.wire += len("Transfer-Encoding: ") + len(te) + 2
	}
	h.wire += 2 // the empty line
	h.names = names
	return h
}

func (s *Server) readBody(x *exchange) ([]byte, *httpError) {
	r, limit := x.r, s.cfg.MaxRequestBodyBytes
	tooLarge := func() *httpError {
		return errorf(http.StatusRequestEntityTooLarge, KindBodyTooLarge, "the request body is over the limit of %d bytes", limit)
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	if r.Body == nil || r.Body == http.NoBody { // what net/http gives a request without a body
		return nil, nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(http.MaxBytesReader(x.w, r.Body, limit))
	x.reqBytes += n
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge()
		}
		return nil, errorf(http.StatusBadRequest, KindBadRequest, "reading the request body: %v", err)
	}
	return buf.Bytes(), nil
}

// buildRequest fills hreq with the HttpRequest the function sees, without
// its body: the method as received (HEAD stays HEAD when served by a GET
// endpoint), the template's params, the first value of each query
// parameter (see parseQuery) and every end-to-end header (Host first, then
// by name, values in received order), in c's reused storage. c.names must
// hold the forwarded header names (readHeaders). It returns the bytes of
// the headers' names and values, for checkFrame. A malformed query is a
// 400, and so is anything that is not UTF-8, since protobuf strings must
// be.
func (s *Server) buildRequest(c *call, hreq *typesv1.HttpRequest, m router.Match) (int, *httpError) {
	r := c.x.r
	bad := func(what, v string) *httpError {
		return errorf(http.StatusBadRequest, KindBadRequest, "%s %q is not valid UTF-8", what, v)
	}
	for k, v := range m.Params {
		if !utf8.ValidString(v) {
			return 0, bad("path parameter "+k, v)
		}
	}
	var query map[string]string
	if raw := r.URL.RawQuery; raw != "" {
		var herr *httpError
		if query, herr = parseQuery(raw, s.cfg.MaxQueryParams, c.queryMap()); herr != nil {
			return 0, herr
		}
	}
	n := 0
	for _, k := range c.names {
		n += len(r.Header[k])
	}
	if r.Host != "" {
		n++
	}
	headers, hdrs := c.headersFor(n)
	size := 0
	add := func(name, value string) {
		h := &hdrs[len(headers)]
		h.Name, h.Value = name, value
		headers = append(headers, h)
		size += len(name) + len(value)
	}
	if r.Host != "" {
		if !utf8.ValidString(r.Host) {
			return 0, bad("Host", r.Host)
		}
		add("Host", r.Host)
	}
	slices.Sort(c.names)
	for _, k := range c.names {
		for _, v := range r.Header[k] {
			if !utf8.ValidString(v) {
				return 0, bad("header "+k, v)
			}
			add(k, v)
		}
	}
	c.headers = headers
	hreq.Method = r.Method
	hreq.PathParams = m.Params
	hreq.QueryParams = query
	hreq.Headers = headers
	return size, nil
}

// checkFrame answers 413 for a request whose ExecuteFunction frame would
// exceed RuntimeMaxFrameSize, which the runtime would refuse after the
// whole request had crossed the network. Validate keeps the limits within
// the frame for endpoints whose names fit endpointNameReserve, so only a
// request to an endpoint with longer names can fail here. function is the
// whole route_to, at least what the runtime puts in the frame; headerBytes
// the bytes of req's header names and values (from buildRequest).
func (s *Server) checkFrame(function string, req *typesv1.HttpRequest, headerBytes int) *httpError {
	b := fnproto.RequestBounds{
		FunctionBytes: len(function),
		MethodBytes:   len(req.GetMethod()),
		PathParams:    len(req.GetPathParams()),
		QueryParams:   len(req.GetQueryParams()),
		Headers:       len(req.GetHeaders()),
		HeaderBytes:   headerBytes,
		BodyBytes:     int64(len(req.GetBody())),
	}
	for k, v := range req.GetPathParams() {
		b.PathParamBytes += len(k) + len(v)
	}
	for k, v := range req.GetQueryParams() {
		b.QueryParamBytes += len(k) + len(v)
	}
	if n := fnproto.ExecuteFunctionFrameLen(b); n > int64(s.cfg.RuntimeMaxFrameSize) {
		return errorf(http.StatusRequestEntityTooLarge, KindBodyTooLarge,
			"the request (a %d-byte body and %d more bytes for the function name, method, parameters and headers) "+
				"does not fit the runtime's frame limit of %d bytes; the body may be at most %d bytes here",
			b.BodyBytes, n-b.BodyBytes, s.cfg.RuntimeMaxFrameSize, max(fnproto.MaxExecuteFunctionBody(s.cfg.RuntimeMaxFrameSize, b), 0))
	}
	return nil
}

// writeFunctionResponse validates the function's response and writes it.
func (s *Server) writeFunctionResponse(x *exchange, resp *typesv1.HttpResponse) *httpError {
	if resp == nil {
		return errorf(http.StatusBadGateway, KindInvalidResponse, "the runtime returned neither a response nor an error")
	}
	status := resp.GetStatus()
	switch {
	case status >= 100 && status < 200:
		return errorf(http.StatusBadGateway, KindInvalidResponse,
			"the function answered with informational status %d, which cannot end a request", status)
	case status < 100 || status > 599:
		return errorf(http.StatusBadGateway, KindInvalidResponse, "the function answered with status %d, outside 100..599", status)
	}
	if n := int64(len(resp.GetBody())); n > s.cfg.MaxResponseBytes {
		return errorf(http.StatusBadGateway, KindResponseTooLarge,
			"the function's response body is %d bytes, the limit is %d", n, s.cfg.MaxResponseBytes)
	}
	hs := resp.GetHeaders()
	size := 0
	var conn []string // the Connection header's values, rarely any
	for _, h := range hs {
		size += len(h.GetName()) + len(h.GetValue())
		if strings.EqualFold(h.GetName(), "Connection") {
			conn = append(conn, h.GetValue())
		}
	}
	if size > s.cfg.MaxResponseHeaderBytes {
		return errorf(http.StatusBadGateway, KindResponseTooLarge,
			"the function's response headers are %d bytes, the limit is %d", size, s.cfg.MaxResponseHeaderBytes)
	}
	// The headers go straight into the ResponseWriter's map, their values
	// sliced from one array with a spare element for Content-Length.
	filter := httphdr.NewFilter(conn)
	wh := x.w.Header()
	vals := make([]string, len(hs)+1)
	var hdrBytes int64
	for i, h := range hs {
		name, value := h.GetName(), h.GetValue()
		if !filter.Forward(name) || strings.EqualFold(name, "Content-Length") {
			continue
		}
		if !httphdr.ValidName(name) || !httphdr.ValidValue(value) {
			s.log.Warn("dropping malformed response header", "stack", x.stack.id, "function", x.function,
				"header", name)
			continue
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		if vs, ok := wh[key]; ok {
			wh[key] = append(vs, value)
		} else {
			vals[i] = value
			wh[key] = vals[i : i+1 : i+1]
		}
		hdrBytes += int64(len(key) + len(value))
	}
	if _, ok := wh["Content-Type"]; !ok {
		wh["Content-Type"] = nil // pass the absence through: no sniffing
	}
	s.finish(x, int(status), hdrBytes, resp.GetBody(), vals[len(hs):])
	return nil
}

// finishError writes a gateway error as JSON.
func (s *Server) finishError(x *exchange, e *httpError) {
	wh := x.w.Header()
	var hdrBytes int64
	set := func(name, value string) {
		wh[name] = []string{value}
		hdrBytes += int64(len(name) + len(value))
	}
	set("Content-Type", "application/json")
	if len(e.allow) > 0 {
		set("Allow", strings.Join(e.allow, ", "))
	}
	switch {
	case e.retryAfter != "":
		set("Retry-After", e.retryAfter)
	case e.retry:
		set("Retry-After", s.retryAfter)
	}
	s.metrics.errors.WithLabelValues(e.kind).Inc()
	body, _ := json.Marshal(errorBody(e.kind, e.msg))
	s.finish(x, e.status, hdrBytes, append(body, '\n'), nil)
}

// finish meters the exchange, then writes status and body. The response
// headers are in x.w.Header() already, hdrBytes their metered size
// (httphdr.Size of what the gateway set there); finish adds
// Content-Length, in spare[0] when spare has room. Usage is queued before
// the body is written, so a client that has the response can rely on
// FlushUsage covering it. Once the request is the stack's (x.stack set),
// the answer counts in the stack's response history, metered or not (a
// disabled stack's 402s count).
func (s *Server) finish(x *exchange, status int, hdrBytes int64, body []byte, spare []string) {
	sent := body
	if x.r.Method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified {
		sent = nil
	}
	wh := x.w.Header()
	if status != http.StatusNoContent && status != http.StatusNotModified {
		if len(spare) == 0 {
			spare = make([]string, 1)
		}
		spare[0] = strconv.Itoa(len(body))
		wh["Content-Length"] = spare[:1:1]
		hdrBytes += int64(len("Content-Length") + len(spare[0]))
	}
	respBytes := hdrBytes + int64(len(sent))
	if status == StatusClientClosedRequest {
		respBytes = 0 // the client is gone: nothing reaches it
	}
	if x.metered {
		traffic := x.reqBytes + respBytes
		now := time.Now()
		x.recs[0] = usage.Record{Stack: x.stack.id, Kind: usage.GatewayRequests, Amount: 1, Key: s.keys.Next(), Time: now}
		x.recs[1] = usage.Record{Stack: x.stack.id, Kind: usage.GatewayTrafficBytes, Amount: uint64(traffic), Key: s.keys.Next(), Time: now}
		s.usage.Add(x.recs[:]...)
	}
	if x.span != nil {
		routeSpanAnswered(x.span, status)
	}
	x.w.WriteHeader(status)
	if len(sent) > 0 {
		if _, err := x.w.Write(sent); err != nil {
			s.log.Debug("writing response", "err", err)
		}
	}
	s.metrics.observe(status, time.Since(x.start))
	if x.stack != nil && x.stack.responses != nil {
		x.stack.responses.add(s.now(), status)
	}
	if x.stack != nil && s.log.Enabled(x.r.Context(), slog.LevelDebug) {
		s.log.Debug("request", "stack", x.stack.id, "function", x.function, "method", x.r.Method,
			"path", x.r.URL.Path, "status", status, "duration", time.Since(x.start))
	}
}

type errorJSON struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func errorBody(kind, msg string) errorJSON {
	return errorJSON{Error: errorDetail{Kind: kind, Message: msg}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
