package mu

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/muprotocol/mu/libs/fnproto"
)

// Header is one HTTP header line. Names may repeat; order is kept.
type Header = fnproto.Header

// Request is the HTTP request a handler answers, as the gateway received it.
// A handler may read and modify it; it is not reused after the handler
// returns.
type Request struct {
	Method      string            // HTTP method, e.g. "GET"
	PathParams  map[string]string // values of the endpoint's path template variables
	QueryParams map[string]string // query string parameters
	Headers     []Header          // request headers in order; names may repeat
	Body        []byte            // request body
}

// Param returns the value of the path template variable name ("name" in
// /greet/{name}), or "" if the endpoint has none by that name.
func (r *Request) Param(name string) string { return r.PathParams[name] }

// Query returns the query parameter name, or "" if absent.
func (r *Request) Query(name string) string { return r.QueryParams[name] }

// Header returns the value of the first header called name, compared case
// insensitively, or "" if there is none.
func (r *Request) Header(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// HeaderValues returns the values of every header called name, compared
// case insensitively, in order.
func (r *Request) HeaderValues(name string) []string {
	var vs []string
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

// JSON decodes the body as JSON into v.
func (r *Request) JSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("mu: decode JSON request body: %w", err)
	}
	return nil
}
