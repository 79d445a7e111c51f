// Package httphdr holds the header rules of the gateway as an HTTP proxy:
// which headers are hop-by-hop (RFC 9110 §7.6.1) and so never cross the
// gateway, and which header fields are well-formed enough to write.
package httphdr

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop are the connection-specific headers a proxy must not forward,
// in canonical form: RFC 9110 §7.6.1's list, the obsolete ones that
// net/http/httputil.ReverseProxy also drops, and Expect, which the gateway
// itself answers (100-continue) when it reads the body.
var hopByHop = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Expect":              true,
}

// Filter decides which headers of one message cross the gateway.
type Filter struct {
	drop map[string]bool // canonical names named by the Connection header
}

// NewFilter returns the filter for a message whose Connection header
// values are conn: besides the fixed hop-by-hop headers, every header named
// there is dropped.
func NewFilter(conn []string) Filter {
	var f Filter
	for _, v := range conn {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if f.drop == nil {
				f.drop = map[string]bool{}
			}
			f.drop[textproto.CanonicalMIMEHeaderKey(name)] = true
		}
	}
	return f
}

// Forward reports whether the header called name (any case) crosses.
func (f Filter) Forward(name string) bool {
	c := textproto.CanonicalMIMEHeaderKey(name)
	return !hopByHop[c] && !f.drop[c]
}

// ConnectionValues returns the Connection header values of a message given
// as name/value pairs (any case).
func ConnectionValues(names, values []string) []string {
	var out []string
	for i, n := range names {
		if strings.EqualFold(n, "Connection") {
			out = append(out, values[i])
		}
	}
	return out
}

// ValidName reports whether name is an RFC 9110 field name (a token).
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return false
		}
	}
	return true
}

// ValidValue reports whether value can be written as a field value: no
// CR, LF, NUL or other control character except horizontal tab.
func ValidValue(value string) bool {
	for i := 0; i < len(value); i++ {
		c := value[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Size is the metered size of a header map: the lengths of every name and
// value, once per value. It is the unit of gateway traffic for headers
// (design §8), independent of how the bytes were framed on the wire.
func Size(h http.Header) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v))
		}
	}
	return n
}
