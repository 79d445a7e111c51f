// Command boxprobe drives storage boxes through the SDK for the region's
// end-to-end storage tests: each handler is one operation whose inputs come
// from the query string (box defaults to "files"), answering JSON or the
// object's bytes, and a storage error comes back as 422 {"error": ...} so
// tests can check its text.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"
)

func fail(err error) (*mu.Response, error) {
	var se *mu.StorageError
	if errors.As(err, &se) || errors.Is(err, mu.ErrNotFound) {
		return mu.JSON(422, map[string]string{"error": err.Error()})
	}
	return nil, err
}

func num(req *mu.Request, name string, def int) int {
	if n, err := strconv.Atoi(req.Query(name)); err == nil {
		return n
	}
	return def
}

func box(ctx *mu.Context, req *mu.Request) *mu.Box {
	if b := req.Query("box"); b != "" {
		return ctx.Storage(b)
	}
	return ctx.Storage("files")
}

type info struct {
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	ETag        string `json:"etag"`
	ContentType string `json:"content_type"`
}

func toInfo(o mu.ObjectInfo) info {
	return info{Key: o.Key, Size: o.Size, ETag: o.ETag, ContentType: o.ContentType}
}

// put stores the body under key with content type ct, streaming it.
func put(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	var opts []mu.PutOption
	if ct := req.Query("ct"); ct != "" {
		opts = append(opts, mu.WithContentType(ct))
	}
	o, err := box(ctx, req).PutReader(req.Query("key"), bytes.NewReader(req.Body), opts...)
	if err != nil {
		return fail(err)
	}
	return mu.JSON(200, toInfo(o))
}

// fill stores n objects prefix%03d with content "v<i>".
func fill(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	b := box(ctx, req)
	for i := range num(req, "n", 0) {
		if err := b.Put(fmt.Sprintf("%s%03d", req.Query("prefix"), i), fmt.Appendf(nil, "v%d", i)); err != nil {
			return fail(err)
		}
	}
	return mu.Text(200, "ok"), nil
}

// get answers the object's bytes, or 404.
func get(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	data, found, err := box(ctx, req).Get(req.Query("key"))
	if err != nil {
		return fail(err)
	}
	if !found {
		return mu.Status(404), nil
	}
	return mu.Bytes(200, "application/octet-stream", data), nil
}

func del(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	if err := box(ctx, req).Delete(req.Query("key")); err != nil {
		return fail(err)
	}
	return mu.Text(200, "ok"), nil
}

// list answers one page: {"keys": [...], "next": cursor}; all=1 instead
// iterates over every object with Objects and answers them all.
func list(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	out := struct {
		Keys []string `json:"keys"`
		Next string   `json:"next"`
	}{Keys: []string{}}
	b := box(ctx, req)
	if req.Query("all") == "1" {
		for o, err := range b.Objects(req.Query("prefix")) {
			if err != nil {
				return fail(err)
			}
			out.Keys = append(out.Keys, o.Key)
		}
		return mu.JSON(200, out)
	}
	p, err := b.ListPage(req.Query("prefix"), num(req, "limit", 0), req.Query("cursor"))
	if err != nil {
		return fail(err)
	}
	for _, o := range p.Objects {
		out.Keys = append(out.Keys, o.Key)
	}
	out.Next = p.Next
	return mu.JSON(200, out)
}

func stat(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	o, found, err := box(ctx, req).Stat(req.Query("key"))
	if err != nil {
		return fail(err)
	}
	if !found {
		return mu.Status(404), nil
	}
	return mu.JSON(200, toInfo(o))
}

// sign answers a signed URL for method (GET or PUT) on key, valid for exp
// seconds, accepting at most max bytes (PUT).
func sign(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	var opts *mu.SignURLOptions
	if m := num(req, "max", 0); m > 0 || req.Query("ct") != "" {
		opts = &mu.SignURLOptions{MaxBytes: int64(m), ContentType: req.Query("ct")}
	}
	u, err := box(ctx, req).SignURL(req.Query("key"), req.Query("method"), time.Duration(num(req, "exp", 0))*time.Second, opts)
	if err != nil {
		return fail(err)
	}
	return mu.Text(200, u), nil
}

// Block returns MiB block i of the big object: a fixed pseudo-random MiB
// with its first byte set to i (the test builds the same bytes).
func block(buf []byte, i int) {
	x := uint32(2463534242)
	for j := range buf {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		buf[j] = byte(x)
	}
	buf[0] = byte(i)
}

// big writes n MiB under key through Create, one MiB at a time, then reads
// the object back through Open with a small buffer, and answers the size
// and CRC-32 (IEEE) of what it wrote and of what it read.
func big(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	b, key, n := box(ctx, req), req.Query("key"), num(req, "n", 1)
	w, err := b.Create(key, "application/octet-stream")
	if err != nil {
		return fail(err)
	}
	buf := make([]byte, 1<<20)
	wcrc := crc32.NewIEEE()
	for i := range n {
		block(buf, i)
		wcrc.Write(buf)
		if _, err := w.Write(buf); err != nil {
			return fail(err)
		}
	}
	wi, err := w.Commit()
	if err != nil {
		return fail(err)
	}
	r, err := b.Open(key)
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	rcrc := crc32.NewIEEE()
	read, err := io.CopyBuffer(rcrc, r, make([]byte, 64<<10))
	if err != nil {
		return fail(err)
	}
	return mu.JSON(200, map[string]any{"written": wi.Size, "read": read,
		"write_crc": wcrc.Sum32(), "read_crc": rcrc.Sum32()})
}

func main() {
	mu.Handle("put", put)
	mu.Handle("fill", fill)
	mu.Handle("get", get)
	mu.Handle("del", del)
	mu.Handle("list", list)
	mu.Handle("stat", stat)
	mu.Handle("sign", sign)
	mu.Handle("big", big)
	mu.Run()
}
