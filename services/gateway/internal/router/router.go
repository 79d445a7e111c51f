// Package router matches request paths against the endpoint path templates
// of one gateway of a stack.
//
// A template is a path such as /todos/{id}/attachments/{name}: it is split
// on '/' into segments, each either a literal or a whole-segment {param}.
// A request path matches a template when it has the same number of segments,
// every literal segment is equal to the request's segment and every param
// segment is non-empty. Segments are compared percent-decoded, so
// /files/{name} matches /files/a%2Fb with name "a/b", and a literal written
// encoded in the manifest matches its decoded form.
//
// When several templates match, the most specific wins: templates are
// compared segment by segment from the left and the first segment where one
// has a literal and the other a param decides for the literal. Two templates
// of the same shape cannot both carry the same method (manifest validation
// rejects it), so the winner for a method is unique.
//
// Trailing slashes are significant: /todos and /todos/ are different paths
// (the second has an empty last segment), and a param never matches an empty
// segment. The root template "/" matches the gateway's root.
//
// A Router is immutable after New and safe for concurrent use.
package router

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Endpoint is one method on one path template, routed to a function.
type Endpoint struct {
	Method   string // upper case, e.g. "GET"
	Path     string // template, starting with '/'
	Function string // "assembly.function"
}

// Match is the endpoint chosen for a request.
type Match struct {
	Endpoint
	// Params holds the decoded values of the template's {param} segments;
	// nil when the template has none.
	Params map[string]string
}

// Outcome says how a lookup ended.
type Outcome int

const (
	// Found: a template matched the path and has an endpoint for the method.
	Found Outcome = iota
	// NotFound: no template matches the path.
	NotFound
	// MethodNotAllowed: templates match the path but none for the method.
	MethodNotAllowed
)

type segment struct {
	lit   string // decoded literal; unused for a param
	param string // param name; "" for a literal
}

type template struct {
	path    string
	segs    []segment
	methods map[string]string // method → function
}

// Router matches paths against the templates of one gateway.
type Router struct {
	templates []*template // most specific first
}

// New compiles endpoints into a Router. It fails on a malformed template;
// manifests accepted by manifest.Parse never have one.
func New(endpoints []Endpoint) (*Router, error) {
	byPath := map[string]*template{}
	var ts []*template
	for _, e := range endpoints {
		t, ok := byPath[e.Path]
		if !ok {
			segs, err := compile(e.Path)
			if err != nil {
				return nil, err
			}
			t = &template{path: e.Path, segs: segs, methods: map[string]string{}}
			byPath[e.Path] = t
			ts = append(ts, t)
		}
		if _, dup := t.methods[e.Method]; dup {
			return nil, fmt.Errorf("router: duplicate endpoint %s %s", e.Method, e.Path)
		}
		t.methods[e.Method] = e.Function
	}
	slices.SortStableFunc(ts, func(a, b *template) int {
		if c := moreSpecific(a, b); c != 0 {
			return c
		}
		return cmp.Compare(a.path, b.path)
	})
	return &Router{templates: ts}, nil
}

// compile splits a template into segments.
func compile(path string) ([]segment, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("router: path %q does not start with '/'", path)
	}
	raw := strings.Split(path[1:], "/")
	segs := make([]segment, len(raw))
	for i, s := range raw {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) > 2 {
			segs[i] = segment{param: s[1 : len(s)-1]}
			continue
		}
		if strings.ContainsAny(s, "{}") {
			return nil, fmt.Errorf("router: path %q: segment %q is neither a literal nor a whole {param}", path, s)
		}
		lit, err := url.PathUnescape(s)
		if err != nil {
			lit = s // not valid percent-encoding: compare as written
		}
		segs[i] = segment{lit: lit}
	}
	return segs, nil
}

// moreSpecific orders a before b (-1) when a is more specific: at the first
// segment where one is literal and the other a param, the literal wins.
// Templates of different lengths never match the same path; they are
// ordered by length only to make the order total.
func moreSpecific(a, b *template) int {
	if c := cmp.Compare(len(a.segs), len(b.segs)); c != 0 {
		return c
	}
	for i := range a.segs {
		ap, bp := a.segs[i].param != "", b.segs[i].param != ""
		switch {
		case !ap && bp:
			return -1
		case ap && !bp:
			return 1
		}
	}
	return 0
}

