package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	"github.com/muprotocol/mu/services/storage/upload"
)

func httpDo(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func httpGet(t *testing.T, url string, hdr map[string]string) (int, string) {
	t.Helper()
	resp, body := httpDo(t, "GET", url, nil, hdr)
	return resp.StatusCode, body
}

func postBinary(t *testing.T, e *env, body []byte, h http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+e.srv.HTTPAddr()+upload.Path, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTP_BinaryUploadSignatures(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		cfg := testConfig(t, s3)
		cfg.MaxBinaryBytes = 1 << 20
		e := start(t, cfg, nil)
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
		wasm := append([]byte("\x00asm\x01\x00\x00\x00"), randomBytes(3000)...)

		cl := &upload.Client{BaseURL: "http://" + e.srv.HTTPAddr(), Now: e.clock.Now}
		res, err := cl.Upload(context.Background(), priv, wasm)
		if err != nil || res.AlreadyExisted || res.Size != uint64(len(wasm)) || res.BinaryID != upload.ID(sha(wasm)) {
			t.Fatalf("upload %+v %v", res, err)
		}
		again, err := cl.Upload(context.Background(), otherPriv, wasm)
		if err != nil || !again.AlreadyExisted || again.BinaryID != res.BinaryID {
			t.Fatalf("second upload %+v %v", again, err)
		}

		now := e.clock.Now()
		bad := upload.SignHeaders(priv, wasm, now)
		bad.Set(upload.HeaderPublicKey, upload.SignHeaders(otherPriv, wasm, now).Get(upload.HeaderPublicKey))
		stale := upload.SignHeaders(priv, wasm, now.Add(-6*time.Minute))
		future := upload.SignHeaders(priv, wasm, now.Add(6*time.Minute))
		altered := append([]byte(nil), wasm...)
		altered[100] ^= 1
		malformed := upload.SignHeaders(priv, wasm, now)
		malformed.Set(upload.HeaderPublicKey, "0OIl")
		for _, c := range []struct {
			name string
			body []byte
			h    http.Header
			code int
			msg  string
		}{
			{"wrong key", wasm, bad, 401, "signature does not verify"},
			{"malformed key", wasm, malformed, 401, "public key is malformed"},
			{"stale", wasm, stale, 401, "outside the allowed skew"},
			{"future", wasm, future, 401, "outside the allowed skew"},
			{"altered body", altered, upload.SignHeaders(priv, wasm, now), 401, "does not match the signed SHA-256"},
			{"no headers", wasm, http.Header{}, 401, "signature headers missing"},
			{"too large", make([]byte, 1<<20+1), upload.SignHeaders(priv, make([]byte, 1<<20+1), now), 413, "over the limit of 1048576"},
		} {
			code, body := postBinary(t, e, c.body, c.h)
			if code != c.code || !strings.Contains(body, c.msg) {
				t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.code, c.msg)
			}
		}
		// The altered body stored nothing under either id.
		st, err := e.cli.GetBinary(context.Background(), &storagev1.GetBinaryRequest{BinaryId: upload.ID(sha(altered))})
		if err == nil {
			_, err = st.Recv()
		}
		wantCode(t, err, 5 /* NotFound */, "not found")

		st, err = e.cli.GetBinary(context.Background(), &storagev1.GetBinaryRequest{BinaryId: res.BinaryID})
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		var info *storagev1.BinaryInfo
		for {
			m, err := st.Recv()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			if i := m.GetInfo(); i != nil {
				info = i
			}
			got.Write(m.GetChunk())
		}
		d := sha(wasm)
		if !bytes.Equal(got.Bytes(), wasm) || !bytes.Equal(info.GetUploaderPublicKey(), pub) || !bytes.Equal(info.GetSha256(), d[:]) {
			t.Fatalf("GetBinary: %d bytes, info %v", got.Len(), info)
		}
	})
}

