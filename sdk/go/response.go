package mu

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Response is the HTTP response a handler returns. Status must be within
// 100..599 when the handler returns; otherwise the request fails with a
// FatalError naming the status.
type Response struct {
	Status  int
	Headers []Header
	Body    []byte
}

// Content types set by the helpers.
const (
	contentTypeText = "text/plain; charset=utf-8"
	contentTypeJSON = "application/json"
)

// Text returns a response with body s and Content-Type text/plain; charset=utf-8.
func Text(status int, s string) *Response {
	return &Response{
		Status:  status,
		Headers: []Header{{Name: "Content-Type", Value: contentTypeText}},
		Body:    []byte(s),
	}
}

// JSON returns a response with v encoded as JSON (encoding/json, no
// trailing newline) and Content-Type application/json. It fails only if v
// cannot be encoded, so a handler can end with
//
//	return mu.JSON(200, todo)
func JSON(status int, v any) (*Response, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("mu: encode JSON response: %w", err)
	}
	return Bytes(status, contentTypeJSON, b), nil
}

// Bytes returns a response with body b and the given Content-Type (none if
// contentType is empty). b is not copied.
func Bytes(status int, contentType string, b []byte) *Response {
	r := &Response{Status: status, Body: b}
	if contentType != "" {
		r.Headers = []Header{{Name: "Content-Type", Value: contentType}}
	}
	return r
}

// Status returns a response with the given status, no headers and no body.
func Status(code int) *Response { return &Response{Status: code} }

// WithHeader sets the header name to value, replacing every header of that
// name (compared case insensitively), and returns r for chaining:
//
//	mu.Text(200, "ok").WithHeader("Cache-Control", "no-store")
func (r *Response) WithHeader(name, value string) *Response {
	hs := r.Headers[:0:0]
	replaced := false
	for _, h := range r.Headers {
		if !strings.EqualFold(h.Name, name) {
			hs = append(hs, h)
		} else if !replaced {
			hs = append(hs, Header{Name: name, Value: value})
			replaced = true
		}
	}
	if !replaced {
		hs = append(hs, Header{Name: name, Value: value})
	}
	r.Headers = hs
	return r
}

// AddHeader appends a header line, keeping any others of the same name
// (for headers such as Set-Cookie), and returns r for chaining.
func (r *Response) AddHeader(name, value string) *Response {
	r.Headers = append(r.Headers, Header{Name: name, Value: value})
	return r
}
