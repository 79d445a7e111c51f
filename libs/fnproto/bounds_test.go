package fnproto_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

// boundsOf are the exact counts and byte sums of m.
func boundsOf(m *fnproto.ExecuteFunction) fnproto.RequestBounds {
	r := &m.Request
	b := fnproto.RequestBounds{
		FunctionBytes: len(m.Function),
		MethodBytes:   len(r.Method),
		PathParams:    len(r.PathParams),
		QueryParams:   len(r.QueryParams),
		Headers:       len(r.Headers),
		BodyBytes:     int64(len(r.Body)),
	}
	for k, v := range r.PathParams {
		b.PathParamBytes += len(k) + len(v)
	}
	for k, v := range r.QueryParams {
		b.QueryParamBytes += len(k) + len(v)
	}
	for _, h := range r.Headers {
		b.HeaderBytes += len(h.Name) + len(h.Value)
	}
	return b
}

func TestExecuteFunctionFrameLen_MatchesEncoding(t *testing.T) {
	many := map[string]string{}
	for i := range 300 {
		many[fmt.Sprint("k", i)] = strings.Repeat("v", i%7)
	}
	cases := map[string]*fnproto.ExecuteFunction{
		"empty":   {},
		"typical": benchExecuteFunction(),
		"empty keys, values and names": {Request: fnproto.Request{
			PathParams:  map[string]string{"": ""},
			QueryParams: map[string]string{"": ""},
			Headers:     []fnproto.Header{{}, {}, {}},
		}},
		"multi-byte UTF-8": {Function: "grüße", Request: fnproto.Request{
			Method:      "GET",
			PathParams:  map[string]string{"name": "✓✓"},
			QueryParams: map[string]string{"q": "日本"},
			Headers:     []fnproto.Header{{Name: "X-Emoji", Value: "🙂"}},
		}},
		"many entries": {Function: "f", Request: fnproto.Request{
			QueryParams: many, PathParams: many,
			Headers: make([]fnproto.Header, 1000),
			Body:    bytes.Repeat([]byte{0}, 100_000),
		}},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			frame, err := fnproto.AppendFrame(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fnproto.ExecuteFunctionFrameLen(boundsOf(m)), int64(len(frame)-4); got != want {
				t.Fatalf("ExecuteFunctionFrameLen = %d, the encoded frame declares %d", got, want)
			}
		})
	}
}

func TestMaxExecuteFunctionBody_FillsTheFrameExactly(t *testing.T) {
	const limit = 64 << 10
	m := benchExecuteFunction()
	body := fnproto.MaxExecuteFunctionBody(limit, boundsOf(m))
	if body <= 0 || body >= limit {
		t.Fatalf("MaxExecuteFunctionBody = %d", body)
	}
	m.Request.Body = bytes.Repeat([]byte("b"), int(body))
	frame, err := fnproto.AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(frame)-4 != limit {
		t.Fatalf("frame declares %d bytes, want exactly the limit %d", len(frame)-4, limit)
	}
	if _, _, err := fnproto.ParseFrame(fnproto.ToFunction, frame, limit); err != nil {
		t.Fatalf("a reader with the limit refuses the largest body: %v", err)
	}
	m.Request.Body = append(m.Request.Body, 'b')
	frame, err = fnproto.AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fnproto.ParseFrame(fnproto.ToFunction, frame, limit); !errors.Is(err, fnproto.ErrFrameTooLarge) {
		t.Fatalf("one byte more: err = %v, want ErrFrameTooLarge", err)
	}
}

func TestMaxExecuteFunctionBody_DefaultLimitAndOverflow(t *testing.T) {
	if got, want := fnproto.MaxExecuteFunctionBody(0, fnproto.RequestBounds{}), int64(fnproto.DefaultMaxFrameSize-26); got != want {
		t.Errorf("empty request, default limit: %d, want %d (the frame's fixed 26 bytes)", got, want)
	}
	if got := fnproto.MaxExecuteFunctionBody(100, fnproto.RequestBounds{HeaderBytes: 100}); got >= 0 {
		t.Errorf("headers over the frame: %d, want negative", got)
	}
	huge := fnproto.RequestBounds{Headers: math.MaxInt, HeaderBytes: math.MaxInt, BodyBytes: math.MaxInt64}
	if got := fnproto.ExecuteFunctionFrameLen(huge); got != math.MaxInt64 {
		t.Errorf("huge bounds: %d, want saturation at MaxInt64", got)
	}
	if got := fnproto.ExecuteFunctionFrameLen(fnproto.RequestBounds{Headers: -5, BodyBytes: -1}); got != 26 {
		t.Errorf("negative bounds: %d, want them counted as 0 (26)", got)
	}
}

// A host works out the largest body it may accept so that a request with
// its other limits still fits the runtime's frame.
func ExampleMaxExecuteFunctionBody() {
	limits := fnproto.RequestBounds{
		FunctionBytes: 64,       // export names up to 64 bytes
		MethodBytes:   7,        // OPTIONS
		Headers:       100,      // up to 100 header fields
		HeaderBytes:   16 << 10, // of 16 KiB together
	}
	fmt.Println(fnproto.MaxExecuteFunctionBody(fnproto.DefaultMaxFrameSize, limits))
	// Output: 8371327
}
