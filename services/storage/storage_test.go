package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/rpcerr"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
		t.Fatalf("got %v, want %v containing %q", err, code, msg)
	}
}

func TestStorage_PutGetRangeDelete(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		e := start(t, testConfig(t, s3), nil)
		stack := newStack(t)
		e.createBox(stack, "files", false)
		info := e.mustPut(stack, "files", "docs/a.txt", "text/plain", "hello, world")
		sum := md5.Sum([]byte("hello, world"))
		if info.GetSize() != 12 || info.GetEtag() != hex.EncodeToString(sum[:]) || info.GetContentType() != "text/plain" || info.GetKey() != "docs/a.txt" {
			t.Fatalf("put info %v", info)
		}
		var buf bytes.Buffer
		gi, err := e.get(stack, "files", "docs/a.txt", 7, 3, &buf)
		if err != nil || buf.String() != "wor" || gi.GetOffset() != 7 || gi.GetLength() != 3 || gi.GetObject().GetSize() != 12 {
			t.Fatalf("range get %q %v %v", buf.String(), gi, err)
		}
		buf.Reset()
		if gi, err = e.get(stack, "files", "docs/a.txt", 12, -1, &buf); err != nil || buf.Len() != 0 || gi.GetLength() != 0 {
			t.Fatalf("get at end: %v %v", gi, err)
		}
		_, err = e.get(stack, "files", "docs/a.txt", 13, -1, &buf)
		wantCode(t, err, codes.OutOfRange, "offset")
		_, err = e.get(stack, "files", "missing", 0, -1, &buf)
		wantCode(t, err, codes.NotFound, "not found")
		d, err := e.cli.Delete(context.Background(), &storagev1.DeleteRequest{StackId: stack.Bytes(), Box: "files", Key: "docs/a.txt"})
		if err != nil || !d.GetDeleted() {
			t.Fatalf("delete %v %v", d, err)
		}
		d, err = e.cli.Delete(context.Background(), &storagev1.DeleteRequest{StackId: stack.Bytes(), Box: "files", Key: "docs/a.txt"})
		if err != nil || d.GetDeleted() {
			t.Fatalf("second delete %v %v", d, err)
		}
		_, err = e.put(stack, "nobox", "k", "", stringReader("x"), nil)
		wantCode(t, err, codes.NotFound, `box "nobox"`)
	})
}

func TestStorage_ListPagesBeyondOnePage(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		cfg := testConfig(t, s3)
		cfg.MaxListPage = 7
		e := start(t, cfg, nil)
		stack := newStack(t)
		e.createBox(stack, "b", false)
		var want []string
		for i := range 25 {
			k := fmt.Sprintf("p/%03d", i)
			want = append(want, k)
			e.mustPut(stack, "b", k, "", "x")
		}
		e.mustPut(stack, "b", "q", "", "outside the prefix")
		var got []string
		token, pages := "", 0
		for {
			resp, err := e.cli.List(context.Background(), &storagev1.ListRequest{StackId: stack.Bytes(), Box: "b", Prefix: "p/", MaxKeys: 1000, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetObjects()) > 7 {
				t.Fatalf("page of %d over max_list_page 7", len(resp.GetObjects()))
			}
			pages++
			for _, o := range resp.GetObjects() {
				got = append(got, o.GetKey())
				if o.GetSize() != 1 || o.GetEtag() == "" {
					t.Fatalf("object %v", o)
				}
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") || pages != 4 {
			t.Fatalf("%d pages: %v", pages, got)
		}
		_, err := e.cli.List(context.Background(), &storagev1.ListRequest{StackId: stack.Bytes(), Box: "b", Prefix: "p/", PageToken: "!!"})
		wantCode(t, err, codes.InvalidArgument, "page_token")
	})
}

