package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/usage"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	"github.com/muprotocol/mu/services/storage/internal/backend"
	"github.com/muprotocol/mu/services/storage/internal/s3test"
)

func TestMain(m *testing.M) { os.Exit(s3test.Run(m)) }

// clock is a settable time source for Deps.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t      testing.TB
	cfg    Config
	srv    *Server
	cli    storagev1.StorageServiceClient
	conn   *grpc.ClientConn
	usage  *usage.Memory
	clock  *clock
	closed bool
}

// s3Config points cfg at a fresh bucket of the shared versitygw.
func s3Config(t testing.TB, cfg *Config) {
	vg := s3test.Shared(t)
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey = vg.Endpoint, vg.AccessKey, vg.SecretKey
	cfg.S3Bucket = s3test.Bucket()
	cfg.S3PartSize = backend.MinPartSize
}

func testConfig(t testing.TB, s3 bool) Config {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr, cfg.AdminAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.BoxCacheTTL = 0
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Usage.FlushInterval = 10 * time.Millisecond
	if s3 {
		s3Config(t, &cfg)
	}
	return cfg
}

// start starts a server on cfg; its usage goes to a Memory sink and its
// clock is c (a new one at the current time when nil).
func start(t testing.TB, cfg Config, c *clock) *env {
	t.Helper()
	if c == nil {
		c = &clock{t: time.Now().Truncate(time.Second)}
	}
	e := &env{t: t, cfg: cfg, usage: usage.NewMemory(), clock: c}
	srv, err := New(cfg, Deps{Usage: e.usage, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.conn, err = grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4<<20)))
	if err != nil {
		t.Fatal(err)
	}
	e.cli = storagev1.NewStorageServiceClient(e.conn)
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	e.conn.Close()
	if err := e.srv.Close(); err != nil {
		e.t.Errorf("close: %v", err)
	}
}

func newStack(t testing.TB) ids.StackID {
	id, _, err := ids.NewStackID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *env) createBox(stack ids.StackID, box string, public bool) {
	e.t.Helper()
	if _, err := e.cli.CreateBox(context.Background(), &storagev1.CreateBoxRequest{StackId: stack.Bytes(), Box: box, Public: public}); err != nil {
		e.t.Fatalf("CreateBox %s: %v", box, err)
	}
}

// put streams body in chunks of chunk bytes (0: 64 KiB).
func (e *env) put(stack ids.StackID, box, key, ct string, body io.Reader, size *uint64) (*storagev1.PutResponse, error) {
	ctx := context.Background()
	st, err := e.cli.Put(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&storagev1.PutRequest{Payload: &storagev1.PutRequest_Header{Header: &storagev1.PutHeader{
		StackId: stack.Bytes(), Box: box, Key: key, ContentType: ct, Size: size}}}); err != nil {
		return st.CloseAndRecv()
	}
	buf := make([]byte, 64<<10)
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if err := st.Send(&storagev1.PutRequest{Payload: &storagev1.PutRequest_Chunk{Chunk: append([]byte(nil), buf[:n]...)}}); err != nil {
				return st.CloseAndRecv()
			}
		}
		if rerr != nil {
			break
		}
	}
	return st.CloseAndRecv()
}

func (e *env) mustPut(stack ids.StackID, box, key, ct, body string) *storagev1.ObjectInfo {
	e.t.Helper()
	r, err := e.put(stack, box, key, ct, stringReader(body), nil)
	if err != nil {
		e.t.Fatalf("Put %s/%s: %v", box, key, err)
	}
	return r.GetObject()
}

// get reads an object (range offset, length<0: to the end) and returns its info and bytes.
func (e *env) get(stack ids.StackID, box, key string, off uint64, length int64, w io.Writer) (*storagev1.GetInfo, error) {
	req := &storagev1.GetRequest{StackId: stack.Bytes(), Box: box, Key: key, Offset: off}
	if length >= 0 {
		l := uint64(length)
		req.Length = &l
	}
	st, err := e.cli.Get(context.Background(), req)
	if err != nil {
		return nil, err
	}
	var info *storagev1.GetInfo
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return info, nil
		}
		if err != nil {
			return nil, err
		}
		if i := m.GetInfo(); i != nil {
			info = i
		} else {
			w.Write(m.GetChunk())
		}
	}
}

func stringReader(s string) io.Reader { return &sreader{s} }

type sreader struct{ s string }

func (r *sreader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// backends runs f against the directory backend and versitygw.
func backends(t *testing.T, f func(t *testing.T, s3 bool)) {
	t.Run("dir", func(t *testing.T) { f(t, false) })
	t.Run("s3", func(t *testing.T) { f(t, true) })
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }
