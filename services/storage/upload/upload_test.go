package upload

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mr-tron/base58"
)

func TestVerifyHeaders_AcceptsItsOwnSignatureOnly(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	body := []byte("\x00asm")
	now := time.Unix(1_800_000_000, 0)
	h := SignHeaders(priv, body, now)
	s, err := VerifyHeaders(h, now.Add(time.Minute), 5*time.Minute)
	if err != nil || s.Digest != sha256.Sum256(body) || s.SignedAt != now.Unix() {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := VerifyHeaders(h, now.Add(6*time.Minute), 5*time.Minute); !errors.Is(err, ErrStale) {
		t.Fatalf("stale: %v", err)
	}
	for header, want := range map[string]error{HeaderTimestamp: ErrBadSignature, HeaderSHA256: ErrBadSignature, HeaderSignature: ErrBadSignature} {
		c := h.Clone()
		v := []byte(c.Get(header))
		v[len(v)-1] ^= 1
		if v[len(v)-1] == '0'^1 {
			v[len(v)-1] = '1'
		}
		c.Set(header, string(v))
		if _, err := VerifyHeaders(c, now, 5*time.Minute); !errors.Is(err, want) {
			t.Errorf("altered %s: %v", header, err)
		}
	}
	if ID(sha256.Sum256(nil)) != "GKot5hBsd81kMupNCXHaqbhv3huEbxAFMLnpcX2hniwn" {
		t.Fatal("content id is not ids.BinaryID's form")
	}
}

func TestClient_ProgressSeesEveryByteInOrder(t *testing.T) {
	body := bytes.Repeat([]byte("wasm"), 300_000) // 1.2 MB: several reads
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.ContentLength != int64(len(body)) || len(b) != len(body) {
			http.Error(w, "short body", http.StatusBadRequest)
			return
		}
		d := sha256.Sum256(b)
		json.NewEncoder(w).Encode(Result{BinaryID: ID(d), Size: uint64(len(b))})
	}))
	defer srv.Close()
	_, priv, _ := ed25519.GenerateKey(nil)
	var calls []int64
	c := Client{BaseURL: srv.URL, Progress: func(sent, total int64) {
		if total != int64(len(body)) {
			t.Errorf("total %d, want %d", total, len(body))
		}
		calls = append(calls, sent)
	}}
	res, err := c.Upload(context.Background(), priv, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != uint64(len(body)) {
		t.Fatalf("result %+v", res)
	}
	if len(calls) < 2 || calls[len(calls)-1] != int64(len(body)) {
		t.Fatalf("progress calls %v, want several ending at %d", calls, len(body))
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] <= calls[i-1] {
			t.Fatalf("progress went from %d to %d", calls[i-1], calls[i])
		}
	}
}

// FuzzVerifyHeaders feeds arbitrary signature headers of an upload (what
// any client can send) to VerifyHeaders: it never panics, and whatever it
// accepts is a signature that verifies.
func FuzzVerifyHeaders(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	good := SignHeaders(priv, []byte("wasm"), now)
	f.Add(good.Get(HeaderPublicKey), good.Get(HeaderSHA256), good.Get(HeaderTimestamp), good.Get(HeaderSignature))
	f.Add("", "", "", "")
	f.Add("1111", "zz", "-1", "1")
	f.Add(good.Get(HeaderPublicKey), good.Get(HeaderSHA256), "99999999999999999999", good.Get(HeaderSignature))
	f.Fuzz(func(t *testing.T, key, sum, ts, sig string) {
		h := http.Header{}
		for k, v := range map[string]string{HeaderPublicKey: key, HeaderSHA256: sum, HeaderTimestamp: ts, HeaderSignature: sig} {
			if v != "" {
				h.Set(k, v)
			}
		}
		s, err := VerifyHeaders(h, now, 5*time.Minute)
		if err != nil {
			return
		}
		if !ed25519.Verify(s.PublicKey, Message(s.Digest, s.SignedAt), mustDecodeSig(t, sig)) {
			t.Fatalf("accepted headers whose signature does not verify: %v", h)
		}
	})
}

func mustDecodeSig(t *testing.T, s string) []byte {
	b, err := base58.Decode(s)
	if err != nil {
		t.Fatalf("accepted a signature that is not base58: %q", s)
	}
	return b
}