func TestGRPC_UploadBinaryVerifiesSignatureAndBody(t *testing.T) {
	e := start(t, testConfig(t, false), nil)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	wasm := randomBytes(5000)
	send := func(body []byte, signedAt time.Time, digest [32]byte) (*storagev1.UploadBinaryResponse, error) {
		st, err := e.cli.UploadBinary(context.Background())
		if err != nil {
			return nil, err
		}
		ts := signedAt.Unix()
		st.Send(&storagev1.UploadBinaryRequest{Payload: &storagev1.UploadBinaryRequest_Header{Header: &storagev1.UploadBinaryHeader{
			DeveloperPublicKey: priv.Public().(ed25519.PublicKey), Signature: upload.Sign(priv, digest, ts), SignedAtUnix: ts, Sha256: digest[:]}}})
		st.Send(&storagev1.UploadBinaryRequest{Payload: &storagev1.UploadBinaryRequest_Chunk{Chunk: body}})
		return st.CloseAndRecv()
	}
	now := e.clock.Now()
	r, err := send(wasm, now, sha(wasm))
	if err != nil || r.GetAlreadyExisted() || r.GetBinary().GetBinaryId() != upload.ID(sha(wasm)) {
		t.Fatalf("%v %v", r, err)
	}
	_, err = send(wasm, now.Add(-time.Hour), sha(wasm))
	wantCode(t, err, 16, "skew")
	_, err = send(randomBytes(10), now, sha(wasm))
	wantCode(t, err, 16, "does not match")
}

func TestHTTP_PublicAndPrivateBoxes(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		e := start(t, testConfig(t, s3), nil)
		stack := newStack(t)
		e.createBox(stack, "pub", true)
		e.createBox(stack, "priv", false)
		info := e.mustPut(stack, "pub", "img/cat.txt", "text/plain; charset=utf-8", "0123456789")
		e.mustPut(stack, "priv", "img/cat.txt", "text/plain", "secret")
		base := "http://" + e.srv.HTTPAddr() + "/" + stack.String()

		resp, body := httpDo(t, "GET", base+"/pub/img/cat.txt", nil, nil)
		if resp.StatusCode != 200 || body != "0123456789" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
			resp.Header.Get("ETag") != `"`+info.GetEtag()+`"` || resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Fatalf("public read: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		resp, _ = httpDo(t, "GET", base+"/pub/img/cat.txt", nil, map[string]string{"If-None-Match": `"` + info.GetEtag() + `"`})
		if resp.StatusCode != 304 {
			t.Fatalf("If-None-Match: %d", resp.StatusCode)
		}
		for rng, want := range map[string]string{"bytes=2-4": "234", "bytes=7-": "789", "bytes=-3": "789", "bytes=5-100": "56789"} {
			resp, body := httpDo(t, "GET", base+"/pub/img/cat.txt", nil, map[string]string{"Range": rng})
			if resp.StatusCode != 206 || body != want || !strings.HasSuffix(resp.Header.Get("Content-Range"), "/10") {
				t.Errorf("Range %s: %d %q %q", rng, resp.StatusCode, body, resp.Header.Get("Content-Range"))
			}
		}
		resp, _ = httpDo(t, "GET", base+"/pub/img/cat.txt", nil, map[string]string{"Range": "bytes=10-"})
		if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */10" {
			t.Fatalf("unsatisfiable range: %d %v", resp.StatusCode, resp.Header)
		}
		resp, body = httpDo(t, "HEAD", base+"/pub/img/cat.txt", nil, nil)
		if resp.StatusCode != 200 || body != "" || resp.ContentLength != 10 {
			t.Fatalf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
		}
		for _, u := range []string{base + "/priv/img/cat.txt", base + "/pub/missing", base + "/nobox/x",
			"http://" + e.srv.HTTPAddr() + "/" + newStack(t).String() + "/pub/img/cat.txt", "http://" + e.srv.HTTPAddr() + "/notastack/pub/x"} {
			if code, body := httpGet(t, u, nil); code != 404 || strings.Contains(body, "secret") {
				t.Errorf("%s: %d %q, want 404", u, code, body)
			}
		}
		// Turning the box private hides it at once (no cache in tests).
		e.createBox(stack, "pub", false)
		if code, _ := httpGet(t, base+"/pub/img/cat.txt", nil); code != 404 {
			t.Fatalf("after making it private: %d", code)
		}
	})
}