func TestStorage_StacksAreIsolated(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		e := start(t, testConfig(t, s3), nil)
		a, b := newStack(t), newStack(t)
		e.createBox(a, "box", false)
		e.createBox(b, "box", false)
		e.mustPut(a, "box", "secret", "", "a's data")
		e.mustPut(a, "box", "x/y", "", "a's data")
		var buf bytes.Buffer
		_, err := e.get(b, "box", "secret", 0, -1, &buf)
		wantCode(t, err, codes.NotFound, "not found")
		// Names that would climb out of the box are refused, not resolved.
		for _, key := range []string{"../secret", "../../" + a.String() + "/box/secret", "/secret", "x//y"} {
			_, err := e.get(b, "box", key, 0, -1, &buf)
			wantCode(t, err, codes.InvalidArgument, "key")
		}
		for _, box := range []string{"../" + a.String(), "box/../box", ""} {
			_, err := e.put(b, box, "k", "", stringReader("x"), nil)
			wantCode(t, err, codes.InvalidArgument, "box")
		}
		resp, err := e.cli.List(context.Background(), &storagev1.ListRequest{StackId: b.Bytes(), Box: "box"})
		if err != nil || len(resp.GetObjects()) != 0 {
			t.Fatalf("b lists %v %v", resp, err)
		}
		e.mustPut(b, "box", "secret", "", "b's")
		if _, err := e.cli.DeleteStackData(context.Background(), &storagev1.DeleteStackDataRequest{StackId: b.Bytes()}); err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		if _, err := e.get(a, "box", "secret", 0, -1, &buf); err != nil || buf.String() != "a's data" {
			t.Fatalf("a after b's deletion: %q %v", buf.String(), err)
		}
		_, err = e.cli.CreateBox(context.Background(), &storagev1.CreateBoxRequest{StackId: make([]byte, 32), Box: "box"})
		wantCode(t, err, codes.InvalidArgument, "stack_id")
	})
}

func TestStorage_LimitsNameFieldSizeAndLimit(t *testing.T) {
	cfg := testConfig(t, false)
	cfg.MaxKeyBytes = 32
	cfg.MaxObjectBytes = 1000
	e := start(t, cfg, nil)
	stack := newStack(t)
	e.createBox(stack, "b", false)
	_, err := e.put(stack, "b", strings.Repeat("k", 33), "", stringReader("x"), nil)
	wantCode(t, err, codes.InvalidArgument, "key: 33 bytes is over the limit of 32")
	if rpcerr.ReasonOf(err) != rpcerr.RequestTooLarge {
		t.Fatalf("reason %q", rpcerr.ReasonOf(err))
	}
	_, err = e.put(stack, "b", "big", "", bytes.NewReader(make([]byte, 1001)), nil)
	wantCode(t, err, codes.InvalidArgument, "object: body is over the limit of 1000 bytes")
	size := uint64(5000)
	_, err = e.put(stack, "b", "big", "", bytes.NewReader(make([]byte, 10)), &size)
	wantCode(t, err, codes.InvalidArgument, "size: 5000 bytes is over the limit of 1000")
	size = 20
	_, err = e.put(stack, "b", "short", "", bytes.NewReader(make([]byte, 10)), &size)
	wantCode(t, err, codes.InvalidArgument, "body is 10 bytes, the declared size is 20")
	for _, k := range []string{"big", "short"} {
		_, err := e.get(stack, "b", k, 0, -1, &bytes.Buffer{})
		wantCode(t, err, codes.NotFound, "not found")
	}
	if _, err := e.put(stack, "b", "fits", "", bytes.NewReader(make([]byte, 1000)), nil); err != nil {
		t.Fatal(err)
	}
	if e.srv.StoredBytes(stack) != 1000 {
		t.Fatalf("stored %d", e.srv.StoredBytes(stack))
	}
	_, err = e.cli.SignURL(context.Background(), &storagev1.SignURLRequest{StackId: stack.Bytes(), Box: "b", Key: "k",
		Method: storagev1.SignURLMethod_SIGN_URL_METHOD_PUT, MaxBytes: 1001})
	wantCode(t, err, codes.InvalidArgument, "max_bytes: 1001 is over the limit of 1000")
}

func TestStorage_DeleteStackDataRemovesBoxesAndObjects(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		e := start(t, testConfig(t, s3), nil)
		stack := newStack(t)
		e.createBox(stack, "one", true)
		e.createBox(stack, "two", false)
		e.mustPut(stack, "one", "a", "", "aaa")
		e.mustPut(stack, "two", "b/c", "", "bb")
		e.mustPut(stack, "two", "d", "", "d")
		lb, err := e.cli.ListBoxes(context.Background(), &storagev1.ListBoxesRequest{StackId: stack.Bytes()})
		if err != nil || strings.Join(lb.GetBoxes(), ",") != "one,two" || !lb.GetBoxInfos()[0].GetPublic() || lb.GetBoxInfos()[1].GetPublic() {
			t.Fatalf("ListBoxes %v %v", lb, err)
		}
		if e.srv.StoredBytes(stack) != 6 {
			t.Fatalf("stored %d", e.srv.StoredBytes(stack))
		}
		resp, err := e.cli.DeleteStackData(context.Background(), &storagev1.DeleteStackDataRequest{StackId: stack.Bytes()})
		if err != nil || resp.GetBoxesDeleted() != 2 || resp.GetObjectsDeleted() != 3 {
			t.Fatalf("DeleteStackData %v %v", resp, err)
		}
		lb, err = e.cli.ListBoxes(context.Background(), &storagev1.ListBoxesRequest{StackId: stack.Bytes()})
		if err != nil || len(lb.GetBoxes()) != 0 || e.srv.StoredBytes(stack) != 0 {
			t.Fatalf("after: %v %v stored %d", lb, err, e.srv.StoredBytes(stack))
		}
		_, err = e.put(stack, "one", "a", "", stringReader("x"), nil)
		wantCode(t, err, codes.NotFound, "does not exist")
		resp, err = e.cli.DeleteStackData(context.Background(), &storagev1.DeleteStackDataRequest{StackId: stack.Bytes()})
		if err != nil || resp.GetBoxesDeleted() != 0 {
			t.Fatalf("again %v %v", resp, err)
		}
		e.createBox(stack, "one", false)
		db, err := e.cli.DeleteBox(context.Background(), &storagev1.DeleteBoxRequest{StackId: stack.Bytes(), Box: "one"})
		if err != nil || !db.GetDeleted() {
			t.Fatalf("DeleteBox %v %v", db, err)
		}
	})
}

