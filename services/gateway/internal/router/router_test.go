package router

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func mustNew(t testing.TB, eps ...Endpoint) *Router {
	t.Helper()
	r, err := New(eps)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ep(method, path, fn string) Endpoint { return Endpoint{Method: method, Path: path, Function: fn} }

func TestLookup(t *testing.T) {
	r := mustNew(t,
		ep("GET", "/", "f.root"),
		ep("GET", "/todos", "f.list"),
		ep("POST", "/todos", "f.create"),
		ep("GET", "/todos/", "f.listSlash"),
		ep("GET", "/todos/{id}", "f.get"),
		ep("GET", "/todos/new", "f.newForm"),
		ep("DELETE", "/todos/{id}", "f.remove"),
		ep("GET", "/{a}/b/{c}", "f.abc_literal_second"),
		ep("GET", "/{a}/{b}/c", "f.abc_literal_third"),
		ep("GET", "/x/{y}/{z}", "f.x"),
		ep("GET", "/files/{name}", "f.file"),
		ep("GET", "/lit/a%20b", "f.encodedLiteral"),
		ep("POST", "/only-post/{id}", "f.onlyPost"),
		ep("HEAD", "/h", "f.head"),
		ep("GET", "/h", "f.headGet"),
	)
	cases := []struct {
		name, method, path string
		want               string // function; "" when not found
		params             map[string]string
		out                Outcome
		allow              string
	}{
		{name: "root", method: "GET", path: "", want: "f.root", out: Found},
		{name: "root slash", method: "GET", path: "/", want: "f.root", out: Found},
		{name: "literal", method: "GET", path: "/todos", want: "f.list", out: Found},
		{name: "literal other method", method: "POST", path: "/todos", want: "f.create", out: Found},
		{name: "trailing slash is its own path", method: "GET", path: "/todos/", want: "f.listSlash", out: Found},
		{name: "param", method: "GET", path: "/todos/42", want: "f.get", params: map[string]string{"id": "42"}, out: Found},
		{name: "literal beats param", method: "GET", path: "/todos/new", want: "f.newForm", out: Found},
		{name: "param serves other methods of a literal path", method: "DELETE", path: "/todos/new", want: "f.remove",
			params: map[string]string{"id": "new"}, out: Found},
		{name: "leftmost literal wins", method: "GET", path: "/q/b/c", want: "f.abc_literal_second",
			params: map[string]string{"a": "q", "c": "c"}, out: Found},
		{name: "third literal when second is param", method: "GET", path: "/q/z/c", want: "f.abc_literal_third",
			params: map[string]string{"a": "q", "b": "z"}, out: Found},
		{name: "first segment literal beats later literals", method: "GET", path: "/x/b/c", want: "f.x",
			params: map[string]string{"y": "b", "z": "c"}, out: Found},
		{name: "encoded slash stays in param", method: "GET", path: "/files/a%2Fb", want: "f.file",
			params: map[string]string{"name": "a/b"}, out: Found},
		{name: "encoded request literal", method: "GET", path: "/t%6Fdos", want: "f.list", out: Found},
		{name: "encoded template literal", method: "GET", path: "/lit/a%20b", want: "f.encodedLiteral", out: Found},
		{name: "param does not match empty segment", method: "GET", path: "/files/", out: NotFound},
		{name: "extra segment", method: "GET", path: "/todos/1/2", out: NotFound},
		{name: "double slash", method: "GET", path: "//todos", out: NotFound},
		{name: "unknown", method: "GET", path: "/nope", out: NotFound},
		{name: "wrong method", method: "PUT", path: "/todos", out: MethodNotAllowed, allow: "GET,HEAD,POST"},
		{name: "wrong method union over matching templates", method: "PATCH", path: "/todos/new",
			out: MethodNotAllowed, allow: "DELETE,GET,HEAD"},
		{name: "wrong method no GET", method: "GET", path: "/only-post/1", out: MethodNotAllowed, allow: "POST"},
		{name: "head falls back to get", method: "HEAD", path: "/todos/7", want: "f.get",
			params: map[string]string{"id": "7"}, out: Found},
		{name: "head endpoint preferred", method: "HEAD", path: "/h", want: "f.head", out: Found},
		{name: "head without get", method: "HEAD", path: "/only-post/1", out: MethodNotAllowed, allow: "POST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			segs, err := SplitPath(c.path)
			if err != nil {
				t.Fatal(err)
			}
			m, allow, out := r.Lookup(c.method, segs)
			if out != c.out {
				t.Fatalf("outcome = %v, want %v", out, c.out)
			}
			if m.Function != c.want {
				t.Errorf("function = %q, want %q", m.Function, c.want)
			}
			if !maps.Equal(m.Params, c.params) {
				t.Errorf("params = %v, want %v", m.Params, c.params)
			}
			if got := strings.Join(allow, ","); got != c.allow {
				t.Errorf("allow = %q, want %q", got, c.allow)
			}
		})
	}
}

