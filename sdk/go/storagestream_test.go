package mu_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

// fakeStore plays the runtime's storage bridge for the streaming calls: one
// box of objects in memory, uploads by handle, pages of pageSize.
type fakeStore struct {
	t        *testing.T
	objects  map[string]fakeObject
	uploads  map[uint32]*fakeUpload
	next     uint32
	pageSize int
	maxRead  int // the most bytes a StorageRangeResult carries (the runtime's cap)
	seen     []fnproto.Message
	// afterRead, when set, runs after every StorageGetRange is answered.
	afterRead func(s *fakeStore)
}

type fakeObject struct {
	data        []byte
	etag        string
	contentType string
}

type fakeUpload struct {
	key, contentType string
	data             []byte
}

func newFakeStore(t *testing.T) *fakeStore {
	return &fakeStore{t: t, objects: map[string]fakeObject{}, uploads: map[uint32]*fakeUpload{}, pageSize: 2, maxRead: 1 << 30}
}

var etagSeq int

func (s *fakeStore) put(key string, data []byte, ct string) {
	etagSeq++
	s.objects[key] = fakeObject{data: data, etag: fmt.Sprintf("e%d", etagSeq), contentType: ct}
}

func (s *fakeStore) host(m fnproto.Message) fnproto.Message {
	s.seen = append(s.seen, m)
	switch m := m.(type) {
	case *fnproto.StorageGetRange:
		defer func() {
			if s.afterRead != nil {
				s.afterRead(s)
			}
		}()
		o, ok := s.objects[m.Key]
		if !ok {
			return &fnproto.StorageRangeResult{}
		}
		res := &fnproto.StorageRangeResult{Found: true, TotalSize: uint64(len(o.data)), ETag: o.etag, ContentType: o.contentType}
		if m.IfMatch != nil && *m.IfMatch != o.etag {
			return res
		}
		if m.Offset > uint64(len(o.data)) {
			return &fnproto.StorageError{Error: "offset past the end"}
		}
		end := min(uint64(len(o.data)), m.Offset+uint64(m.Length), m.Offset+uint64(s.maxRead))
		res.Data = append([]byte(nil), o.data[m.Offset:end]...)
		return res
	case *fnproto.StoragePutBegin:
		s.next++
		s.uploads[s.next] = &fakeUpload{key: m.Key, contentType: m.ContentType}
		return &fnproto.StorageUploadResult{Upload: s.next}
	case *fnproto.StoragePutChunk:
		u := s.uploads[m.Upload]
		if u == nil {
			return &fnproto.StorageError{Error: "unknown upload"}
		}
		u.data = append(u.data, m.Data...)
		return &fnproto.StorageEmptyResult{}
	case *fnproto.StoragePutEnd:
		u := s.uploads[m.Upload]
		delete(s.uploads, m.Upload)
		if u == nil {
			return &fnproto.StorageError{Error: "unknown upload"}
		}
		if m.Abort {
			return &fnproto.StorageEmptyResult{}
		}
		s.put(u.key, u.data, u.contentType)
		return &fnproto.StorageObjectResult{Size: uint64(len(u.data)), ETag: s.objects[u.key].etag}
	case *fnproto.StorageStat:
		o, ok := s.objects[m.Key]
		if !ok {
			return &fnproto.StorageObjectInfoResult{}
		}
		return &fnproto.StorageObjectInfoResult{Info: &fnproto.StorageObjectInfo{Key: m.Key, Size: uint64(len(o.data)), ETag: o.etag, ContentType: o.contentType, LastModifiedUnix: 1767225600000}}
	case *fnproto.StorageListPage:
		var keys []string
		for k := range s.objects {
			if strings.HasPrefix(k, m.Prefix) && k > m.Cursor {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		res := &fnproto.ObjectPageResult{}
		for _, k := range keys {
			if len(res.Objects) == min(s.pageSize, int(m.Limit)) {
				res.NextCursor = res.Objects[len(res.Objects)-1].Key
				break
			}
			o := s.objects[k]
			res.Objects = append(res.Objects, fnproto.StorageObjectInfo{Key: k, Size: uint64(len(o.data)), ETag: o.etag})
		}
		return res
	case *fnproto.StorageSignURL:
		return &fnproto.StorageSignedURLResult{URL: fmt.Sprintf("https://s.example/%s/%s?m=%s", m.Storage, m.Key, m.Method), ExpiresAtUnix: 1}
	}
	s.t.Fatalf("unexpected host call %#v", m)
	return nil
}

// runStorage serves one handler on an App with a 4 KiB frame limit
// (chunks of 3 KiB) against store and returns the response body.
func runStorage(t *testing.T, store *fakeStore, h func(ctx *mu.Context) (string, error)) string {
	t.Helper()
	app := mu.New(mu.WithMaxFrameSize(4096))
	app.Handle("h", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		s, err := h(ctx)
		if err != nil {
			return mu.Text(500, err.Error()), nil
		}
		return mu.Text(200, s), nil
	})
	rt := serve(t, app)
	ex := rt.call("h", get(nil), store.host)
	if err := rt.close(); err != nil {
		t.Fatal(err)
	}
	return string(ex.result(t).Body)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestBox_PutReaderAndOpenStreamInChunks(t *testing.T) {
	store := newFakeStore(t)
	data := pattern(50_000)
	got := runStorage(t, store, func(ctx *mu.Context) (string, error) {
		box := ctx.Storage("files")
		if box.ChunkSize() != 4096-1024 {
			return "", fmt.Errorf("ChunkSize = %d", box.ChunkSize())
		}
		info, err := box.PutReader("big.bin", iotest.HalfReader(bytes.NewReader(data)), mu.WithContentType("application/x-test"), mu.WithSize(int64(len(data))))
		if err != nil {
			return "", err
		}
		r, err := box.Open("big.bin")
		if err != nil {
			return "", err
		}
		defer r.Close()
		back, err := io.ReadAll(r)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(back, data) {
			return "", errors.New("read back differs")
		}
		if _, err := r.Seek(-10, io.SeekEnd); err != nil {
			return "", err
		}
		tail, _ := io.ReadAll(r)
		mid := make([]byte, 5000)
		if _, err := r.ReadAt(mid, 20_000); err != nil {
			return "", err
		}
		if !bytes.Equal(tail, data[len(data)-10:]) || !bytes.Equal(mid, data[20_000:25_000]) {
			return "", errors.New("seek or ReadAt differs")
		}
		ri := r.Info()
		return fmt.Sprintf("%d %s|%d %s %s", info.Size, info.ETag, ri.Size, ri.ETag, ri.ContentType), nil
	})
	if got != "50000 e1|50000 e1 application/x-test" {
		t.Fatalf("handler: %s", got)
	}
	var chunks, reads int
	for _, m := range store.seen {
		switch m := m.(type) {
		case *fnproto.StoragePutBegin:
			if m.Key != "big.bin" || m.ContentType != "application/x-test" || m.Size == nil || *m.Size != 50_000 {
				t.Errorf("begin %+v", m)
			}
		case *fnproto.StoragePutChunk:
			chunks++
			if len(m.Data) > 3072 || len(m.Data) == 0 {
				t.Errorf("chunk of %d bytes", len(m.Data))
			}
		case *fnproto.StorageGetRange:
			reads++
			if m.Length > 3072 || reads > 1 && (m.IfMatch == nil || *m.IfMatch != "e1") {
				t.Errorf("range read %+v", m)
			}
		}
	}
	if chunks != 17 || reads < 17 {
		t.Errorf("%d chunks (want 17 of 3 KiB), %d range reads", chunks, reads)
	}
}

func TestBox_ReadDetectsAReplacedObject(t *testing.T) {
	store := newFakeStore(t)
	store.put("k", pattern(10_000), "")
	reads := 0
	store.afterRead = func(s *fakeStore) {
		if reads++; reads == 2 {
			s.put("k", pattern(10_000), "") // same bytes, new etag
		}
	}
	got := runStorage(t, store, func(ctx *mu.Context) (string, error) {
		r, err := ctx.Storage("files").Open("k")
		if err != nil {
			return "", err
		}
		_, err = io.ReadAll(r)
		if !errors.Is(err, mu.ErrObjectChanged) {
			return "", fmt.Errorf("ReadAll: %v", err)
		}
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, mu.ErrObjectChanged) {
			return "", fmt.Errorf("Read after change: %v", err)
		}
		return err.Error(), nil
	})
	if !strings.Contains(got, "changed while being read") || !strings.Contains(got, `", now "e`) {
		t.Fatalf("handler: %s", got)
	}
}

func TestBox_GetRangeStatAndMissingObjects(t *testing.T) {
	store := newFakeStore(t)
	store.maxRead = 1000 // the runtime returns less than asked
	data := pattern(8000)
	store.put("k", data, "text/plain")
	got := runStorage(t, store, func(ctx *mu.Context) (string, error) {
		box := ctx.Storage("files")
		part, info, err := box.GetRange("k", 100, 5000)
		if err != nil || !bytes.Equal(part, data[100:5100]) {
			return "", fmt.Errorf("GetRange: %d bytes, %v", len(part), err)
		}
		end, _, err := box.GetRange("k", 7990, 100)
		if err != nil || !bytes.Equal(end, data[7990:]) {
			return "", fmt.Errorf("GetRange at end: %d bytes, %v", len(end), err)
		}
		_, _, err = box.GetRange("nope", 0, 10)
		_, openErr := box.Open("nope")
		st, found, serr := box.Stat("k")
		_, missing, _ := box.Stat("nope")
		_, _, past := box.GetRange("k", 9000, 1)
		return fmt.Sprintf("%d %s %s|%t %t|%+v %t %v %t|%v", info.Size, info.ETag, info.ContentType,
			errors.Is(err, mu.ErrNotFound), errors.Is(openErr, mu.ErrNotFound),
			st.LastModified.UTC().Format(time.RFC3339), found, serr, missing, past), nil
	})
	want := `8000 e` + fmt.Sprint(etagSeq) + ` text/plain|true true|2026-01-01T00:00:00Z true <nil> false|mu: storage StorageGetRange "files" "k": offset past the end`
	if got != want {
		t.Fatalf("handler:\n got %s\nwant %s", got, want)
	}
}

func TestBox_CreateAbortAndFailedReaderStoreNothing(t *testing.T) {
	store := newFakeStore(t)
	got := runStorage(t, store, func(ctx *mu.Context) (string, error) {
		box := ctx.Storage("files")
		w, err := box.Create("a", "text/plain")
		if err != nil {
			return "", err
		}
		if _, err := w.Write(pattern(7000)); err != nil {
			return "", err
		}
		if err := w.Abort(); err != nil {
			return "", err
		}
		_, werr := w.Write([]byte("x"))
		_, perr := box.PutReader("b", iotest.TimeoutReader(bytes.NewReader(pattern(10_000))))
		w2, _ := box.Create("c", "text/x-greeting")
		fmt.Fprint(w2, "hello")
		cerr := w2.Close()
		info, again := w2.Commit()
		return fmt.Sprintf("%v|%v|%v %v %d %s", werr, perr, cerr, again, info.Size, info.ContentType), nil
	})
	if got != "mu: storage stream is closed|timeout|<nil> <nil> 5 text/x-greeting" {
		t.Fatalf("handler: %s", got)
	}
	if _, ok := store.objects["a"]; ok {
		t.Error("aborted upload stored a")
	}
	if _, ok := store.objects["b"]; ok {
		t.Error("failed PutReader stored b")
	}
	if string(store.objects["c"].data) != "hello" || len(store.uploads) != 0 {
		t.Errorf("objects %v, open uploads %d", store.objects, len(store.uploads))
	}
	var aborts int
	for _, m := range store.seen {
		if e, ok := m.(*fnproto.StoragePutEnd); ok && e.Abort {
			aborts++
		}
	}
	if aborts != 2 {
		t.Errorf("%d aborts, want 2", aborts)
	}
}

func TestBox_ListPageObjectsAndSignURL(t *testing.T) {
	store := newFakeStore(t)
	for _, k := range []string{"a/1", "a/2", "a/3", "b/1", "a/4", "a/5"} {
		store.put(k, []byte(k), "")
	}
	got := runStorage(t, store, func(ctx *mu.Context) (string, error) {
		box := ctx.Storage("files")
		page, err := box.ListPage("a/", 2, "")
		if err != nil {
			return "", err
		}
		var keys []string
		for o, err := range box.Objects("a/") {
			if err != nil {
				return "", err
			}
			keys = append(keys, o.Key)
		}
		u, err := box.SignURL("up.png", "PUT", 90*time.Second+time.Millisecond, &mu.SignURLOptions{MaxBytes: 1 << 20, ContentType: "image/png"})
		if err != nil {
			return "", err
		}
		_, badErr := box.SignURL("x", "POST", time.Minute, nil)
		return fmt.Sprintf("%d next=%s|%s|%s|%v", len(page.Objects), page.Next, strings.Join(keys, ","), u, badErr), nil
	})
	if got != `2 next=a/2|a/1,a/2,a/3,a/4,a/5|https://s.example/files/up.png?m=PUT|mu: storage SignURL "files" "x": method "POST" (want GET or PUT)` {
		t.Fatalf("handler: %s", got)
	}
	last := store.seen[len(store.seen)-1]
	if want := (&fnproto.StorageSignURL{Storage: "files", Key: "up.png", Method: fnproto.SignURLPut, ExpiresInSeconds: 91, MaxBytes: 1 << 20, ContentType: "image/png"}); !reflect.DeepEqual(last, want) {
		t.Errorf("SignURL request %#v", last)
	}
	lists := 0
	for _, m := range store.seen {
		if _, ok := m.(*fnproto.StorageListPage); ok {
			lists++
		}
	}
	if lists != 1+3 {
		t.Errorf("%d list pages, want 4", lists)
	}
}

func TestBox_StreamingErrorsAreStorageErrors(t *testing.T) {
	runHostCases(t, []hostCase{
		{"Create undeclared", func(ctx *mu.Context) (any, error) {
			_, err := ctx.Storage("nobox").Create("k", "")
			return err.Error(), nil
		}, &fnproto.StoragePutBegin{Storage: "nobox", Key: "k"}, &fnproto.StorageError{Error: `box "nobox" is not declared`},
			`mu: storage StoragePutBegin "nobox" "k": box "nobox" is not declared`},
		{"Stat", func(ctx *mu.Context) (any, error) {
			_, _, err := ctx.Storage("b").Stat("k")
			var se *mu.StorageError
			return errors.As(err, &se) && se.Op == "StorageStat", nil
		}, &fnproto.StorageStat{Storage: "b", Key: "k"}, &fnproto.StorageError{Error: "down"}, true},
		{"ListPage", func(ctx *mu.Context) (any, error) {
			_, err := ctx.Storage("b").ListPage("p", 0, "c")
			return err.Error(), nil
		}, &fnproto.StorageListPage{Storage: "b", Prefix: "p", Limit: 1<<32 - 1, Cursor: "c"}, &fnproto.StorageError{Error: "bad cursor"},
			`mu: storage StorageListPage "b" "p": bad cursor`},
	})
}