func TestStorage_RestartKeepsObjectsCountsAndSigningKey(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		cfg := testConfig(t, s3)
		e := start(t, cfg, nil)
		stack := newStack(t)
		e.createBox(stack, "keep", true)
		e.mustPut(stack, "keep", "a", "text/plain", "persisted")
		e.mustPut(stack, "keep", "b", "", strings.Repeat("z", 100))
		signed, err := e.cli.SignURL(context.Background(), &storagev1.SignURLRequest{StackId: stack.Bytes(), Box: "keep", Key: "a",
			Method: storagev1.SignURLMethod_SIGN_URL_METHOD_GET})
		if err != nil {
			t.Fatal(err)
		}
		e.close()

		e2 := start(t, cfg, e.clock)
		var buf bytes.Buffer
		gi, err := e2.get(stack, "keep", "a", 0, -1, &buf)
		if err != nil || buf.String() != "persisted" || gi.GetObject().GetContentType() != "text/plain" {
			t.Fatalf("after restart: %q %v %v", buf.String(), gi, err)
		}
		if n := e2.srv.StoredBytes(stack); n != 109 {
			t.Fatalf("recounted %d stored bytes, want 109", n)
		}
		// The signing key persisted in data_dir: the old URL still works on the new port.
		old := signed.GetUrl()
		u := "http://" + e2.srv.HTTPAddr() + old[strings.Index(old, "/signed/"):]
		if code, body := httpGet(t, u, nil); code != 200 || body != "persisted" {
			t.Fatalf("old signed URL: %d %q", code, body)
		}
	})
}

func TestStorage_MeteringCountsExactBytes(t *testing.T) {
	backends(t, func(t *testing.T, s3 bool) {
		e := start(t, testConfig(t, s3), nil)
		stack, other := newStack(t), newStack(t)
		e.createBox(stack, "m", true)
		e.createBox(other, "m", false)
		e.mustPut(stack, "m", "a", "", strings.Repeat("a", 1000))        // 1000 in
		e.get(stack, "m", "a", 100, 50, &bytes.Buffer{})                 // 50 out
		httpGet(t, "http://"+e.srv.HTTPAddr()+"/"+stack.String()+"/m/a", // 1000 out
			map[string]string{})
		httpGet(t, "http://"+e.srv.HTTPAddr()+"/"+stack.String()+"/m/a", // 10 out
			map[string]string{"Range": "bytes=0-9"})
		e.mustPut(other, "m", "b", "", "xyz")
		e.clock.Advance(10_000_000_000)                          // 10 s with 1000 bytes stored
		e.mustPut(stack, "m", "a", "", strings.Repeat("a", 400)) // 400 in; now 400 stored
		e.clock.Advance(5_000_000_000)                           // 5 s with 400 bytes
		if err := e.srv.FlushUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := e.usage.Total(stack, typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES); got != 1000+50+1000+10+400 {
			t.Errorf("traffic %d, want 2460", got)
		}
		if got := e.usage.Total(stack, typesv1.UsageKind_USAGE_KIND_STORAGE_STORED_BYTE_SECONDS); got != 1000*10+400*5 {
			t.Errorf("stored byte-seconds %d, want 12000", got)
		}
		if got := e.usage.Total(other, typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES); got != 3 {
			t.Errorf("other stack's traffic %d, want 3", got)
		}
		if got := e.usage.Total(other, typesv1.UsageKind_USAGE_KIND_STORAGE_STORED_BYTE_SECONDS); got != 3*15 {
			t.Errorf("other stack's byte-seconds %d, want 45", got)
		}
	})
}
