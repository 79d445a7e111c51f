// Package upload is the signing scheme of function binary uploads to the
// storage service, shared by the service (which verifies) and the CLI (which
// signs and uploads). It depends on the standard library and base58 only.
//
// Scheme: the developer signs, with ed25519,
//
//	"mu-binary-upload-v1:" || sha256(binary) || be64(signed_at Unix seconds)
//
// The HTTP API (POST /binaries) carries it in headers, the gRPC API
// (UploadBinary) in UploadBinaryHeader; the service refuses a signing time
// more than its upload_max_skew (default 5 minutes) away from its clock. The
// binary's content id is base58 (Bitcoin alphabet) of its SHA-256, the value
// of a manifest function's `binary` field.
package upload

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mr-tron/base58"
)

// Domain is the tag that starts every signed message.
const Domain = "mu-binary-upload-v1:"

// The HTTP headers of a signed upload.
const (
	// HeaderPublicKey: the uploader's 32-byte ed25519 public key, base58.
	HeaderPublicKey = "Mu-Public-Key"
	// HeaderSHA256: the SHA-256 of the body as signed, lower-case hex.
	HeaderSHA256 = "Mu-Content-Sha256"
	// HeaderTimestamp: the signing time, decimal Unix seconds.
	HeaderTimestamp = "Mu-Timestamp"
	// HeaderSignature: the 64-byte ed25519 signature, base58.
	HeaderSignature = "Mu-Signature"
)

// Path is the route of binary uploads on the storage HTTP API.
const Path = "/binaries"

// The ways a signature is refused; Verify wraps one of them.
var (
	ErrMissing      = errors.New("signature headers missing")
	ErrBadKey       = errors.New("public key is malformed")
	ErrBadSignature = errors.New("signature does not verify")
	ErrStale        = errors.New("signing time outside the allowed skew")
	ErrBodyMismatch = errors.New("body does not match the signed SHA-256")
)

// Message is what is signed for a binary with SHA-256 digest at signedAt.
func Message(digest [32]byte, signedAt int64) []byte {
	m := make([]byte, 0, len(Domain)+32+8)
	m = append(m, Domain...)
	m = append(m, digest[:]...)
	return binary.BigEndian.AppendUint64(m, uint64(signedAt))
}

// Sign signs digest at signedAt (Unix seconds).
func Sign(priv ed25519.PrivateKey, digest [32]byte, signedAt int64) []byte {
	return ed25519.Sign(priv, Message(digest, signedAt))
}

// ID is the content id of a binary with SHA-256 digest.
func ID(digest [32]byte) string { return base58.Encode(digest[:]) }

// SignHeaders returns the headers that authenticate uploading body, signed
// now with priv.
func SignHeaders(priv ed25519.PrivateKey, body []byte, now time.Time) http.Header {
	digest := sha256.Sum256(body)
	ts := now.Unix()
	h := make(http.Header)
	h.Set(HeaderPublicKey, base58.Encode(priv.Public().(ed25519.PublicKey)))
	h.Set(HeaderSHA256, fmt.Sprintf("%x", digest))
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, base58.Encode(Sign(priv, digest, ts)))
	return h
}

// Signed is a parsed, verified upload authorisation.
type Signed struct {
	PublicKey ed25519.PublicKey
	Digest    [32]byte
	SignedAt  int64
}

// Verify checks sig by pub over digest at signedAt, against now and skew.
// Errors wrap ErrBadKey, ErrBadSignature or ErrStale and say what was wrong.
func Verify(pub, sig []byte, digest [32]byte, signedAt int64, now time.Time, skew time.Duration) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadKey, len(pub), ed25519.PublicKeySize)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, Message(digest, signedAt), sig) {
		return fmt.Errorf("%w for key %s over the given SHA-256 and timestamp", ErrBadSignature, base58.Encode(pub))
	}
	if d := now.Sub(time.Unix(signedAt, 0)); d > skew || d < -skew {
		return fmt.Errorf("%w: signed at %s, %s from the server's clock, allowed %s", ErrStale,
			time.Unix(signedAt, 0).UTC().Format(time.RFC3339), d.Round(time.Second), skew)
	}
	return nil
}

