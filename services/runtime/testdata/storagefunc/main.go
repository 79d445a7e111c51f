// Command storagefunc is a test function of the runtime's storage bridge:
// one handler runs every storage operation of the SDK and answers with a
// transcript the test compares; others stream an object far larger than
// the function's memory in and out, catch an object replaced mid-read, and
// fail in the ways a function can meet (an undeclared box, an object too
// large for one frame, too many uploads, an upload left open).
package main

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"
)

// stream yields n pseudo-random bytes from seed, the same ones the test
// computes, without holding them.
type stream struct {
	x uint64
	n int64
}

func (s *stream) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	for i := range p {
		s.x = s.x*6364136223846793005 + 1442695040888963407
		p[i] = byte(s.x >> 56)
	}
	s.n -= int64(len(p))
	return len(p), nil
}

func ops(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	box := ctx.Storage("files")
	fail := func(op string, err error) (*mu.Response, error) { return nil, fmt.Errorf("%s: %w", op, err) }

	if err := box.Put("a.txt", []byte("hello")); err != nil {
		return fail("Put", err)
	}
	v, found, err := box.Get("a.txt")
	if err != nil {
		return fail("Get", err)
	}
	line("get a.txt: %s %t", v, found)
	_, found, err = box.Get("missing")
	if err != nil {
		return fail("Get missing", err)
	}
	line("get missing: %t", found)
	info, found, err := box.Stat("a.txt")
	if err != nil {
		return fail("Stat", err)
	}
	line("stat a.txt: %t size=%d ct=%q etag=%t modified=%s", found, info.Size, info.ContentType, info.ETag != "", info.LastModified.UTC().Format(time.RFC3339))
	_, found, err = box.Stat("missing")
	if err != nil {
		return fail("Stat missing", err)
	}
	line("stat missing: %t", found)
	for i, k := range []string{"docs/b.txt", "docs/c.txt", "docs/d.txt", "e.txt"} {
		pi, err := box.PutReader(k, strings.NewReader(strings.Repeat(strconv.Itoa(i), 10+i)), mu.WithContentType("text/plain"))
		if err != nil {
			return fail("PutReader", err)
		}
		line("put %s: %d", k, pi.Size)
	}
	part, pinfo, err := box.GetRange("docs/c.txt", 2, 5)
	if err != nil {
		return fail("GetRange", err)
	}
	line("range docs/c.txt[2:7]: %s of %d %s", part, pinfo.Size, pinfo.ContentType)
	cursor, pages := "", 0
	for {
		page, err := box.ListPage("", 2, cursor)
		if err != nil {
			return fail("ListPage", err)
		}
		pages++
		var keys []string
		for _, o := range page.Objects {
			keys = append(keys, fmt.Sprintf("%s:%d:%s", o.Key, o.Size, o.ContentType))
		}
		line("page %d: %s more=%t", pages, strings.Join(keys, ","), page.Next != "")
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	var keys []string
	for o, err := range box.Objects("docs/") {
		if err != nil {
			return fail("Objects", err)
		}
		keys = append(keys, o.Key)
	}
	line("objects docs/: %s", strings.Join(keys, ","))
	objs, err := box.List("docs/")
	if err != nil {
		return fail("List", err)
	}
	keys = keys[:0]
	for _, o := range objs {
		keys = append(keys, fmt.Sprintf("%s:%d", o.Key, o.Size))
	}
	line("list docs/: %s", strings.Join(keys, ","))
	u, err := box.SignURL("up.png", "PUT", 10*time.Minute, &mu.SignURLOptions{MaxBytes: 1 << 20, ContentType: "image/png"})
	if err != nil {
		return fail("SignURL PUT", err)
	}
	line("sign put: %s", u)
	u, err = box.SignURL("a.txt", "GET", 0, nil)
	if err != nil {
		return fail("SignURL GET", err)
	}
	line("sign get: %s", u)
	if err := box.Delete("a.txt"); err != nil {
		return fail("Delete", err)
	}
	_, found, _ = box.Get("a.txt")
	line("after delete: %t", found)
	_, err = box.Open("missing")
	line("open missing: %t", errors.Is(err, mu.ErrNotFound))
	_, _, err = box.GetRange("docs/c.txt", 100, 1)
	line("range past end: %v", err)
	return mu.Text(200, b.String()), nil
}

func putBig(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	n, _ := strconv.ParseInt(req.Query("n"), 10, 64)
	w, err := ctx.Storage("files").Create("big.bin", "application/octet-stream")
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyBuffer(w, &stream{x: 42, n: n}, make([]byte, 64<<10)); err != nil {
		return nil, err
	}
	info, err := w.Commit()
	if err != nil {
		return nil, err
	}
	return mu.Text(200, fmt.Sprintf("%d %t", info.Size, info.ETag != "")), nil
}

func getBig(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	r, err := ctx.Storage("files").Open("big.bin")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	h := crc32.NewIEEE()
	n, err := io.CopyBuffer(h, r, make([]byte, 64<<10))
	if err != nil {
		return nil, err
	}
	return mu.Text(200, fmt.Sprintf("%d %08x", n, h.Sum32())), nil
}

func getBigOld(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	_, _, err := ctx.Storage("files").Get("big.bin")
	return mu.Text(200, fmt.Sprint(err)), nil
}

func changed(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	box := ctx.Storage("files")
	if _, err := box.PutReader("c.bin", &stream{x: 1, n: 3 << 20}); err != nil {
		return nil, err
	}
	r, err := box.Open("c.bin")
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
		return nil, err
	}
	if _, err := box.PutReader("c.bin", &stream{x: 2, n: 3 << 20}); err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, r)
	return mu.Text(200, fmt.Sprintf("%t %v", errors.Is(err, mu.ErrObjectChanged), err)), nil
}

func undeclared(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	err := ctx.Storage("secret").Put("k", []byte("v"))
	_, cerr := ctx.Storage("secret").Create("k", "")
	return mu.Text(200, fmt.Sprintf("%v\n%v", err, cerr)), nil
}

func unfinished(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	w, err := ctx.Storage("files").Create("half.bin", "")
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(w, &stream{x: 3, n: 3 << 20}); err != nil {
		return nil, err
	}
	return mu.Text(200, "left open"), nil // no Close: the runtime aborts it
}

func tooMany(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	var ws []*mu.ObjectWriter
	var last error
	for i := range 5 {
		w, err := ctx.Storage("files").Create(fmt.Sprintf("m%d", i), "")
		if err != nil {
			last = err
			break
		}
		ws = append(ws, w)
	}
	for _, w := range ws[1:] {
		w.Abort()
	}
	fmt.Fprint(ws[0], "first")
	err := ws[0].Close()
	return mu.Text(200, fmt.Sprintf("%d open; %v; first closed: %v", len(ws), last, err)), nil
}

func get(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	v, found, err := ctx.Storage("files").Get(req.Query("key"))
	if err != nil {
		return nil, err
	}
	return mu.Text(200, fmt.Sprintf("%s %t", v, found)), nil
}

func put(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	if err := ctx.Storage("files").Put(req.Query("key"), req.Body); err != nil {
		return nil, err
	}
	return mu.Status(204), nil
}

func main() {
	mu.Handle("ops", ops)
	mu.Handle("put_big", putBig)
	mu.Handle("get_big", getBig)
	mu.Handle("get_big_old", getBigOld)
	mu.Handle("changed", changed)
	mu.Handle("undeclared", undeclared)
	mu.Handle("unfinished", unfinished)
	mu.Handle("too_many", tooMany)
	mu.Handle("get", get)
	mu.Handle("put", put)
	mu.Run()
}