func (t *template) match(segs []string) bool {
	if len(segs) != len(t.segs) {
		return false
	}
	for i, s := range t.segs {
		if s.param != "" {
			if segs[i] == "" {
				return false
			}
		} else if s.lit != segs[i] {
			return false
		}
	}
	return true
}

// params returns the template's params of segs in dst (cleared first;
// a new map when dst is nil), or nil when the template has none.
func (t *template) params(segs []string, dst map[string]string) map[string]string {
	var p map[string]string
	for i, s := range t.segs {
		if s.param != "" {
			if p == nil {
				p = dst
				if p == nil {
					p = map[string]string{}
				} else {
					clear(p)
				}
			}
			p[s.param] = segs[i]
		}
	}
	return p
}

// Lookup finds the endpoint for method on a request path given as decoded
// segments (the path after the gateway name, split on '/'; the root is
// [""]). A HEAD request uses a HEAD endpoint when a matching template has
// one, else the most specific matching GET endpoint. On MethodNotAllowed,
// allow lists the methods the matching templates accept, sorted, with HEAD
// added wherever GET is present.
func (r *Router) Lookup(method string, segs []string) (m Match, allow []string, out Outcome) {
	return r.LookupParams(method, segs, nil)
}

// LookupParams is Lookup with the params written to dst, which it clears
// first, instead of a new map: Match.Params is dst when the matched
// template has params, and nil otherwise (dst is then left as it was). A
// nil dst makes it Lookup. The caller owns dst and may reuse it once it is
// done with the Match.
func (r *Router) LookupParams(method string, segs []string, dst map[string]string) (m Match, allow []string, out Outcome) {
	var matched []*template
	for _, t := range r.templates {
		if !t.match(segs) {
			continue
		}
		if fn, ok := t.methods[method]; ok {
			return Match{Endpoint: Endpoint{Method: method, Path: t.path, Function: fn}, Params: t.params(segs, dst)}, nil, Found
		}
		matched = append(matched, t)
	}
	if len(matched) == 0 {
		return Match{}, nil, NotFound
	}
	if method == "HEAD" {
		for _, t := range matched {
			if fn, ok := t.methods["GET"]; ok {
				return Match{Endpoint: Endpoint{Method: "GET", Path: t.path, Function: fn}, Params: t.params(segs, dst)}, nil, Found
			}
		}
	}
	seen := map[string]bool{}
	for _, t := range matched {
		for m := range t.methods {
			seen[m] = true
			if m == "GET" {
				seen["HEAD"] = true
			}
		}
	}
	for m := range seen {
		allow = append(allow, m)
	}
	slices.Sort(allow)
	return Match{}, allow, MethodNotAllowed
}

// Endpoints returns the router's endpoints ordered by path, then method.
func (r *Router) Endpoints() []Endpoint {
	var eps []Endpoint
	for _, t := range r.templates {
		for m, fn := range t.methods {
			eps = append(eps, Endpoint{Method: m, Path: t.path, Function: fn})
		}
	}
	slices.SortFunc(eps, func(a, b Endpoint) int {
		if c := cmp.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return cmp.Compare(a.Method, b.Method)
	})
	return eps
}

// SplitPath splits the escaped path after the gateway name (such as
// "/greet/bob%20smith", or "" for the gateway root) into decoded segments
// for Lookup. It fails on malformed percent-encoding.
func SplitPath(escaped string) ([]string, error) {
	return AppendSplitPath(nil, escaped)
}

// AppendSplitPath is SplitPath appending the segments to dst and
// returning the extended slice, so a caller can reuse one slice for
// every request. The segments are substrings of escaped, or new strings
// where a segment has a percent escape.
func AppendSplitPath(dst []string, escaped string) ([]string, error) {
	if escaped == "" {
		return append(dst, ""), nil
	}
	if !strings.HasPrefix(escaped, "/") {
		return dst, fmt.Errorf("path %q does not start with '/'", escaped)
	}
	for rest, more := escaped[1:], true; more; {
		var s string
		s, rest, more = strings.Cut(rest, "/")
		if strings.Contains(s, "%") {
			d, err := url.PathUnescape(s)
			if err != nil {
				return dst, fmt.Errorf("path segment %q: %w", s, err)
			}
			s = d
		}
		dst = append(dst, s)
	}
	return dst, nil
}
