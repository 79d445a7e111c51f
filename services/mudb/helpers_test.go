package mudb

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/usage"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// testConfig is DefaultConfig on free loopback ports with short waits.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.MaxTxnDuration = time.Second // DeleteTable waits this long
	cfg.TTLSweepInterval = 50 * time.Millisecond
	cfg.Usage.FlushInterval = 10 * time.Millisecond
	return cfg
}

type testNode struct {
	s     *Server
	c     mudbv1.MudbServiceClient
	usage *usage.Memory
}

// start runs a node with cfg and a Memory usage sink, closed at cleanup.
func start(t testing.TB, cfg Config) *testNode {
	t.Helper()
	mem := usage.NewMemory()
	s, err := New(cfg, Deps{Usage: mem})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes)))
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testNode{s: s, c: mudbv1.NewMudbServiceClient(conn), usage: mem}
}

func newStack(t testing.TB) ids.StackID {
	t.Helper()
	id, _, err := ids.NewStackID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (n *testNode) create(t testing.TB, stack ids.StackID, tables ...string) {
	t.Helper()
	for _, tb := range tables {
		if _, err := n.c.CreateTable(ctxT(t), &mudbv1.CreateTableRequest{StackId: stack.Bytes(), Table: tb}); err != nil {
			t.Fatalf("create %q: %v", tb, err)
		}
	}
}

func (n *testNode) put(t testing.TB, stack ids.StackID, table, key, value string) {
	t.Helper()
	if _, err := n.c.Put(ctxT(t), &mudbv1.PutRequest{StackId: stack.Bytes(), Table: table, Key: []byte(key), Value: []byte(value)}); err != nil {
		t.Fatalf("put %s/%s: %v", table, key, err)
	}
}

// get returns the value and whether it is present.
func (n *testNode) get(t testing.TB, stack ids.StackID, table, key string) (string, bool) {
	t.Helper()
	resp, err := n.c.Get(ctxT(t), &mudbv1.GetRequest{StackId: stack.Bytes(), Table: table, Key: []byte(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", table, key, err)
	}
	return string(resp.Value), resp.Value != nil
}

// scanAll pages through a scan with limit and returns every key.
func (n *testNode) scanAll(t testing.TB, stack ids.StackID, table, prefix string, limit uint32) []string {
	t.Helper()
	var keys []string
	var cursor []byte
	for {
		resp, err := n.c.ScanKeys(ctxT(t), &mudbv1.ScanKeysRequest{StackId: stack.Bytes(), Table: table, KeyPrefix: []byte(prefix), Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatalf("scan keys: %v", err)
		}
		for _, k := range resp.Keys {
			keys = append(keys, string(k))
		}
		if len(resp.NextCursor) == 0 {
			return keys
		}
		cursor = resp.NextCursor
	}
}

// rawKeys counts the store's keys under prefix, whatever their kind.
func (n *testNode) rawKeys(t testing.TB, prefix []byte) int {
	t.Helper()
	txn, err := n.s.kv.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Rollback()
	end := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff)
	it, err := txn.Iter(prefix, end)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	c := 0
	for it.Valid() && bytes.HasPrefix(it.Key(), prefix) {
		c++
		if err := it.Next(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// wantCode fails t unless err has code and, when reason is set, that
// ErrorInfo reason, and its message contains every string of msg.
func wantCode(t testing.TB, what string, err error, code codes.Code, reason rpcerr.Reason, msg ...string) {
	t.Helper()
	if status.Code(err) != code || (reason != "" && rpcerr.ReasonOf(err) != reason) {
		t.Errorf("%s: got %v (reason %q), want %v %s", what, err, rpcerr.ReasonOf(err), code, reason)
		return
	}
	for _, m := range msg {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: %v does not say %q", what, err, m)
		}
	}
}

// flushUsage waits until the node's usage reached its sink.
func (n *testNode) flushUsage(t testing.TB) {
	t.Helper()
	if err := n.s.FlushUsage(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every 20ms until it holds or 10s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testutilCounter(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