func TestLookup_HeadFallbackReportsGetEndpoint(t *testing.T) {
	r := mustNew(t, ep("GET", "/a", "f.a"))
	m, _, out := r.Lookup("HEAD", []string{"a"})
	if out != Found || m.Method != "GET" || m.Path != "/a" {
		t.Fatalf("got %+v %v", m, out)
	}
}

func TestNew_RejectsMalformedTemplates(t *testing.T) {
	for _, p := range []string{"nope", "/a/{}", "/a/{x}y", "/a/x}"} {
		if _, err := New([]Endpoint{ep("GET", p, "f.g")}); err == nil {
			t.Errorf("New(%q): no error", p)
		}
	}
	if _, err := New([]Endpoint{ep("GET", "/a", "f.g"), ep("GET", "/a", "f.h")}); err == nil {
		t.Error("duplicate endpoint accepted")
	}
}

func TestSplitPath_RejectsBadEscapes(t *testing.T) {
	if _, err := SplitPath("/a/%zz"); err == nil {
		t.Fatal("no error")
	}
}

func TestLookupParams_ReusesMapWithoutEarlierParams(t *testing.T) {
	r := mustNew(t, ep("GET", "/a/{x}/{y}", "f.two"), ep("GET", "/b/{z}", "f.one"), ep("GET", "/c", "f.none"))
	dst := map[string]string{}
	m, _, _ := r.LookupParams("GET", []string{"a", "1", "2"}, dst)
	if !maps.Equal(m.Params, map[string]string{"x": "1", "y": "2"}) {
		t.Fatalf("params = %v", m.Params)
	}
	m, _, _ = r.LookupParams("GET", []string{"b", "3"}, dst)
	if !maps.Equal(m.Params, map[string]string{"z": "3"}) {
		t.Fatalf("reused map has %v, want only z", m.Params)
	}
	m, _, out := r.LookupParams("GET", []string{"c"}, dst)
	if out != Found || m.Params != nil {
		t.Fatalf("a template without params gave %v (%v)", m.Params, out)
	}
}

func TestAppendSplitPath_MatchesSplitPathOnAReusedSlice(t *testing.T) {
	buf := make([]string, 0, 8)
	for _, p := range []string{"", "/", "/a", "/a/b%20c/", "//x", "/a%2Fb/c", "/long/path/with/many/segments/in/it/now"} {
		want := strings.Split(p, "/")[1:]
		if p == "" {
			want = []string{""}
		}
		for i, s := range want {
			if d, err := url.PathUnescape(s); err == nil {
				want[i] = d
			}
		}
		got, err := AppendSplitPath(buf[:0], p)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("AppendSplitPath(%q) = %q, %v; want %q", p, got, err, want)
		}
		if sp, _ := SplitPath(p); !slices.Equal(sp, got) {
			t.Errorf("SplitPath(%q) = %q, AppendSplitPath %q", p, sp, got)
		}
		buf = got
	}
	if _, err := AppendSplitPath(nil, "/a/%zz"); err == nil {
		t.Error("bad escape accepted")
	}
}

func TestEndpoints_Sorted(t *testing.T) {
	r := mustNew(t, ep("POST", "/b", "f.b"), ep("GET", "/b", "f.b2"), ep("GET", "/a/{x}", "f.a"))
	got := r.Endpoints()
	want := []Endpoint{ep("GET", "/a/{x}", "f.a"), ep("GET", "/b", "f.b2"), ep("POST", "/b", "f.b")}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
}

// FuzzLookup feeds arbitrary request paths (outside input) through SplitPath
// and Lookup: neither may panic, and a Found match must be consistent.
func FuzzLookup(f *testing.F) {
	r := mustNew(f,
		ep("GET", "/", "f.root"),
		ep("GET", "/todos/{id}", "f.get"),
		ep("GET", "/todos/new", "f.new"),
		ep("POST", "/{a}/b/{c}", "f.abc"),
	)
	for _, s := range []string{"", "/", "/todos/1", "/todos/new", "/x/b/y", "/%zz", "/a%2Fb/b/c", "//", "/todos/"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		segs, err := SplitPath(path)
		if err != nil {
			return
		}
		m, allow, out := r.Lookup(method, segs)
		switch out {
		case Found:
			if m.Function == "" || len(allow) != 0 {
				t.Fatalf("found %+v allow %v", m, allow)
			}
			for _, v := range m.Params {
				if v == "" {
					t.Fatalf("empty param in %+v", m)
				}
			}
		case MethodNotAllowed:
			if len(allow) == 0 {
				t.Fatal("405 without Allow")
			}
		}
	})
}
