package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mr-tron/base58"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/reqsign"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// StacksPath is the prefix of the public stack endpoints:
// StacksPath+"{stack_id}" (status) and StacksPath+"{stack_id}/logs".
const StacksPath = internalDir + "stacks/"

// ContentTypeNDJSON is the Content-Type of a log stream: one JSON object a
// line.
const ContentTypeNDJSON = "application/x-ndjson"

// StackStatus is the body of GET /_mu/stacks/{stack_id}: the gateway's
// routing state of the stack and what its owner runtime reports. A deploy
// of revision N is served when Revision >= N and Owner.Deployed and
// Owner.Revision >= N.
type StackStatus struct {
	Stack string `json:"stack"` // base58
	// Revision is the revision the gateway routes.
	Revision uint64 `json:"revision"`
	// Enabled is false for a stack that answers 402, DisabledReason says
	// why.
	Enabled        bool        `json:"enabled"`
	DisabledReason string      `json:"disabled_reason"`
	Owner          OwnerStatus `json:"owner"`
	// Responses are the stack's requests this gateway answered, by status
	// class, in hourly buckets (UTC) over the last Config.ResponseHistory
	// (the current hour included): oldest first, only hours with any
	// count (a chart fills the gaps with zeros), an empty array when
	// counting is off. Every answer to a request for the stack's URLs
	// counts, the gateway's own errors included (404 for an unknown
	// gateway or path, 405, 402 of a disabled stack, 503 with no runtime,
	// 499 when the client left, which counts as 4xx); requests refused
	// before the stack is known (431, 404 of an unknown stack, 503 while
	// shutting down) are no stack's, and the /_mu/ endpoints are not
	// counted. The counts are this gateway's, kept in memory: a region
	// with several gateways has a share on each, and a restart, or the
	// stack's removal from this gateway, starts them afresh.
	Responses []ResponseBucket `json:"responses"`
}

// OwnerStatus is what the stack's owner runtime (its first candidate)
// answers to RuntimeService.Status.
type OwnerStatus struct {
	// Node names the runtime (its node name, or the candidate's name when
	// it did not answer).
	Node string `json:"node"`
	// Revision is the revision installed there (0 when not Deployed).
	Revision uint64 `json:"revision"`
	// Deployed: the runtime has the stack installed.
	Deployed bool `json:"deployed"`
	// Error says why the runtime could not be asked; "" when it answered.
	Error string `json:"error"`
}

// LogLine is one line of GET /_mu/stacks/{stack_id}/logs. A stream that
// ends on an error (other than the client leaving or the gateway closing)
// ends with a line {"error":{"kind":...,"message":...}} instead.
type LogLine struct {
	Time     string `json:"time"` // RFC 3339 with nanoseconds, UTC
	Stack    string `json:"stack"`
	Function string `json:"function"` // assembly or assembly.function; "" for the runtime's own stack lines
	Level    string `json:"level"`    // trace, debug, info, warn, error
	Source   string `json:"source"`   // log, stderr, runtime
	Body     string `json:"body"`
	Node     string `json:"node"` // the runtime node that produced it
	// Dropped is how many lines before this one the stream lost because it
	// did not keep up.
	Dropped uint64 `json:"dropped"`
	// TraceID is the W3C trace id (hex) of the request whose call wrote
	// the line, when it was traced; absent otherwise.
	TraceID string `json:"trace_id,omitempty"`
}

// allowMethods answers 405 with an Allow header unless r's method is one
// of methods (the first is named in the message).
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, errorBody(KindMethodNotAllowed, "use "+methods[0]))
	return false
}

