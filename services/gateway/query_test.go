package gateway

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseQuery checks parseQuery against url.ParseQuery: it refuses
// every query net/url reports an error for, accepts every other one whose
// keys and first values are UTF-8, and then gives the function the first
// value of each key, as url.Values.Get would; a refusal is a 400
// bad_request whose message starts with "query: ". The seed corpus is in
// testdata/fuzz/FuzzParseQuery.
func FuzzParseQuery(f *testing.F) {
	const max = 100
	reused := map[string]string{"left over": "from an earlier request"}
	f.Fuzz(func(t *testing.T, raw string) {
		got, herr := parseQuery(raw, max, nil)
		again, aerr := parseQuery(raw, max, reused)
		if (herr == nil) != (aerr == nil) || (herr == nil && !maps.Equal(got, again)) {
			t.Fatalf("%q: into a new map %v (%v), into a reused one %v (%v)", raw, got, herr, again, aerr)
		}
		if herr != nil {
			if herr.status != http.StatusBadRequest || herr.kind != KindBadRequest || !strings.HasPrefix(herr.msg, "query: ") {
				t.Fatalf("refusal %v", herr)
			}
		}
		if strings.Count(raw, "&") >= max {
			return // net/url counts empty settings towards its own limit; ours does not
		}
		want, werr := url.ParseQuery(raw)
		switch {
		case werr != nil && herr == nil:
			t.Fatalf("net/url refuses %q (%v), parseQuery accepts it as %v", raw, werr, got)
		case werr != nil:
			return
		}
		valid := true
		for k, vs := range want {
			valid = valid && utf8.ValidString(k) && utf8.ValidString(vs[0])
		}
		if !valid {
			if herr == nil {
				t.Fatalf("%q is not UTF-8, parseQuery accepts it as %v", raw, got)
			}
			return
		}
		if herr != nil {
			t.Fatalf("net/url accepts %q as %v, parseQuery refuses it: %v", raw, want, herr)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: parseQuery %v, net/url %v", raw, got, want)
		}
		for k, vs := range want {
			if v, ok := got[k]; !ok || v != vs[0] {
				t.Fatalf("%q: key %q is %q, net/url's first value %q", raw, k, v, vs[0])
			}
		}
	})
}