// VerifyHeaders parses the signature headers and verifies them (not the
// body: the caller hashes it and compares with Signed.Digest).
func VerifyHeaders(h http.Header, now time.Time, skew time.Duration) (Signed, error) {
	var s Signed
	var missing []string
	for _, k := range []string{HeaderPublicKey, HeaderSHA256, HeaderTimestamp, HeaderSignature} {
		if h.Get(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return s, fmt.Errorf("%w: %s", ErrMissing, strings.Join(missing, ", "))
	}
	pub, err := base58.Decode(h.Get(HeaderPublicKey))
	if err != nil {
		return s, fmt.Errorf("%w: %s is not base58", ErrBadKey, HeaderPublicKey)
	}
	var digest [32]byte
	if d := h.Get(HeaderSHA256); len(d) != 64 || !isHex(d) {
		return s, fmt.Errorf("%w: %s must be 64 hex digits", ErrBadSignature, HeaderSHA256)
	} else {
		for i := range digest {
			v, _ := strconv.ParseUint(d[2*i:2*i+2], 16, 8)
			digest[i] = byte(v)
		}
	}
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return s, fmt.Errorf("%w: %s must be decimal Unix seconds", ErrStale, HeaderTimestamp)
	}
	sig, err := base58.Decode(h.Get(HeaderSignature))
	if err != nil {
		return s, fmt.Errorf("%w: %s is not base58", ErrBadSignature, HeaderSignature)
	}
	if err := Verify(pub, sig, digest, ts, now, skew); err != nil {
		return s, err
	}
	return Signed{PublicKey: pub, Digest: digest, SignedAt: ts}, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Result is the storage service's answer to an upload (the JSON body of
// POST /binaries).
type Result struct {
	// BinaryID is the content id for manifests.
	BinaryID string `json:"binary_id"`
	Size     uint64 `json:"size"`
	// SHA256 is the hex SHA-256 of the bytes.
	SHA256 string `json:"sha256"`
	// AlreadyExisted is true when the same bytes were stored before.
	AlreadyExisted bool `json:"already_existed"`
}

// Client uploads binaries to a storage service's HTTP API.
type Client struct {
	// BaseURL is the service's HTTP API, such as http://127.0.0.1:12032.
	BaseURL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
	// Now is the clock for signing; nil means time.Now.
	Now func() time.Time
	// Progress, if set, is called as the body is sent with the bytes sent
	// so far and the total (from the goroutine sending the request; it
	// must not block).
	Progress func(sent, total int64)
}

// progressReader reports what has been read of a body.
type progressReader struct {
	r           io.Reader
	sent, total int64
	report      func(sent, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.sent += int64(n)
		p.report(p.sent, p.total)
	}
	return n, err
}

// Upload signs wasm with priv and uploads it; uploading the same bytes
// again is harmless (Result.AlreadyExisted). An error carries the
// service's status and message.
func (c *Client) Upload(ctx context.Context, priv ed25519.PrivateKey, wasm []byte) (Result, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	newBody := func() io.Reader {
		var r io.Reader = bytes.NewReader(wasm)
		if c.Progress != nil {
			r = &progressReader{r: r, total: int64(len(wasm)), report: c.Progress}
		}
		return r
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+Path, newBody())
	if err != nil {
		return Result{}, err
	}
	req.ContentLength = int64(len(wasm))
	// A redirect (307/308) sends the body again from the start.
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(newBody()), nil }
	for k, v := range SignHeaders(priv, wasm, now()) {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/wasm")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("upload binary: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Result{}, fmt.Errorf("upload binary: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return Result{}, fmt.Errorf("upload binary: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var r Result
	if err := json.Unmarshal(body, &r); err != nil {
		return Result{}, fmt.Errorf("upload binary: bad answer: %w", err)
	}
	return r, nil
}