// writeHTTPError writes e as the gateway's JSON error body, unmetered.
func (s *Server) writeHTTPError(w http.ResponseWriter, e *httpError) {
	if len(e.allow) > 0 {
		w.Header().Set("Allow", strings.Join(e.allow, ", "))
	}
	if e.retry {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	s.metrics.errors.WithLabelValues(e.kind).Inc()
	writeJSON(w, e.status, errorBody(e.kind, e.msg))
}

// serveStack serves StacksPath+rest: {stack_id} and {stack_id}/logs.
func (s *Server) serveStack(w http.ResponseWriter, r *http.Request, rest string) {
	idSeg, sub, hasSub := strings.Cut(rest, "/")
	if hasSub && sub != "logs" {
		s.writeHTTPError(w, errorf(http.StatusNotFound, KindNotFound, "unknown gateway endpoint %s", r.URL.Path))
		return
	}
	if hasSub && !allowMethods(w, r, http.MethodGet) || !hasSub && !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	id, err := ids.ParseStackID(idSeg)
	if err != nil {
		s.writeHTTPError(w, errorf(http.StatusNotFound, KindStackNotFound, "no stack %q: %v", idSeg, err))
		return
	}
	st, disabled, reason := s.stacks.lookup(id)
	if st == nil {
		s.writeHTTPError(w, errorf(http.StatusNotFound, KindStackNotFound, "no stack %s on this gateway", id))
		return
	}
	if hasSub {
		s.serveLogs(w, r, id)
		return
	}
	writeJSON(w, http.StatusOK, StackStatus{
		Stack: id.String(), Revision: st.revision, Enabled: !disabled, DisabledReason: reason,
		Owner: s.ownerStatus(r.Context(), id), Responses: st.responses.snapshot(s.now()),
	})
}

// ownerStatus asks the stack's first candidate for its Status, within
// StatusTimeout. Transport details stay in the logs.
func (s *Server) ownerStatus(ctx context.Context, id ids.StackID) OwnerStatus {
	var buf [1]Candidate
	cands := s.runtimes.Candidates(id, 1, buf[:0])
	if len(cands) == 0 {
		return OwnerStatus{Error: "no runtime is available for the stack"}
	}
	o := OwnerStatus{Node: cands[0].Node}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StatusTimeout)
	defer cancel()
	resp, err := cands[0].Client.Status(ctx, &runtimev1.StatusRequest{StackId: id.Bytes()})
	switch code := status.Code(err); {
	case err == nil:
		if resp.GetNodeName() != "" {
			o.Node = resp.GetNodeName()
		}
		for _, st := range resp.GetStacks() {
			if bytes.Equal(st.GetStackId(), id[:]) {
				o.Deployed, o.Revision = true, st.GetRevision()
			}
		}
	case code == codes.NotFound: // answered: not deployed there
	case code == codes.DeadlineExceeded:
		o.Error = "the runtime did not answer Status within " + s.cfg.StatusTimeout.String()
	default:
		s.log.Warn("owner status failed", "stack", id, "runtime", cands[0].Node, "err", err)
		o.Error = "the runtime's Status failed (" + code.String() + ")"
	}
	return o
}

// logsQuery is what GET .../logs asks for.
type logsQuery struct {
	function string
	tail     uint32
	follow   bool
}

func (s *Server) parseLogsQuery(raw string) (logsQuery, *httpError) {
	q := logsQuery{tail: uint32(s.cfg.LogsMaxTail)}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, errorf(http.StatusBadRequest, KindBadRequest, "query: %v", err)
	}
	q.function = vals.Get("function")
	if !utf8.ValidString(q.function) {
		return q, errorf(http.StatusBadRequest, KindBadRequest, "function %q is not valid UTF-8", q.function)
	}
	if t := vals.Get("tail"); t != "" {
		n, err := strconv.ParseUint(t, 10, 32)
		if err != nil {
			return q, errorf(http.StatusBadRequest, KindBadRequest, "tail %q is not a count of lines", t)
		}
		if n > uint64(s.cfg.LogsMaxTail) {
			return q, errorf(http.StatusBadRequest, KindBadRequest, "tail %d is over this gateway's limit of %d lines", n, s.cfg.LogsMaxTail)
		}
		q.tail = uint32(n)
	}
	switch f := vals.Get("follow"); f {
	case "", "0", "false":
	case "1", "true":
		q.follow = true
	default:
		return q, errorf(http.StatusBadRequest, KindBadRequest, "follow %q: use 1 or 0", f)
	}
	return q, nil
}

// stackOwner is the key that posted stack id on the ledger, from the chain
// follower; nil for a stack the gateway was given directly.
func (s *Server) stackOwner(id ids.StackID) ed25519.PublicKey {
	if s.follow == nil {
		return nil
	}
	s.follow.mu.Lock()
	defer s.follow.mu.Unlock()
	o, ok := s.follow.owners[id]
	if !ok || len(o.owner) != ed25519.PublicKeySize {
		return nil
	}
	return ed25519.PublicKey(o.owner)
}

// authorizeLogs checks that r is signed by the owner of stack id (see
// Config.LogsAllowUnsigned for stacks without a known owner).
func (s *Server) authorizeLogs(r *http.Request, id ids.StackID) *httpError {
	owner := s.stackOwner(id)
	if owner == nil {
		if s.cfg.LogsAllowUnsigned {
			return nil
		}
		return errorf(http.StatusForbidden, KindForbidden, "the gateway does not know the owner of stack %s "+
			"(it was not installed from the chain), so it serves its logs to no one; logs_allow_unsigned serves them unsigned", id)
	}
	pub, err := reqsign.Verify(r, time.Now(), s.cfg.LogsMaxSkew)
	if err != nil {
		return errorf(http.StatusUnauthorized, KindUnauthorized, "the logs of stack %s need a request signed by its owner %s (%s, %s, %s): %v",
			id, base58.Encode(owner), reqsign.HeaderPublicKey, reqsign.HeaderTimestamp, reqsign.HeaderSignature, err)
	}
	if !pub.Equal(owner) {
		return errorf(http.StatusForbidden, KindForbidden, "signed by %s, stack %s is owned by %s", base58.Encode(pub), id, base58.Encode(owner))
	}
	return nil
}

