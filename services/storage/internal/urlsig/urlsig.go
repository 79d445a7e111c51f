// Package urlsig signs and verifies the storage HTTP API's signed URLs.
//
// A URL is {base}/signed/{stack}/{box}/{escaped key}?m=GET|PUT&exp=<unix
// seconds>&max=<bytes, PUT>&ct=<content type, PUT>&sig=<base64url HMAC>,
// where the HMAC-SHA256, keyed with the service's url_signing_key, covers
// the line-separated fields "mu-signed-url-v1", method, stack, box, key,
// exp, max and ct. No field can contain a newline (keys and content types
// exclude control characters), so the encoding is unambiguous.
package urlsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PathPrefix starts every signed URL's path.
const PathPrefix = "/signed/"

// Grant is what a signed URL allows.
type Grant struct {
	Method string // GET or PUT
	Stack  string // base58 stack id
	Box    string
	Key    string
	// Expires is the Unix second after which the URL is refused.
	Expires int64
	// MaxBytes bounds a PUT body (0 for GET).
	MaxBytes int64
	// ContentType is stored with a PUT ("" for none).
	ContentType string
}

// ErrAltered and ErrExpired are the two ways a URL is refused.
var (
	ErrAltered = errors.New("signed URL altered or not signed by this service")
	ErrExpired = errors.New("signed URL expired")
)

func mac(secret []byte, g Grant) []byte {
	h := hmac.New(sha256.New, secret)
	fmt.Fprintf(h, "mu-signed-url-v1\n%s\n%s\n%s\n%s\n%d\n%d\n%s", g.Method, g.Stack, g.Box, g.Key, g.Expires, g.MaxBytes, g.ContentType)
	return h.Sum(nil)
}

// Sign returns the path and query of g's URL (append it to the base URL).
func Sign(secret []byte, g Grant) string {
	q := url.Values{}
	q.Set("m", g.Method)
	q.Set("exp", strconv.FormatInt(g.Expires, 10))
	if g.Method == "PUT" {
		q.Set("max", strconv.FormatInt(g.MaxBytes, 10))
		if g.ContentType != "" {
			q.Set("ct", g.ContentType)
		}
	}
	q.Set("sig", base64.RawURLEncoding.EncodeToString(mac(secret, g)))
	segs := strings.Split(g.Key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return PathPrefix + g.Stack + "/" + g.Box + "/" + strings.Join(segs, "/") + "?" + q.Encode()
}

// Verify checks a request for a signed URL: stack, box and key are the
// path's (unescaped) segments after PathPrefix, q its query, method the
// request's. The Grant is returned only for a URL this service signed,
// unaltered, for this method and not expired at now; the error wraps
// ErrAltered or ErrExpired and says which field failed.
func Verify(secret []byte, method, stack, box, key string, q url.Values, now time.Time) (Grant, error) {
	g := Grant{Method: q.Get("m"), Stack: stack, Box: box, Key: key, ContentType: q.Get("ct")}
	var err error
	if g.Expires, err = strconv.ParseInt(q.Get("exp"), 10, 64); err != nil {
		return Grant{}, fmt.Errorf("%w: exp is not a number", ErrAltered)
	}
	if g.Method == "PUT" {
		if g.MaxBytes, err = strconv.ParseInt(q.Get("max"), 10, 64); err != nil {
			return Grant{}, fmt.Errorf("%w: max is not a number", ErrAltered)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(q.Get("sig"))
	if err != nil || !hmac.Equal(sig, mac(secret, g)) {
		return Grant{}, fmt.Errorf("%w: the signature does not match the URL's method, object, expiry and limits", ErrAltered)
	}
	if g.Method != method {
		return Grant{}, fmt.Errorf("%w: signed for %s, used with %s", ErrAltered, g.Method, method)
	}
	if now.Unix() > g.Expires {
		return Grant{}, fmt.Errorf("%w at %s", ErrExpired, time.Unix(g.Expires, 0).UTC().Format(time.RFC3339))
	}
	return g, nil
}
