// Package reqsign signs and verifies HTTP requests with a developer's
// ed25519 key, for the gateway endpoints that only a stack's owner may call
// (its log stream, /_mu/stacks/{stack_id}/logs). It depends on the standard
// library and base58 only, so the CLI and the services share it cheaply.
//
// Scheme: the client signs, with ed25519,
//
//	"mu-request-v1:" || METHOD || "\n" || request-URI || "\n" || be64(signed_at Unix seconds)
//
// where METHOD is the request method as sent ("GET") and request-URI is the
// URL's escaped path, followed by "?" and the raw query when the URL has
// one (RequestURI: what Go's client writes on the request line). The
// signature covers the query, so the parameters cannot be changed without
// breaking it; it does not cover the host, headers or body (the signed
// endpoints take no body). Three headers carry it: Mu-Public-Key (the
// 32-byte public key, base58), Mu-Timestamp (the signing time, decimal Unix
// seconds) and Mu-Signature (the 64-byte signature, base58). A verifier
// refuses a signing time more than its allowed skew away from its clock;
// within the skew a captured request can be replayed, so only requests
// whose repetition does no harm (reads) should rely on this scheme alone.
package reqsign

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mr-tron/base58"
)

// Domain is the tag that starts every signed message; it keeps these
// signatures apart from every other message a developer key signs.
const Domain = "mu-request-v1:"

// The HTTP headers of a signed request.
const (
	// HeaderPublicKey: the signer's 32-byte ed25519 public key, base58.
	HeaderPublicKey = "Mu-Public-Key"
	// HeaderTimestamp: the signing time, decimal Unix seconds.
	HeaderTimestamp = "Mu-Timestamp"
	// HeaderSignature: the 64-byte ed25519 signature, base58.
	HeaderSignature = "Mu-Signature"
)

// The ways a request's signature is refused; Verify's errors wrap one of
// them (match with errors.Is) and say what was wrong.
var (
	// ErrMissing: none, or not all, of the three headers are there.
	ErrMissing = errors.New("request signature headers missing")
	// ErrBadKey: Mu-Public-Key is not base58 of 32 bytes.
	ErrBadKey = errors.New("request public key is malformed")
	// ErrBadSignature: Mu-Signature is malformed or does not verify for
	// the key over the method, request-URI and timestamp.
	ErrBadSignature = errors.New("request signature does not verify")
	// ErrStale: Mu-Timestamp is not decimal seconds, or is outside the
	// allowed skew of the verifier's clock.
	ErrStale = errors.New("request signing time outside the allowed skew")
)

// Message is what is signed for a request of method to requestURI at
// signedAt (Unix seconds).
func Message(method, requestURI string, signedAt int64) []byte {
	m := make([]byte, 0, len(Domain)+len(method)+1+len(requestURI)+1+8)
	m = append(m, Domain...)
	m = append(m, method...)
	m = append(m, '\n')
	m = append(m, requestURI...)
	m = append(m, '\n')
	return binary.BigEndian.AppendUint64(m, uint64(signedAt))
}

// RequestURI is the request-URI of u as the scheme signs it: the escaped
// path ("/" when empty), then "?" and the raw query when there is one.
func RequestURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		return p + "?" + u.RawQuery
	}
	return p
}

// Sign returns the three headers that authenticate a request of method to
// requestURI (see RequestURI), signed with priv at now (to the second).
func Sign(priv ed25519.PrivateKey, method, requestURI string, now time.Time) http.Header {
	ts := now.Unix()
	h := make(http.Header, 3)
	h.Set(HeaderPublicKey, base58.Encode(priv.Public().(ed25519.PublicKey)))
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, base58.Encode(ed25519.Sign(priv, Message(method, requestURI, ts))))
	return h
}

// SignRequest sets the signature headers of r, signed with priv at now,
// over r.Method and RequestURI(r.URL). Call it last: a later change of the
// method or URL breaks the signature.
func SignRequest(r *http.Request, priv ed25519.PrivateKey, now time.Time) {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	for k, v := range Sign(priv, method, RequestURI(r.URL), now) {
		r.Header[k] = v
	}
}

// Verify checks the signature headers of a received request against
// r.Method and RequestURI(r.URL), and the signing time against now within
// maxSkew either way. It returns the signer's key; what it proves is that
// the holder of that key signed this method and request-URI within the
// skew, not who the key belongs to: the caller compares it with the key it
// expects. Errors wrap ErrMissing, ErrBadKey, ErrBadSignature or ErrStale.
// It never panics on malformed headers and does not read the body.
func Verify(r *http.Request, now time.Time, maxSkew time.Duration) (ed25519.PublicKey, error) {
	var missing []string
	vals := [3]string{}
	for i, k := range [3]string{HeaderPublicKey, HeaderTimestamp, HeaderSignature} {
		if vals[i] = r.Header.Get(k); vals[i] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrMissing, strings.Join(missing, ", "))
	}
	pub, err := base58.Decode(vals[0])
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %s must be base58 of a %d-byte ed25519 key", ErrBadKey, HeaderPublicKey, ed25519.PublicKeySize)
	}
	ts, err := strconv.ParseInt(vals[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s must be decimal Unix seconds", ErrStale, HeaderTimestamp)
	}
	sig, err := base58.Decode(vals[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %s must be base58 of a %d-byte ed25519 signature", ErrBadSignature, HeaderSignature, ed25519.SignatureSize)
	}
	uri := RequestURI(r.URL)
	if !ed25519.Verify(pub, Message(r.Method, uri, ts), sig) {
		return nil, fmt.Errorf("%w for key %s over %s %s at %d", ErrBadSignature, base58.Encode(pub), r.Method, uri, ts)
	}
	// Compared in whole seconds against bounds around now, so that no
	// timestamp, however far off, overflows the arithmetic.
	nowS, skew := now.Unix(), int64(maxSkew/time.Second)
	if ts < nowS-skew || ts > nowS+skew {
		return nil, fmt.Errorf("%w: signed at %s, the server's clock says %s, allowed %s either way", ErrStale,
			strconv.FormatInt(ts, 10), strconv.FormatInt(nowS, 10), maxSkew)
	}
	return ed25519.PublicKey(pub), nil
}
