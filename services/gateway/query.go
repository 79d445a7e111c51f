package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// parseQuery decodes a raw query string into what the function sees: the
// first value of each key. It refuses, with a 400 naming the problem, what
// url.ParseQuery would only report beside a partial result:
//
//   - more than max parameters (the '&'-separated settings; empty ones, as
//     between "&&", are skipped and not counted);
//   - a ';' in a setting (Go ≥ 1.17 no longer treats it as a separator; a
//     literal semicolon is written %3B);
//   - an invalid percent escape ("%zz", a '%' at the end);
//   - a key or value that is not UTF-8 once decoded.
//
// The limit is ours, checked before anything is decoded, rather than
// net/url's GODEBUG urlmaxqueryparams (10,000 by default since Go 1.26),
// which parseQuery does not use.
//
// The parameters go into dst, cleared first, when it is not nil (a map
// the caller reuses request after request), else into a new map; a nil
// map is returned for an empty query.
func parseQuery(raw string, max int, dst map[string]string) (map[string]string, *httpError) {
	if raw == "" {
		return nil, nil
	}
	bad := func(format string, args ...any) *httpError {
		return errorf(http.StatusBadRequest, KindBadRequest, "query: "+format, args...)
	}
	n := 0
	for rest := raw; rest != ""; {
		var setting string
		setting, rest, _ = strings.Cut(rest, "&")
		if setting != "" {
			if n++; n > max {
				return nil, bad("more than %d parameters", max)
			}
		}
	}
	query := dst
	if query == nil {
		query = make(map[string]string, n)
	} else {
		clear(query)
	}
	for i, rest := 0, raw; rest != ""; {
		var setting string
		setting, rest, _ = strings.Cut(rest, "&")
		if setting == "" {
			continue
		}
		i++
		if strings.Contains(setting, ";") {
			return nil, bad("invalid semicolon separator in parameter %d (separate parameters with '&'; write a literal ';' as %%3B)", i)
		}
		rawKey, rawValue, _ := strings.Cut(setting, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return nil, bad("%v", err)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, bad("%v", err)
		}
		if !utf8.ValidString(key) {
			return nil, bad("parameter %q is not valid UTF-8", key)
		}
		if _, dup := query[key]; dup {
			continue // the first value wins
		}
		if !utf8.ValidString(value) {
			return nil, bad("parameter %s: value %q is not valid UTF-8", key, value)
		}
		query[key] = value
	}
	return query, nil
}
