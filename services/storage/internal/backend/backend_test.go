package backend_test

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/muprotocol/mu/services/storage/internal/backend"
	"github.com/muprotocol/mu/services/storage/internal/backend/backendtest"
	"github.com/muprotocol/mu/services/storage/internal/s3test"
)

func TestMain(m *testing.M) { os.Exit(s3test.Run(m)) }

func TestDir_Contract(t *testing.T) {
	backendtest.Run(t, 0, func(t *testing.T) backend.Backend {
		d, err := backend.OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestS3_ContractOnVersitygw(t *testing.T) {
	srv := s3test.Shared(t)
	backendtest.Run(t, backend.MinPartSize, func(t *testing.T) backend.Backend {
		b, err := backend.OpenS3(context.Background(), backend.S3Config{
			Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
			Bucket: s3test.Bucket(), PartSize: backend.MinPartSize, CreateBucket: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestDir_IndexSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := backend.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "a/b", "../../etc/passwd", "s/x/box/k"} {
		if _, err := d.Put(ctx, n, stringsReader(n), backend.PutOptions{ContentType: "text/x"}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(root+"/tmp/put-leftover", []byte("torn"), 0o644)
	d2, err := backend.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	page, _, err := d2.List(ctx, "", "", 10)
	if err != nil || len(page) != 4 || page[0].Name != "../../etc/passwd" || page[3].Name != "s/x/box/k" {
		t.Fatalf("reopened index %+v %v", page, err)
	}
	if st, err := d2.Stat(ctx, "a/b"); err != nil || st.Size != 3 || st.ContentType != "text/x" {
		t.Fatalf("stat %+v %v", st, err)
	}
	if _, err := os.Stat(root + "/tmp/put-leftover"); !os.IsNotExist(err) {
		t.Fatalf("leftover temp file kept: %v", err)
	}
}

func stringsReader(s string) *stringReader { return &stringReader{s: s} }

type stringReader struct{ s string }

func (r *stringReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}
