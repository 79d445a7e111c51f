// Package backendtest is the contract every storage Backend passes: the
// directory backend and the S3 backend (against versitygw) run it alike.
package backendtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/muprotocol/mu/services/storage/internal/backend"
)

// Run runs the contract against backends made by open, a fresh empty one
// per subtest. partSize is the backend's multipart part size (0 if none),
// so the large-object case crosses it.
func Run(t *testing.T, partSize int64, open func(t *testing.T) backend.Backend) {
	ctx := context.Background()
	put := func(t *testing.T, b backend.Backend, name, body string, opts backend.PutOptions) backend.Info {
		t.Helper()
		info, err := b.Put(ctx, name, strings.NewReader(body), opts)
		if err != nil {
			t.Fatalf("Put %q: %v", name, err)
		}
		return info
	}
	read := func(t *testing.T, b backend.Backend, name string, off, n int64) (string, backend.Info) {
		t.Helper()
		rc, info, err := b.Get(ctx, name, off, n)
		if err != nil {
			t.Fatalf("Get %q %d+%d: %v", name, off, n, err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read %q: %v", name, err)
		}
		return string(got), info
	}

	t.Run("PutGetStat", func(t *testing.T) {
		b := open(t)
		info := put(t, b, "s/x/box/hello.txt", "hello", backend.PutOptions{ContentType: "text/plain", Meta: map[string]string{"uploader": "abc"}})
		sum := md5.Sum([]byte("hello"))
		if info.Size != 5 || info.ETag != hex.EncodeToString(sum[:]) || info.ContentType != "text/plain" {
			t.Fatalf("put info %+v", info)
		}
		st, err := b.Stat(ctx, "s/x/box/hello.txt")
		if err != nil || st.Size != 5 || st.ETag != info.ETag || st.ContentType != "text/plain" || st.Meta["uploader"] != "abc" || st.LastModified.IsZero() {
			t.Fatalf("stat %+v %v", st, err)
		}
		got, gi := read(t, b, "s/x/box/hello.txt", 0, -1)
		if got != "hello" || gi.Size != 5 || gi.ETag != info.ETag || gi.ContentType != "text/plain" {
			t.Fatalf("get %q %+v", got, gi)
		}
		none := put(t, b, "s/x/box/raw", "", backend.PutOptions{})
		if none.Size != 0 || none.ContentType != "" {
			t.Fatalf("empty put %+v", none)
		}
		if st, err := b.Stat(ctx, "s/x/box/raw"); err != nil || st.ContentType != "" || st.Size != 0 {
			t.Fatalf("empty stat %+v %v", st, err)
		}
		if got, _ := read(t, b, "s/x/box/raw", 0, -1); got != "" {
			t.Fatalf("empty get %q", got)
		}
	})

	t.Run("ReplaceChangesETag", func(t *testing.T) {
		b := open(t)
		a := put(t, b, "k", "one", backend.PutOptions{})
		c := put(t, b, "k", "two!", backend.PutOptions{})
		if a.ETag == c.ETag {
			t.Fatal("same etag after replace")
		}
		if got, info := read(t, b, "k", 0, -1); got != "two!" || info.Size != 4 {
			t.Fatalf("got %q %+v", got, info)
		}
	})

	t.Run("Ranges", func(t *testing.T) {
		b := open(t)
		put(t, b, "r", "0123456789", backend.PutOptions{})
		for _, c := range []struct {
			off, n int64
			want   string
		}{{0, -1, "0123456789"}, {3, -1, "3456789"}, {3, 4, "3456"}, {0, 1, "0"}, {8, 100, "89"}, {10, -1, ""}, {10, 5, ""}, {4, 0, ""}} {
			got, info := read(t, b, "r", c.off, c.n)
			if got != c.want || info.Size != 10 {
				t.Errorf("range %d+%d = %q (size %d), want %q", c.off, c.n, got, info.Size, c.want)
			}
		}
		for _, n := range []int64{-1, 0, 3} {
			if _, _, err := b.Get(ctx, "r", 11, n); !errors.Is(err, backend.ErrOutOfRange) {
				t.Errorf("offset 11 length %d: %v, want ErrOutOfRange", n, err)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		b := open(t)
		if _, err := b.Stat(ctx, "missing"); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("stat: %v", err)
		}
		if _, _, err := b.Get(ctx, "missing", 0, -1); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("get: %v", err)
		}
		if _, _, err := b.Get(ctx, "missing", 5, 2); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("ranged get: %v", err)
		}
		if err := b.Delete(ctx, "missing"); err != nil {
			t.Errorf("delete missing: %v", err)
		}
		put(t, b, "gone", "x", backend.PutOptions{})
		if err := b.Delete(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Stat(ctx, "gone"); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("stat after delete: %v", err)
		}
	})

	t.Run("ListOrderPrefixAndPages", func(t *testing.T) {
		b := open(t)
		names := []string{"p/a", "p/a-c", "p/a0", "p/b/c", "p/b/d", "p/z", "q/a", "o"}
		for _, n := range names {
			put(t, b, n, n, backend.PutOptions{})
		}
		var all []string
		after := ""
		for pages := 0; ; pages++ {
			page, more, err := b.List(ctx, "p/", after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 || pages > 10 {
				t.Fatalf("page of %d", len(page))
			}
			for _, o := range page {
				all = append(all, o.Name)
				if o.Size != int64(len(o.Name)) || o.ETag == "" {
					t.Errorf("list info %+v", o)
				}
			}
			if !more {
				break
			}
			after = page[len(page)-1].Name
		}
		want := "p/a p/a-c p/a0 p/b/c p/b/d p/z"
		if got := strings.Join(all, " "); got != want {
			t.Fatalf("listed %q, want %q", got, want)
		}
		page, more, err := b.List(ctx, "p/b", "p/b/c", 10)
		if err != nil || more || len(page) != 1 || page[0].Name != "p/b/d" {
			t.Fatalf("start-after page %+v %v %v", page, more, err)
		}
		page, more, err = b.List(ctx, "p/", "", 6)
		if err != nil || more || len(page) != 6 {
			t.Fatalf("exact page: %d more=%v %v", len(page), more, err)
		}
		page, _, err = b.List(ctx, "nothing/", "", 10)
		if err != nil || len(page) != 0 {
			t.Fatalf("empty prefix: %+v %v", page, err)
		}
	})

	t.Run("DeletePrefix", func(t *testing.T) {
		b := open(t)
		for i := range 7 {
			put(t, b, fmt.Sprintf("s/a/box/%d", i), strings.Repeat("x", i), backend.PutOptions{})
		}
		put(t, b, "s/ab/box/0", "keep", backend.PutOptions{})
		n, size, err := b.DeletePrefix(ctx, "s/a/")
		if err != nil || n != 7 || size != 21 {
			t.Fatalf("DeletePrefix = %d, %d, %v", n, size, err)
		}
		if page, _, _ := b.List(ctx, "s/", "", 10); len(page) != 1 || page[0].Name != "s/ab/box/0" {
			t.Fatalf("left %+v", page)
		}
		if n, _, err := b.DeletePrefix(ctx, "s/a/"); err != nil || n != 0 {
			t.Fatalf("again: %d %v", n, err)
		}
	})

	t.Run("FailedPutStoresNothing", func(t *testing.T) {
		b := open(t)
		put(t, b, "f", "old", backend.PutOptions{})
		boom := errors.New("client went away")
		size := int64(1000)
		if partSize > 0 {
			size = partSize + 1000 // fails inside a multipart upload
		}
		_, err := b.Put(ctx, "f", io.MultiReader(io.LimitReader(zeros{}, size), errReader{boom}), backend.PutOptions{})
		if !errors.Is(err, boom) {
			t.Fatalf("put: %v, want the reader's error", err)
		}
		if got, _ := read(t, b, "f", 0, -1); got != "old" {
			t.Fatalf("after failed put: %q", got)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.Put(cctx, "g", strings.NewReader("x"), backend.PutOptions{}); err == nil {
			t.Fatal("put with a cancelled context succeeded")
		}
		if _, err := b.Stat(ctx, "g"); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("cancelled put left %v", err)
		}
	})

	t.Run("LargeObjectAcrossParts", func(t *testing.T) {
		b := open(t)
		size := int64(3<<20 + 17)
		if partSize > 0 {
			size = 2*partSize + 12345
		}
		seed := rand.Uint64()
		info, err := b.Put(ctx, "big", io.LimitReader(newRand(seed), size), backend.PutOptions{ContentType: "application/x-big"})
		if err != nil || info.Size != size {
			t.Fatalf("put: %+v %v", info, err)
		}
		rc, gi, err := b.Get(ctx, "big", 0, -1)
		if err != nil || gi.Size != size || gi.ContentType != "application/x-big" {
			t.Fatalf("get %+v %v", gi, err)
		}
		if !sameStream(rc, io.LimitReader(newRand(seed), size)) {
			t.Fatal("content differs")
		}
		rc.Close()
		off := size - 5000
		rc, _, err = b.Get(ctx, "big", off, 3000)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 3000)
		r := newRand(seed)
		io.CopyN(io.Discard, r, off)
		io.ReadFull(r, want)
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, want) {
			t.Fatal("tail range differs")
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// randReader is a deterministic byte stream.
type randReader struct{ r *rand.ChaCha8 }

func newRand(seed uint64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return randReader{rand.NewChaCha8(s)}
}

func (r randReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func sameStream(a, b io.Reader) bool {
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}