func TestHTTP_SignedURLs(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		e := start(t, testConfig(t, s3), nil)
		stack := newStack(t)
		e.createBox(stack, "up", false)
		sign := func(method storagev1.SignURLMethod, key string, maxBytes uint64, ct string) string {
			t.Helper()
			r, err := e.cli.SignURL(context.Background(), &storagev1.SignURLRequest{StackId: stack.Bytes(), Box: "up", Key: key,
				Method: method, ExpiresInSeconds: 60, MaxBytes: maxBytes, ContentType: ct})
			if err != nil {
				t.Fatal(err)
			}
			if !r.GetExpiresAt().AsTime().Equal(e.clock.Now().Add(time.Minute)) {
				t.Fatalf("expires_at %v", r.GetExpiresAt().AsTime())
			}
			return r.GetUrl()
		}
		put := sign(storagev1.SignURLMethod_SIGN_URL_METHOD_PUT, "photos/me & you?.jpg", 100, "image/jpeg")
		resp, body := httpDo(t, "PUT", put, strings.NewReader("jpegbytes"), map[string]string{"Content-Type": "text/html"})
		if resp.StatusCode != 200 || !strings.Contains(body, `"size":9`) {
			t.Fatalf("signed PUT: %d %q", resp.StatusCode, body)
		}
		get := sign(storagev1.SignURLMethod_SIGN_URL_METHOD_GET, "photos/me & you?.jpg", 0, "")
		resp, body = httpDo(t, "GET", get, nil, nil)
		if resp.StatusCode != 200 || body != "jpegbytes" || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("signed GET: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		resp, body = httpDo(t, "GET", get, nil, map[string]string{"Range": "bytes=0-3"})
		if resp.StatusCode != 206 || body != "jpeg" {
			t.Fatalf("signed ranged GET: %d %q", resp.StatusCode, body)
		}
		var m map[string]any
		json.Unmarshal([]byte(`{}`), &m)

		resp, body = httpDo(t, "PUT", put, bytes.NewReader(make([]byte, 101)), nil)
		if resp.StatusCode != 413 || !strings.Contains(body, "over the limit of 100") {
			t.Fatalf("over-size PUT: %d %q", resp.StatusCode, body)
		}
		// A chunked body (no Content-Length) is cut at the limit too.
		resp, body = httpDo(t, "PUT", put, io.MultiReader(strings.NewReader(strings.Repeat("x", 150))), nil)
		if resp.StatusCode != 413 {
			t.Fatalf("over-size chunked PUT: %d %q", resp.StatusCode, body)
		}
		for name, u := range map[string]string{
			"other key":      strings.Replace(get, "photos/", "photoz/", 1),
			"longer expiry":  strings.Replace(get, "exp=", "exp=9", 1),
			"bigger max":     strings.Replace(put, "max=100", "max=1000", 1),
			"PUT URL as GET": strings.Replace(put, "m=PUT", "m=GET", 1),
			"no signature":   get[:strings.Index(get, "&sig=")],
		} {
			method := "GET"
			if name == "bigger max" {
				method = "PUT"
			}
			resp, body := httpDo(t, method, u, strings.NewReader("x"), nil)
			if resp.StatusCode != 403 || !strings.Contains(body, "altered") {
				t.Errorf("%s: %d %q, want 403 altered", name, resp.StatusCode, body)
			}
		}
		resp, body = httpDo(t, "PUT", get, strings.NewReader("x"), nil)
		if resp.StatusCode != 403 || !strings.Contains(body, "signed for GET, used with PUT") {
			t.Fatalf("GET URL used to PUT: %d %q", resp.StatusCode, body)
		}
		e.clock.Advance(61 * time.Second)
		resp, body = httpDo(t, "GET", get, nil, nil)
		if resp.StatusCode != 403 || !strings.Contains(body, "expired") {
			t.Fatalf("expired GET: %d %q", resp.StatusCode, body)
		}
		resp, body = httpDo(t, "PUT", put, strings.NewReader("late"), nil)
		if resp.StatusCode != 403 || !strings.Contains(body, "expired") {
			t.Fatalf("expired PUT: %d %q", resp.StatusCode, body)
		}
		_, err := e.cli.SignURL(context.Background(), &storagev1.SignURLRequest{StackId: stack.Bytes(), Box: "nobox", Key: "k",
			Method: storagev1.SignURLMethod_SIGN_URL_METHOD_GET})
		wantCode(t, err, 5, "does not exist")
	})
}

