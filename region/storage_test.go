package region

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
)

// The storage guarantees end to end: a real function (testdata/boxprobe) →
// the gateway → the runtime → the storage service on its local directory
// backend, and the storage HTTP API read and written directly, as browsers
// do with public boxes and signed URLs.

type boxApp struct {
	probe
	r     *Region
	stack ids.StackID
}

func startStorageRegion(t *testing.T) *Region {
	t.Helper()
	return startRegion(t, Options{Storage: &StorageOptions{}})
}

func deployBoxProbe(t *testing.T, r *Region, id ids.StackID) boxApp {
	t.Helper()
	m, bins := stackFromDir(t, "testdata/boxprobe")
	if err := r.Deploy(context.Background(), id, 1, m, bins); err != nil {
		t.Fatal(err)
	}
	return boxApp{probe: probe{t: t, base: "http://" + r.Gateway().Addr() + "/" + id.String() + "/api"}, r: r, stack: id}
}

func newBoxApp(t *testing.T) boxApp {
	t.Helper()
	id, _, _ := ids.NewStackID()
	return deployBoxProbe(t, startStorageRegion(t), id)
}

// publicURL is where the storage HTTP API serves key of the stack's box.
func (a boxApp) publicURL(box, key string) string {
	return a.r.Storage().URL() + "/" + a.stack.String() + "/" + box + "/" + key
}

func (a boxApp) put(box, key, ct, body string) objInfo {
	a.t.Helper()
	var o objInfo
	if err := json.Unmarshal([]byte(a.ok("POST", "/put", url.Values{"box": {box}, "key": {key}, "ct": {ct}}, body)), &o); err != nil {
		a.t.Fatal(err)
	}
	return o
}

func (a boxApp) sign(q url.Values) string {
	a.t.Helper()
	return a.ok("POST", "/sign", q, "")
}

func (a boxApp) storedBytes() int64 { return a.r.Storage().Server().StoredBytes(a.stack) }

type objInfo struct {
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	ETag        string `json:"etag"`
	ContentType string `json:"content_type"`
}

