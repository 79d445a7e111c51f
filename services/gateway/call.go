package gateway

import (
	"sync"

	"google.golang.org/grpc"

	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// call is what one stack request needs on the way to the runtime and
// back, kept from request to request in callPool so that the hot path
// allocates none of it: the exchange, the InvokeRequest and its
// HttpRequest with their header slice and headers, the path segments, the
// params and query maps and the Invoke call options.
//
// A call belongs to one ServeHTTP from getCall to putCall. It is put back
// only after Invoke has returned and the response has been written: the
// gRPC client has encoded the request by then, and an in-process runtime
// does not keep references to the request once its Invoke has returned,
// so nothing else can see a call's contents when the next request
// overwrites them. putCall clears every field that carries request data,
// so a pooled call keeps none of it alive and none can leak into the
// next request.
type call struct {
	x    exchange
	req  runtimev1.InvokeRequest
	hreq typesv1.HttpRequest
	// stackID backs req.StackId.
	stackID []byte
	// names are the request's forwarded header names, sorted; headers
	// backs hreq.Headers and points into hdrs.
	names   []string
	headers []*typesv1.Header
	hdrs    []typesv1.Header
	segs    []string          // the endpoint path's decoded segments
	params  map[string]string // backs hreq.PathParams; nil until a route has params
	query   map[string]string // backs hreq.QueryParams; nil until a request has a query
	opts    [1]grpc.CallOption
}

// pooledHeaders bounds the header fields a pooled call keeps room for: a
// call that served a request with more is dropped rather than pooled, so
// one request with thousands of headers does not pin that much memory in
// the pool. It is not a limit on requests (Config.MaxHeaderBytes is).
const pooledHeaders = 256

var callPool = sync.Pool{New: func() any { return new(call) }}

func getCall() *call { return callPool.Get().(*call) }

// putCall clears c's request data and returns it to the pool.
func putCall(c *call) {
	if cap(c.hdrs) > pooledHeaders || cap(c.names) > pooledHeaders || cap(c.segs) > pooledHeaders ||
		len(c.params) > pooledHeaders || len(c.query) > pooledHeaders {
		return
	}
	c.x = exchange{}
	c.req.Reset()
	c.hreq.Reset()
	clear(c.stackID)
	c.stackID = c.stackID[:0]
	clear(c.names)
	c.names = c.names[:0]
	clear(c.headers)
	c.headers = c.headers[:0]
	for i := range c.hdrs { // beyond len(c.hdrs), they were reset when last used
		c.hdrs[i].Reset()
	}
	c.hdrs = c.hdrs[:0]
	clear(c.segs)
	c.segs = c.segs[:0]
	clear(c.params)
	clear(c.query)
	c.opts = [1]grpc.CallOption{}
	callPool.Put(c)
}

// headersFor returns room for n proto headers: hreq.Headers' backing,
// length 0, and the headers it will point to, length n.
func (c *call) headersFor(n int) ([]*typesv1.Header, []typesv1.Header) {
	if cap(c.headers) < n {
		c.headers = make([]*typesv1.Header, 0, n)
	}
	if cap(c.hdrs) < n {
		c.hdrs = make([]typesv1.Header, n)
	}
	c.hdrs = c.hdrs[:n]
	return c.headers[:0], c.hdrs
}

// paramsMap is the map for the route's params, made on first use.
func (c *call) paramsMap() map[string]string {
	if c.params == nil {
		c.params = map[string]string{}
	}
	return c.params
}

// queryMap is the map for the query parameters, made on first use.
func (c *call) queryMap() map[string]string {
	if c.query == nil {
		c.query = map[string]string{}
	}
	return c.query
}
