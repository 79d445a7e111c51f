package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// The gateway reuses each request's InvokeRequest, HttpRequest, headers,
// path segments, params and query maps for later requests. These tests
// check that nothing of one request reaches the runtime with another, over
// gRPC and with a runtime called directly (as an in-process one is: it
// reads the gateway's own messages, so under -race a reuse before Invoke
// returned is a reported race).

// withDirectRuntime makes the gateway call rt's Invoke as a function, no
// serialization in between.
func withDirectRuntime(rt *fakeRuntime) harnessOpt {
	return func(_ *gateway.Config, d *gateway.Deps) { d.Runtimes = oneRuntime{directClient{srv: rt}} }
}

// runtimePaths runs f against a gateway whose runtime is reached over
// loopback gRPC and against one whose runtime is called directly; f gets
// the harness and the runtime its requests reach.
func runtimePaths(t *testing.T, f func(t *testing.T, h *harness, rt *fakeRuntime)) {
	t.Run("grpc", func(t *testing.T) {
		h := newHarness(t)
		f(t, h, h.rt)
	})
	t.Run("direct", func(t *testing.T) {
		rt := startRuntime(t)
		f(t, newHarness(t, withDirectRuntime(rt)), rt)
	})
}

func TestGateway_ReusedRequestStateCarriesNothingIntoTheNextRequest(t *testing.T) {
	runtimePaths(t, func(t *testing.T, h *harness, rt *fakeRuntime) {
		big := http.Header{}
		for i := range 20 {
			big.Set(fmt.Sprintf("X-First-%d", i), strings.Repeat("v", i+1))
		}
		resp, _ := h.do("PUT", h.url("web/echo?a=1&b=2&c=3"), strings.NewReader("the first body"), big)
		if resp.StatusCode != 200 {
			t.Fatalf("first: %d", resp.StatusCode)
		}
		if got := len(rt.last(t).GetRequest().GetHeaders()); got < 20 {
			t.Fatalf("first request reached the runtime with %d headers", got)
		}
		resp, _ = h.do("GET", h.url("web/todos/42?q=x"), nil, http.Header{"X-Second": {"2"}})
		if resp.StatusCode != 200 {
			t.Fatalf("second: %d", resp.StatusCode)
		}
		resp, _ = h.do("GET", h.url("web/todos"), nil, http.Header{"X-Third": {"3"}})
		if resp.StatusCode != 200 {
			t.Fatalf("third: %d", resp.StatusCode)
		}
		got := rt.last(t).GetRequest()
		want := "Host: " + strings.TrimPrefix(h.base, "http://") + "\n" +
			"Accept-Encoding: gzip\nUser-Agent: Go-http-client/1.1\nX-Third: 3\n"
		if hs := headerPairs(got.GetHeaders()); hs != want {
			t.Errorf("third request's headers:\n%s\nwant:\n%s", hs, want)
		}
		if len(got.GetQueryParams()) != 0 || len(got.GetPathParams()) != 0 || len(got.GetBody()) != 0 {
			t.Errorf("third request has query %v, params %v, body %q from earlier requests",
				got.GetQueryParams(), got.GetPathParams(), got.GetBody())
		}
		if got.GetMethod() != "GET" || rt.last(t).GetFunction() != "api.list" {
			t.Errorf("third request is %s %s", got.GetMethod(), rt.last(t).GetFunction())
		}
	})
}

// echoIdentity answers with what identifies a request: its X-Req header,
// query parameter q, path parameter id, body and header count.
func echoIdentity(_ context.Context, req *runtimev1.InvokeRequest) (*runtimev1.InvokeResponse, error) {
	r := req.GetRequest()
	var xreq []string
	for _, h := range r.GetHeaders() {
		if h.GetName() == "X-Req" {
			xreq = append(xreq, h.GetValue())
		}
	}
	body := strings.Join(xreq, ",") + "|" + r.GetQueryParams()["q"] + "|" + r.GetPathParams()["id"] + "|" +
		string(r.GetBody()) + "|" + strconv.Itoa(len(r.GetHeaders()))
	return &runtimev1.InvokeResponse{Response: &typesv1.HttpResponse{Status: 200, Body: []byte(body)}}, nil
}

func TestGateway_ConcurrentRequestsReachTheRuntimeWithOnlyTheirOwnData(t *testing.T) {
	runtimePaths(t, func(t *testing.T, h *harness, rt *fakeRuntime) {
		rt.setHandle(echoIdentity)
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("w%d-%d", w, i)
					// A varying number of headers, so reused slices shrink
					// and grow between requests.
					hdr := http.Header{"X-Req": {id}}
					for j := range i % 5 {
						hdr.Set(fmt.Sprintf("X-Pad-%d", j), id)
					}
					body := ""
					method := "GET"
					if i%2 == 1 {
						method, body = "PUT", "body-"+id
					}
					req, err := http.NewRequest(method, h.url("web/echo?q="+id), strings.NewReader(body))
					if err != nil {
						errs <- err
						return
					}
					req.Header = hdr
					if body == "" {
						req.Body, req.ContentLength = http.NoBody, 0
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						errs <- err
						return
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						errs <- err
						return
					}
					// Host, User-Agent, Accept-Encoding, X-Req, the padding
					// and, with a body, Content-Length.
					n := 4 + i%5
					if body != "" {
						n++
					}
					if want := id + "|" + id + "||" + body + "|" + strconv.Itoa(n); string(got) != want {
						errs <- fmt.Errorf("%s %s: the runtime saw %q, want %q", method, id, got, want)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := rt.callCount(); n != workers*each {
			t.Errorf("runtime called %d times, want %d", n, workers*each)
		}
	})
}