// do sends a request to an absolute URL with headers and returns the
// response (body read) and the body.
func do(t *testing.T, method, u string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
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

func TestStorage_PublicBoxServesObjectsWithCachingAndRanges(t *testing.T) {
	a := newBoxApp(t)
	o := a.put("pub", "img/cat.txt", "text/plain; charset=utf-8", "0123456789")
	a.put("files", "img/cat.txt", "text/plain", "secret")
	// PutReader's ObjectInfo carries no content type (the SDK's Commit
	// fills only key, size and etag); Stat has it.
	if o.Size != 10 || o.ETag == "" {
		t.Fatalf("put answered %+v", o)
	}
	o.ContentType = "text/plain; charset=utf-8"
	if s := a.ok("GET", "/stat", url.Values{"box": {"pub"}, "key": {"img/cat.txt"}}, ""); !jsonEqual(s, mustJSON(t, o)) {
		t.Fatalf("stat %s, want %+v", s, o)
	}

	u := a.publicURL("pub", "img/cat.txt")
	resp, body := do(t, "GET", u, nil, nil)
	if resp.StatusCode != 200 || body != "0123456789" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		resp.Header.Get("ETag") != `"`+o.ETag+`"` {
		t.Fatalf("public read: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, _ := do(t, "GET", u, nil, map[string]string{"If-None-Match": resp.Header.Get("ETag")}); resp.StatusCode != 304 {
		t.Fatalf("If-None-Match with the ETag: %d, want 304", resp.StatusCode)
	}
	resp, body = do(t, "GET", u, nil, map[string]string{"Range": "bytes=3-5"})
	if resp.StatusCode != 206 || body != "345" || resp.Header.Get("Content-Range") != "bytes 3-5/10" {
		t.Fatalf("Range: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	// The same key in the private box is invisible on the public path,
	// though the function reads it.
	if code, body := get(t, a.publicURL("files", "img/cat.txt")); code != 404 || strings.Contains(body, "secret") {
		t.Fatalf("private box on the public path: %d %q, want 404", code, body)
	}
	if got := a.ok("GET", "/get", url.Values{"key": {"img/cat.txt"}}, ""); got != "secret" {
		t.Fatalf("function read of the private object: %q", got)
	}
	// Replacing the object changes its ETag: the old one no longer matches.
	o2 := a.put("pub", "img/cat.txt", "text/plain; charset=utf-8", "meow")
	resp, body = do(t, "GET", u, nil, map[string]string{"If-None-Match": `"` + o.ETag + `"`})
	if o2.ETag == o.ETag || resp.StatusCode != 200 || body != "meow" {
		t.Fatalf("after replacing: etag %q→%q, %d %q", o.ETag, o2.ETag, resp.StatusCode, body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStorage_SignedGetURLMintedInTheFunction(t *testing.T) {
	a := newBoxApp(t)
	a.put("files", "docs/report.pdf", "application/pdf", "%PDF-report")
	signed := a.sign(url.Values{"key": {"docs/report.pdf"}, "method": {"GET"}, "exp": {"60"}})
	if !strings.HasPrefix(signed, a.r.Storage().URL()+"/signed/") {
		t.Fatalf("signed URL %q is not on the storage node %s", signed, a.r.Storage().URL())
	}
	resp, err := http.Get(signed)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "%PDF-report" || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("signed GET: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	i := strings.Index(signed, "sig=") + len("sig=")
	flip := func(s string, at int) string {
		c := byte('A')
		if s[at] == 'A' {
			c = 'B'
		}
		return s[:at] + string(c) + s[at+1:]
	}
	keyAt := strings.Index(signed, "report.pdf")
	for name, u := range map[string]string{
		"sig altered": flip(signed, i),
		"key altered": flip(signed, keyAt),
		"no sig":      signed[:i],
	} {
		if code, body := get(t, u); code != 403 || strings.Contains(body, "PDF") {
			t.Errorf("%s: %d %q, want 403", name, code, body)
		}
	}

	short := a.sign(url.Values{"key": {"docs/report.pdf"}, "method": {"GET"}, "exp": {"1"}})
	minted := time.Now()
	// exp is whole Unix seconds and a URL is good through its second.
	time.Sleep(time.Until(minted.Add(2100 * time.Millisecond)))
	if code, body := get(t, short); code != 403 || !strings.Contains(body, "expired") {
		t.Fatalf("expired signed GET: %d %q, want 403 expired", code, body)
	}
}

func TestStorage_SignedPutURLHonoursMaxBytes(t *testing.T) {
	a := newBoxApp(t)
	signed := a.sign(url.Values{"key": {"up/avatar.png"}, "method": {"PUT"}, "exp": {"60"}, "max": {"100"}})
	body := strings.Repeat("p", 100)
	resp, got := do(t, "PUT", signed, strings.NewReader(body), map[string]string{"Content-Type": "image/png"})
	if resp.StatusCode != 200 {
		t.Fatalf("signed PUT of 100 bytes: %d %q", resp.StatusCode, got)
	}
	if got := a.ok("GET", "/get", url.Values{"key": {"up/avatar.png"}}, ""); got != body {
		t.Fatalf("function read after the signed PUT: %q", got)
	}
	var o objInfo
	json.Unmarshal([]byte(a.ok("GET", "/stat", url.Values{"key": {"up/avatar.png"}}, "")), &o)
	if o.Size != 100 || o.ContentType != "image/png" {
		t.Fatalf("stat after the signed PUT: %+v", o)
	}
	for name, r := range map[string]io.Reader{
		"sized":   strings.NewReader(body + "x"),
		"chunked": io.MultiReader(strings.NewReader(body + "x")), // no Content-Length
	} {
		if resp, got := do(t, "PUT", signed, r, nil); resp.StatusCode != 413 {
			t.Errorf("%s signed PUT of 101 bytes: %d %q, want 413", name, resp.StatusCode, got)
		}
	}
	if got := a.ok("GET", "/get", url.Values{"key": {"up/avatar.png"}}, ""); got != body {
		t.Fatalf("a refused PUT replaced the object: %q", got)
	}
	if n := a.storedBytes(); n != 100 {
		t.Fatalf("stored bytes %d after refused PUTs, want 100", n)
	}
	// A GET URL does not upload.
	getURL := a.sign(url.Values{"key": {"up/avatar.png"}, "method": {"GET"}})
	if resp, got := do(t, "PUT", getURL, strings.NewReader("x"), nil); resp.StatusCode != 403 {
		t.Fatalf("PUT to a GET URL: %d %q, want 403", resp.StatusCode, got)
	}
}

func TestStorage_ListPagesAcrossMoreObjectsThanAPage(t *testing.T) {
	a := newBoxApp(t)
	a.ok("POST", "/fill", url.Values{"prefix": {"k"}, "n": {"25"}}, "")
	a.ok("POST", "/fill", url.Values{"prefix": {"other/"}, "n": {"3"}}, "")
	var keys []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("listing did not end")
		}
		var p struct {
			Keys []string
			Next string
		}
		if err := json.Unmarshal([]byte(a.ok("GET", "/list", url.Values{"prefix": {"k"}, "limit": {"10"}, "cursor": {cursor}}, "")), &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Keys) > 10 || (p.Next != "" && len(p.Keys) != 10) {
			t.Fatalf("page %d: %d keys with next %q, limit 10", pages, len(p.Keys), p.Next)
		}
		keys = append(keys, p.Keys...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("k%03d", i))
	}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("paged listing %v, want %v", keys, want)
	}
	var all struct{ Keys []string }
	json.Unmarshal([]byte(a.ok("GET", "/list", url.Values{"all": {"1"}}, "")), &all)
	if len(all.Keys) != 28 || all.Keys[25] != "other/000" {
		t.Fatalf("Objects over the whole box: %v", all.Keys)
	}
}

func TestStorage_StacksAreIsolated(t *testing.T) {
	r := startStorageRegion(t)
	one, _, _ := ids.NewStackID()
	two, _, _ := ids.NewStackID()
	a, b := deployBoxProbe(t, r, one), deployBoxProbe(t, r, two)
	a.put("files", "same", "", "from one")
	a.put("pub", "same", "", "public one")
	b.put("files", "same", "", "two")
	if got := a.ok("GET", "/get", url.Values{"key": {"same"}}, ""); got != "from one" {
		t.Fatalf("stack one reads %q", got)
	}
	if got := b.ok("GET", "/get", url.Values{"key": {"same"}}, ""); got != "two" {
		t.Fatalf("stack two reads %q", got)
	}
	if code, _ := b.call("GET", "/get", url.Values{"box": {"pub"}, "key": {"same"}}, ""); code != 404 {
		t.Fatalf("stack two sees stack one's public object: %d", code)
	}
	if code, _ := get(t, b.publicURL("pub", "same")); code != 404 {
		t.Fatalf("stack two's public path serves stack one's object: %d", code)
	}
	if code, body := get(t, a.publicURL("pub", "same")); code != 200 || body != "public one" {
		t.Fatalf("stack one's public path: %d %q", code, body)
	}
	var l struct{ Keys []string }
	json.Unmarshal([]byte(b.ok("GET", "/list", url.Values{"box": {"pub"}, "all": {"1"}}, "")), &l)
	if len(l.Keys) != 0 {
		t.Fatalf("stack two lists %v in its pub box", l.Keys)
	}
	// A signed URL of one stack does not reach the other's object.
	signed := b.sign(url.Values{"key": {"same"}, "method": {"GET"}})
	forged := strings.Replace(signed, two.String(), one.String(), 1)
	if code, body := get(t, forged); code != 403 || strings.Contains(body, "one") {
		t.Fatalf("stack two's URL pointed at stack one: %d %q", code, body)
	}
	if n1, n2 := a.storedBytes(), b.storedBytes(); n1 != int64(len("from one")+len("public one")) || n2 != 3 {
		t.Fatalf("stored bytes %d and %d", n1, n2)
	}
	if err := r.DeleteStack(context.Background(), two); err != nil {
		t.Fatal(err)
	}
	if got := a.ok("GET", "/get", url.Values{"key": {"same"}}, ""); got != "from one" {
		t.Fatalf("after deleting stack two, stack one reads %q", got)
	}
}

func TestStorage_StoredBytesAreExact(t *testing.T) {
	bothPaths(t, testStorageStoredBytesAreExact)
}

func testStorageStoredBytesAreExact(t *testing.T, p *path) {
	id, _, _ := ids.NewStackID()
	a := deployBoxProbe(t, p.start(t, Options{Storage: &StorageOptions{}}), id)
	steps := []struct {
		what string
		do   func()
		want int64
	}{
		{"deployed", func() {}, 0},
		{"put 10 private", func() { a.put("files", "a", "", strings.Repeat("a", 10)) }, 10},
		{"put 7 public", func() { a.put("pub", "a", "", strings.Repeat("b", 7)) }, 17},
		{"replace 10 by 3", func() { a.put("files", "a", "", "ccc") }, 10},
		{"put empty", func() { a.put("files", "empty", "", "") }, 10},
		{"signed PUT 50", func() {
			u := a.sign(url.Values{"key": {"s"}, "method": {"PUT"}, "max": {"50"}})
			if resp, body := do(t, "PUT", u, strings.NewReader(strings.Repeat("s", 50)), nil); resp.StatusCode != 200 {
				t.Fatalf("signed PUT: %d %q", resp.StatusCode, body)
			}
		}, 60},
		{"delete private a", func() { a.ok("POST", "/del", url.Values{"key": {"a"}}, "") }, 57},
		{"delete missing", func() { a.ok("POST", "/del", url.Values{"key": {"nope"}}, "") }, 57},
		{"delete public a", func() { a.ok("POST", "/del", url.Values{"box": {"pub"}, "key": {"a"}}, "") }, 50},
		{"delete s and empty", func() {
			a.ok("POST", "/del", url.Values{"key": {"s"}}, "")
			a.ok("POST", "/del", url.Values{"key": {"empty"}}, "")
		}, 0},
	}
	for _, s := range steps {
		s.do()
		n := a.storedBytes()
		if n != s.want {
			t.Fatalf("%s: stored bytes %d, want %d", s.what, n, s.want)
		}
		p.record(t, s.what, "%d stored bytes", n)
	}
}

func TestStorage_DeleteStackRemovesItsObjects(t *testing.T) {
	a := newBoxApp(t)
	a.put("files", "doc", "", "private bytes")
	a.put("pub", "pic", "image/png", "public bytes")
	signed := a.sign(url.Values{"key": {"doc"}, "method": {"GET"}})
	if a.storedBytes() != 25 {
		t.Fatalf("stored bytes %d, want 25", a.storedBytes())
	}
	ctx := context.Background()
	if err := a.r.DeleteStack(ctx, a.stack); err != nil {
		t.Fatal(err)
	}
	if n := a.storedBytes(); n != 0 {
		t.Fatalf("stored bytes %d after DeleteStack, want 0", n)
	}
	if code, _ := get(t, a.publicURL("pub", "pic")); code != 404 {
		t.Fatalf("public object after DeleteStack: %d, want 404", code)
	}
	if code, _ := get(t, signed); code != 404 {
		t.Fatalf("signed GET after DeleteStack: %d, want 404", code)
	}
	a = deployBoxProbe(t, a.r, a.stack)
	if code, body := a.call("GET", "/get", url.Values{"key": {"doc"}}, ""); code != 404 {
		t.Fatalf("get after DeleteStack and redeploy: %d %q, want 404", code, body)
	}
	if code, body := a.call("GET", "/stat", url.Values{"box": {"pub"}, "key": {"pic"}}, ""); code != 404 {
		t.Fatalf("stat after DeleteStack and redeploy: %d %q, want 404", code, body)
	}
	if code, _ := get(t, a.publicURL("pub", "pic")); code != 404 {
		t.Fatalf("public object after redeploy: %d, want 404", code)
	}
}

// bigCRC is the CRC-32 of boxprobe's big object of n MiB.
func bigCRC(n int) uint32 {
	buf := make([]byte, 1<<20)
	h := crc32.NewIEEE()
	for i := range n {
		x := uint32(2463534242)
		for j := range buf {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			buf[j] = byte(x)
		}
		buf[0] = byte(i)
		h.Write(buf)
	}
	return h.Sum32()
}

func TestStorage_ObjectLargerThanTheFunctionsMemoryStreams(t *testing.T) {
	const mib = 24 // boxprobe's memory_limit is 16MiB
	a := newBoxApp(t)
	var got struct {
		Written, Read int64
		W             uint32 `json:"write_crc"`
		R             uint32 `json:"read_crc"`
	}
	if err := json.Unmarshal([]byte(a.ok("POST", "/big", url.Values{"key": {"big.bin"}, "n": {fmt.Sprint(mib)}}, "")), &got); err != nil {
		t.Fatal(err)
	}
	want := bigCRC(mib)
	if got.Written != mib<<20 || got.Read != mib<<20 || got.W != want || got.R != want {
		t.Fatalf("big: %+v, want %d bytes with CRC %08x", got, mib<<20, want)
	}
	if n := a.storedBytes(); n != mib<<20 {
		t.Fatalf("stored bytes %d, want %d", n, mib<<20)
	}
	// The stored bytes are the function's: read them back over a signed URL.
	resp, err := http.Get(a.sign(url.Values{"key": {"big.bin"}, "method": {"GET"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := crc32.NewIEEE()
	n, err := io.Copy(h, resp.Body)
	if err != nil || resp.StatusCode != 200 || n != mib<<20 || h.Sum32() != want {
		t.Fatalf("signed GET of the big object: %d, %d bytes, CRC %08x, %v", resp.StatusCode, n, h.Sum32(), err)
	}
}