// serveLogs serves GET StacksPath+"{stack_id}/logs" for an installed
// stack: checks, a log stream slot, then the stream.
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request, id ids.StackID) {
	q, herr := s.parseLogsQuery(r.URL.RawQuery)
	if herr == nil {
		herr = s.authorizeLogs(r, id)
	}
	if herr != nil {
		if herr.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", "Mu-Signature")
		}
		s.writeHTTPError(w, herr)
		return
	}
	select {
	case s.logSlots <- struct{}{}:
		defer func() { <-s.logSlots }()
	default:
		s.writeHTTPError(w, errorf(http.StatusTooManyRequests, KindTooManyLogStreams,
			"this gateway serves %d log streams at once; try again later", s.cfg.LogsMaxStreams))
		return
	}
	// The stream ends with the client, or when the gateway starts closing
	// (so that Close does not wait for followers).
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.run.Closing():
			cancel()
		case <-ctx.Done():
		}
	}()
	s.streamLogs(ctx, w, id, q)
}

// openLogStream opens StreamLogs on the stack's first candidate and waits
// for the runtime to accept it (its header metadata).
func (s *Server) openLogStream(ctx context.Context, id ids.StackID, req *runtimev1.StreamLogsRequest) (runtimev1.RuntimeService_StreamLogsClient, *httpError) {
	var buf [1]Candidate
	cands := s.runtimes.Candidates(id, 1, buf[:0])
	if len(cands) == 0 {
		e := errorf(http.StatusServiceUnavailable, KindRuntimeUnavailable, "no runtime is available for stack %s; try again later", id)
		e.retry = true
		return nil, e
	}
	stream, err := cands[0].Client.StreamLogs(ctx, req, s.recvLimitOpt)
	if err == nil {
		_, err = stream.Header()
	}
	if err != nil {
		s.log.Debug("log stream failed to open", "stack", id, "runtime", cands[0].Node, "err", err)
		return nil, rpcErrorStatus(ctx, err, "StreamLogs")
	}
	return stream, nil
}

// streamLogs writes the owner's log stream for q as NDJSON until it ends,
// ctx ends, or (following) the stack leaves the gateway. A followed stream
// whose runtime becomes UNAVAILABLE reconnects, without history, to the
// stack's first candidate then, every LogsReconnectDelay until one
// answers.
func (s *Server) streamLogs(ctx context.Context, w http.ResponseWriter, id ids.StackID, q logsQuery) {
	req := &runtimev1.StreamLogsRequest{StackId: id.Bytes(), Function: q.function, Tail: q.tail, NoFollow: !q.follow}
	stream, herr := s.openLogStream(ctx, id, req)
	if herr != nil {
		if herr.status != StatusClientClosedRequest {
			s.writeHTTPError(w, herr)
		}
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", ContentTypeNDJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	write := func(v any) bool {
		line, _ := json.Marshal(v)
		// Each write gets WriteTimeout of its own: a followed stream
		// outlives the server's per-request write deadline.
		if s.cfg.WriteTimeout > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	for {
		resp, err := stream.Recv()
		if err == nil {
			if !write(logLine(resp.GetEntry())) {
				return
			}
			continue
		}
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return
		}
		if !q.follow || status.Code(err) != codes.Unavailable {
			write(errorBody(rpcErrorStatus(ctx, err, "StreamLogs").kind, "the log stream broke: "+status.Code(err).String()))
			return
		}
		s.log.Info("log stream's runtime unavailable; reconnecting", "stack", id, "err", err)
		req.Tail = 0 // the history was sent
		if stream, herr = s.reopenLogStream(ctx, id, req); herr != nil {
			write(errorBody(herr.kind, herr.msg))
			return
		}
		if stream == nil {
			return
		}
	}
}

// reopenLogStream tries openLogStream every LogsReconnectDelay while ctx
// lasts and the stack is installed. It returns nil, nil when ctx ends.
func (s *Server) reopenLogStream(ctx context.Context, id ids.StackID, req *runtimev1.StreamLogsRequest) (runtimev1.RuntimeService_StreamLogsClient, *httpError) {
	t := time.NewTimer(s.cfg.LogsReconnectDelay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
		}
		if !s.stacks.has(id) {
			return nil, errorf(http.StatusNotFound, KindStackNotFound, "stack %s is no longer on this gateway", id)
		}
		stream, herr := s.openLogStream(ctx, id, req)
		switch {
		case herr == nil:
			return stream, nil
		case ctx.Err() != nil:
			return nil, nil
		case herr.kind != KindRuntimeUnavailable:
			return nil, herr
		}
		t.Reset(s.cfg.LogsReconnectDelay)
	}
}

// logLine is e as a line of the log stream.
func logLine(e *runtimev1.LogEntry) LogLine {
	l := LogLine{
		Time:     e.GetTime().AsTime().UTC().Format(time.RFC3339Nano),
		Function: e.GetFunction(),
		Level:    strings.ToLower(strings.TrimPrefix(e.GetLevel().String(), "LOG_LEVEL_")),
		Source:   strings.ToLower(strings.TrimPrefix(e.GetSource().String(), "LOG_SOURCE_")),
		Body:     e.GetBody(),
		Node:     e.GetNode(),
		Dropped:  e.GetDropped(),
		TraceID:  e.GetTraceId(),
	}
	if id, err := ids.StackIDFromBytes(e.GetStackId()); err == nil {
		l.Stack = id.String()
	}
	return l
}