func TestHTTP_CORSForPublicReadsAndSignedURLs(t *testing.T) {
	e := start(t, testConfig(t, false), nil)
	stack := newStack(t)
	e.createBox(stack, "pub", true)
	e.createBox(stack, "up", false)
	e.mustPut(stack, "pub", "a.txt", "text/plain", "hello")
	base := "http://" + e.srv.HTTPAddr()
	public := base + "/" + stack.String() + "/pub/a.txt"
	r, err := e.cli.SignURL(context.Background(), &storagev1.SignURLRequest{StackId: stack.Bytes(), Box: "up", Key: "in/b.bin",
		Method: storagev1.SignURLMethod_SIGN_URL_METHOD_PUT, ExpiresInSeconds: 60, MaxBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	signedPut := r.GetUrl()
	origin := map[string]string{"Origin": "https://app.example.com"}

	for _, c := range []struct {
		name, url, methods string
	}{
		{"signed", signedPut, "GET, HEAD, PUT"},
		{"public", public, "GET, HEAD"},
		{"public, private box", base + "/" + stack.String() + "/up/in/b.bin", "GET, HEAD"},
	} {
		resp, body := httpDo(t, "OPTIONS", c.url, nil, map[string]string{"Origin": "https://app.example.com",
			"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"})
		h := resp.Header
		if resp.StatusCode != 204 || body != "" || h.Get("Access-Control-Allow-Origin") != "*" ||
			h.Get("Access-Control-Allow-Methods") != c.methods || h.Get("Access-Control-Allow-Headers") != "Content-Type, Range, If-None-Match" ||
			h.Get("Access-Control-Max-Age") == "" || h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s preflight: %d %q %v", c.name, resp.StatusCode, body, h)
		}
	}

	exposed := func(name string, resp *http.Response) {
		t.Helper()
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Expose-Headers") != "ETag, Content-Length, Content-Range" {
			t.Errorf("%s: %d without the CORS headers: %v", name, resp.StatusCode, resp.Header)
		}
	}
	resp, body := httpDo(t, "GET", public, nil, origin)
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("public GET: %d %q", resp.StatusCode, body)
	}
	exposed("public GET", resp)
	resp, _ = httpDo(t, "GET", public, nil, map[string]string{"Origin": "https://app.example.com", "Range": "bytes=1-2"})
	exposed("public ranged GET", resp)
	resp, _ = httpDo(t, "HEAD", public, nil, origin)
	exposed("public HEAD", resp)
	resp, _ = httpDo(t, "GET", base+"/"+stack.String()+"/up/in/b.bin", nil, origin)
	if resp.StatusCode != 404 {
		t.Fatalf("private box on the public path: %d", resp.StatusCode)
	}
	exposed("public 404", resp) // so the page can read why

	resp, body = httpDo(t, "PUT", signedPut, strings.NewReader("0123456789"), map[string]string{"Origin": "https://app.example.com", "Content-Type": "application/octet-stream"})
	if resp.StatusCode != 200 {
		t.Fatalf("signed PUT: %d %q", resp.StatusCode, body)
	}
	exposed("signed PUT", resp)
	resp, _ = httpDo(t, "PUT", signedPut, strings.NewReader("0123456789x"), origin)
	if resp.StatusCode != 413 {
		t.Fatalf("over-size signed PUT: %d", resp.StatusCode)
	}
	exposed("signed 413", resp)
	resp, _ = httpDo(t, "PUT", strings.Replace(signedPut, "max=10", "max=99", 1), strings.NewReader("x"), origin)
	if resp.StatusCode != 403 {
		t.Fatalf("altered signed PUT: %d", resp.StatusCode)
	}
	exposed("signed 403", resp)

	// Binary uploads take no cross-origin requests.
	for _, method := range []string{"OPTIONS", "POST"} {
		resp, _ := httpDo(t, method, base+upload.Path, strings.NewReader("x"), map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
		if resp.StatusCode/100 == 2 || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("%s %s: %d %v, want no CORS answer", method, upload.Path, resp.StatusCode, resp.Header)
		}
	}
}
