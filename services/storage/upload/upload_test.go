package upload

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
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
