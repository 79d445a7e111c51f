package reqsign_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/mr-tron/base58"

	"github.com/muprotocol/mu/libs/reqsign"
)

var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

const skew = 5 * time.Minute

// received is the request a server sees for a client request to target
// carrying h.
func received(method, target string, h http.Header) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range h {
		r.Header[k] = v
	}
	return r
}

func TestVerify_AcceptsWhatSignRequestSigned(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, target := range []string{
		"http://gw/_mu/stacks/abc/logs?function=api.get&tail=10&follow=1",
		"http://gw/_mu/stacks/abc/logs",
		"http://gw/a%2Fb/c%20d?q=%zz",
		"http://gw",
	} {
		creq, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		reqsign.SignRequest(creq, testKey, now)
		// What the server parses from the request line the client writes.
		r := received(http.MethodGet, creq.URL.RequestURI(), creq.Header)
		pub, err := reqsign.Verify(r, now.Add(skew), skew)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if !pub.Equal(testKey.Public()) {
			t.Fatalf("%s: key %x", target, pub)
		}
	}
}

func TestVerify_RefusesEachWayWithItsError(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	const uri = "/_mu/stacks/abc/logs?tail=5"
	good := reqsign.Sign(testKey, "GET", uri, now)
	with := func(k, v string) http.Header {
		h := good.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	cases := []struct {
		name   string
		method string
		uri    string
		h      http.Header
		now    time.Time
		want   error
	}{
		{"no headers", "GET", uri, http.Header{}, now, reqsign.ErrMissing},
		{"no signature", "GET", uri, with(reqsign.HeaderSignature, ""), now, reqsign.ErrMissing},
		{"key not base58", "GET", uri, with(reqsign.HeaderPublicKey, "0OIl"), now, reqsign.ErrBadKey},
		{"key too short", "GET", uri, with(reqsign.HeaderPublicKey, base58.Encode([]byte{1, 2, 3})), now, reqsign.ErrBadKey},
		{"timestamp not decimal", "GET", uri, with(reqsign.HeaderTimestamp, "soon"), now, reqsign.ErrStale},
		{"signature not base58", "GET", uri, with(reqsign.HeaderSignature, "0OIl"), now, reqsign.ErrBadSignature},
		{"other query", "GET", "/_mu/stacks/abc/logs?tail=500", good, now, reqsign.ErrBadSignature},
		{"other method", "POST", uri, good, now, reqsign.ErrBadSignature},
		{"other timestamp", "GET", uri, with(reqsign.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10)), now, reqsign.ErrBadSignature},
		{"too old", "GET", uri, good, now.Add(skew + time.Second), reqsign.ErrStale},
		{"from the future", "GET", uri, good, now.Add(-skew - time.Second), reqsign.ErrStale},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := reqsign.Verify(received(c.method, c.uri, c.h), c.now, skew)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerify_FarTimestampsAreStaleNotOverflows(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, ts := range []int64{-1 << 63, 1<<63 - 1} {
		msg := reqsign.Message("GET", "/", ts)
		h := http.Header{}
		h.Set(reqsign.HeaderPublicKey, base58.Encode(testKey.Public().(ed25519.PublicKey)))
		h.Set(reqsign.HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(reqsign.HeaderSignature, base58.Encode(ed25519.Sign(testKey, msg)))
		if _, err := reqsign.Verify(received("GET", "/", h), now, skew); !errors.Is(err, reqsign.ErrStale) {
			t.Fatalf("ts %d: %v", ts, err)
		}
	}
}

func TestRequestURI_EscapedPathAndRawQuery(t *testing.T) {
	for in, want := range map[string]string{
		"http://h/a%2Fb?x=1&y": "/a%2Fb?x=1&y",
		"http://h/a b":         "/a%20b",
		"http://h":             "/",
		"http://h/p?":          "/p",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := reqsign.RequestURI(u); got != want {
			t.Errorf("RequestURI(%s) = %q, want %q", in, got, want)
		}
	}
}

func ExampleSignRequest() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:12080/_mu/stacks/STACK/logs?tail=20", nil)
	reqsign.SignRequest(req, priv, time.Unix(1_700_000_000, 0))
	fmt.Println(req.Header.Get(reqsign.HeaderTimestamp))
	fmt.Println(string(reqsign.Message(req.Method, reqsign.RequestURI(req.URL), 1_700_000_000)[:len(reqsign.Domain)+4]))
	// Output:
	// 1700000000
	// mu-request-v1:GET
}
