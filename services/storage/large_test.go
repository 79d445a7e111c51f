package storage

import (
	"context"
	"crypto/sha256"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// patternReader yields n deterministic bytes without holding them.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := int(min(int64(len(b)), p.n-p.off))
	for i := range k {
		x := uint64(p.off + int64(i))
		b[i] = byte(x*2654435761>>13) ^ byte(x>>8)
	}
	p.off += int64(k)
	return k, nil
}

// heapWatch samples HeapInuse until stopped and reports the peak.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// TestStorage_LargeObjectStreamsWithBoundedMemory puts and gets a 64 MiB
// object through gRPC to versitygw with 5 MiB parts: the heap in use (of
// client, service and minio-go together, in this process) grows by far
// less than the object.
func TestStorage_LargeObjectStreamsWithBoundedMemory(t *testing.T) {
	const size = 64 << 20
	cfg := testConfig(t, true)
	cfg.MaxObjectBytes = 1 << 30
	e := start(t, cfg, nil)
	stack := newStack(t)
	e.createBox(stack, "big", false)

	// A low GC percent keeps garbage (the spent chunks) from passing for
	// memory in use, so HeapInuse tracks what is live.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := heapWatch()
	resp, err := e.put(stack, "big", "blob", "application/x-blob", &patternReader{n: size}, nil)
	if err != nil || resp.GetObject().GetSize() != size {
		t.Fatalf("put: %v %v", resp, err)
	}
	h := sha256.New()
	gi, err := e.get(stack, "big", "blob", 0, -1, h)
	peak := stop()
	if err != nil || gi.GetLength() != size {
		t.Fatalf("get: %v %v", gi, err)
	}
	want := sha256.New()
	io.Copy(want, &patternReader{n: size})
	if string(h.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("content differs")
	}
	growth := int64(peak) - int64(base)
	t.Logf("heap in use grew by %.1f MiB for a %d MiB object", float64(growth)/(1<<20), size>>20)
	if growth > 24<<20 { // two 5 MiB part buffers, gRPC windows and slack
		t.Fatalf("heap grew by %d bytes, want well under the object's %d", growth, size)
	}
	if e.srv.StoredBytes(stack) != size {
		t.Fatalf("stored %d", e.srv.StoredBytes(stack))
	}
}

// BenchmarkPutGet64MiB moves a 64 MiB object in and out of versitygw
// through the storage service's gRPC API and, in the same run, through
// minio-go directly; MB/s counts both directions.
func BenchmarkPutGet64MiB(b *testing.B) {
	const size = 64 << 20
	cfg := testConfig(b, true)
	cfg.S3PartSize = 16 << 20
	cfg.MaxObjectBytes = 1 << 30
	e := start(b, cfg, nil)
	stack := newStack(b)
	e.createBox(stack, "bench", false)

	b.Run("storage-grpc", func(b *testing.B) {
		b.SetBytes(2 * size)
		for b.Loop() {
			if _, err := e.put(stack, "bench", "obj", "", &patternReader{n: size}, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := e.get(stack, "bench", "obj", 0, -1, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("minio-direct", func(b *testing.B) {
		mc, err := minio.New(cfg.S3Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.S3AccessKey, cfg.S3SecretKey, "")})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.SetBytes(2 * size)
		for b.Loop() {
			if _, err := mc.PutObject(ctx, cfg.S3Bucket, "direct", &patternReader{n: size}, -1, minio.PutObjectOptions{PartSize: uint64(cfg.S3PartSize)}); err != nil {
				b.Fatal(err)
			}
			obj, err := mc.GetObject(ctx, cfg.S3Bucket, "direct", minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, obj); err != nil {
				b.Fatal(err)
			}
			obj.Close()
		}
	})
}
