package runtime

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/gobuild"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// dbFunc builds testdata/dbfunc, a Go function made with the SDK (cached
// between runs).
func dbFunc(t *testing.T) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go function")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	path, err := gobuild.Cached(ctx, filepath.Join("testdata", "dbfunc"), gobuild.TestCacheDir(), gobuild.Reactor)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dbManifest declares the tables items and other beside the function fn.
func dbManifest(binary string) []byte {
	return []byte(fmt.Sprintf(`name: dbtest
version: "1"
services:
  - type: Function
    name: fn
    binary: %s
    runtime: wasi1.0
    memory_limit: 32MiB
  - type: KeyValueTable
    name: items
  - type: KeyValueTable
    name: other
  - type: Gateway
    name: gw
    endpoints:
      /ops: {get: fn.ops}
`, binary))
}

// recordingSink keeps every usage record.
type recordingSink struct {
	mu   sync.Mutex
	recs []usage.Record
}

func (r *recordingSink) Report(_ context.Context, recs ...usage.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, recs...)
	return nil
}

type dbHarness struct {
	*harness
	sink *recordingSink
}

// newDBHarness starts a runtime with a 64 KiB frame limit; edit adjusts the
// config, deps the collaborators.
func newDBHarness(t *testing.T, edit func(*Config), deps Deps) *dbHarness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.MaxFrameSize = 64 << 10
	if edit != nil {
		edit(&cfg)
	}
	sink := &recordingSink{}
	deps.Usage = sink
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &dbHarness{harness: &harness{srv: srv, client: runtimev1.NewRuntimeServiceClient(conn), conn: conn}, sink: sink}
}

func (h *dbHarness) deployDB(t *testing.T, id ids.StackID, rev uint64, bin []byte) error {
	t.Helper()
	bid := ids.BinaryID(bin)
	_, err := h.client.Deploy(context.Background(), &runtimev1.DeployRequest{
		Stack:    &runtimev1.Stack{Id: id.Bytes(), Revision: rev, Manifest: dbManifest(bid)},
		Binaries: []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: bin}},
	})
	return err
}

// invoke calls fn.<handler> and returns the response body, failing the
// test on any error.
func (h *dbHarness) invoke(t *testing.T, id ids.StackID, handler, query string, body []byte) string {
	t.Helper()
	resp := h.invokeRaw(t, id, handler, query, body)
	if resp.GetError() != nil || resp.GetResponse().GetStatus() != 200 && resp.GetResponse().GetStatus() != 204 {
		t.Fatalf("fn.%s: %v", handler, resp)
	}
	return string(resp.GetResponse().GetBody())
}

func (h *dbHarness) invokeRaw(t *testing.T, id ids.StackID, handler, query string, body []byte) *runtimev1.InvokeResponse {
	t.Helper()
	req := &typesv1.HttpRequest{Method: "GET", Body: body}
	if query != "" {
		k, v, _ := strings.Cut(query, "=")
		req.QueryParams = map[string]string{k: v}
	}
	resp, err := h.client.Invoke(context.Background(), &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "fn." + handler, Request: req})
	if err != nil {
		t.Fatalf("invoke fn.%s: %v", handler, err)
	}
	return resp
}

const wantOpsTranscript = `get a: 1 true
get nope: false
cas c absent: "" true
cas c wrong: "3" false
cas c right: "3" true
batch get: items/a=1,other/o1=x
scan (first page only): k00=v0,k01=v1,k02=v2,k03=v3
scan keys limit 2: k00,k01
scan page 1: k00=v0,k01=v1,k02=v2 more=true
scan page 2: k03=v3,k04=v4,k05=v5 more=true
scan page 3: k06=v6,k07=v7,k08=v8 more=true
scan page 4: k09=v9 more=false
scan keys page 1: k00,k01,k02,k03
scan keys page 2: k04,k05,k06,k07
scan keys page 3: k08,k09
all: k00,k01,k02,k03,k04,k05,k06,k07,k08,k09
keys: a,b,c,k00,k01,k02,k03,k04,k05,k06,k07,k08,k09,s,t
batch scan: items/k00,items/k01,other/o1,other/o2
batch scan keys: other/o1,other/o2,other/o3,other/o4,items/k09
batch scan page 1: items k00=v0,k01=v1,k02=v2,k03=v3
batch scan page 1: other o1=x,o2=y,o3=z,o4=w
batch scan page 2: items k04=v4,k05=v5,k06=v6,k07=v7
batch scan page 2: other o5=v
batch scan page 3: items k08=v8,k09=v9
batch scan keys page: other o1,o2 more=true
batch scan keys page: items  more=false
tables: items,other
items left: c,s,t
other left: o3,o4,o5
`

// TestDB_FunctionRunsEveryOperationOnMudb drives a real SDK function
// through every db operation, paging and TTLs included, against a muDB
// reached through MudbAddr, and checks what muDB saw: only the
// deployment's stack id, the declared tables created at deploy, the TTLs;
// and that the runtime reported no db usage of its own.
func TestDB_FunctionRunsEveryOperationOnMudb(t *testing.T) {
	bin := dbFunc(t)
	fake := newFakeMudb()
	addr := serveFakeMudb(t, fake)
	h := newDBHarness(t, func(c *Config) { c.MudbAddr = addr }, Deps{})
	id := ids.StackID{0xdb, 1}
	if err := h.deployDB(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	stack := hex.EncodeToString(id.Bytes())
	if _, _, created, _ := fake.snapshot(); strings.Join(created, " ") != stack+"/items "+stack+"/other" {
		t.Fatalf("CreateTable calls at deploy: %v", created)
	}

	if got := h.invoke(t, id, "ops", "", nil); got != wantOpsTranscript {
		t.Fatalf("transcript:\n%s\nwant:\n%s", got, wantOpsTranscript)
	}
	for key, want := range map[string]time.Duration{"items/s": 90 * time.Second, "items/t": 2 * time.Second, "other/o4": time.Minute, "other/o5": time.Hour, "items/c": 0} {
		table, k, _ := strings.Cut(key, "/")
		if got := fake.ttlOf(id.Bytes(), table, k); got != want {
			t.Errorf("ttl of %s = %v, want %v", key, got, want)
		}
	}
	stacks, _, _, _ := fake.snapshot()
	if len(stacks) != 1 || stacks[stack] == 0 {
		t.Errorf("muDB saw stack ids %v, want only %s", stacks, stack)
	}

	// A neighbour stack running the same binary reaches only its own data.
	other := ids.StackID{0xdb, 2}
	if err := h.deployDB(t, other, 1, bin); err != nil {
		t.Fatal(err)
	}
	if got := h.invoke(t, other, "get", "key=c", nil); got != " false" {
		t.Errorf("neighbour reads c: %q", got)
	}
	if got := h.invoke(t, id, "get", "key=c", nil); got != "4 true" {
		t.Errorf("owner reads c: %q", got)
	}

	// A redeploy creates the tables again (idempotent); an undeploy deletes nothing.
	if err := h.deployDB(t, id, 2, bin); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Undeploy(context.Background(), &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
		t.Fatal(err)
	}
	if _, _, created, deletes := fake.snapshot(); len(created) != 6 || deletes != 0 {
		t.Errorf("after redeploy and undeploy: %d CreateTable calls (want 6), %d deletes (want 0)", len(created), deletes)
	}
	if err := h.deployDB(t, id, 3, bin); err != nil {
		t.Fatal(err)
	}
	if got := h.invoke(t, id, "get", "key=c", nil); got != "4 true" {
		t.Errorf("data after undeploy and deploy: %q", got)
	}

	// Usage: megabyte-instructions only; muDB reports db reads and writes.
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.sink.mu.Lock()
	for _, r := range h.sink.recs {
		if r.Kind != usage.FunctionMBInstructions {
			t.Errorf("the runtime reported %v usage %+v", r.Kind, r)
		}
	}
	n := len(h.sink.recs)
	h.sink.mu.Unlock()
	if n != 4 {
		t.Errorf("%d usage records, want 4 (one per call)", n)
	}

	for _, tc := range []struct {
		kind string
		want float64
	}{{"Put", 2}, {"PutExpiring", 2}, {"ScanPage", 4 + 3}, {"ScanKeysPage", 3 + 4}, {"BatchScanPage", 3}, {"BatchScanKeysPage", 1}, {"TableList", 1}, {"Get", 2 + 3}} {
		if got := testutil.ToFloat64(h.srv.metrics.dbRequests.WithLabelValues(tc.kind, dbOK)); got != tc.want {
			t.Errorf("mu_runtime_db_requests_total{kind=%q,outcome=\"ok\"} = %v, want %v", tc.kind, got, tc.want)
		}
	}
}

// TestDB_ErrorsReachTheFunctionAsDbError checks the failures a function can
// handle: an undeclared table (muDB is never asked), muDB's own refusals
// (its status text), and a reply too large for the frame limit.
func TestDB_ErrorsReachTheFunctionAsDbError(t *testing.T) {
	bin := dbFunc(t)
	fake := newFakeMudb()
	// 3 MiB frames: a 2 MB value reaches muDB, a page of four 1 MB values does not fit.
	h := newDBHarness(t, func(c *Config) { c.MudbAddr = serveFakeMudb(t, fake); c.MaxFrameSize = 3 << 20 }, Deps{})
	id := ids.StackID{0xdb, 3}
	if err := h.deployDB(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ handler, want string }{
		{"undeclared", `Put: table "secrets" is not declared in the stack's manifest (add a KeyValueTable service named "secrets")`},
		{"undeclared_batch", `BatchScanPage: table "secrets" is not declared in the stack's manifest (add a KeyValueTable service named "secrets")`},
		{"big_value", "Put: value of 2000000 bytes exceeds max_value_bytes 1048576"},
		{"big_page", "ScanPage: the ScanPage reply of 4000058 bytes exceeds the function protocol's frame limit of 3145728 bytes; read fewer entries per request"},
		{"bad_cursor", "ScanPage: cursor does not belong to this scan"},
	} {
		if got := h.invoke(t, id, tc.handler, "", nil); got != tc.want {
			t.Errorf("fn.%s:\n got %q\nwant %q", tc.handler, got, tc.want)
		}
	}
	if _, named, _, _ := fake.snapshot(); named["secrets"] != 0 {
		t.Errorf("muDB was asked about the undeclared table %d times", named["secrets"])
	}
	for _, tc := range []struct {
		kind, outcome string
		want          float64
	}{{"Put", dbUndeclared, 1}, {"BatchScanPage", dbUndeclared, 1}, {"Put", dbFailed, 1}, {"ScanPage", dbTooLarge, 1}, {"ScanPage", dbFailed, 1}} {
		if got := testutil.ToFloat64(h.srv.metrics.dbRequests.WithLabelValues(tc.kind, tc.outcome)); got != tc.want {
			t.Errorf("db requests {%s, %s} = %v, want %v", tc.kind, tc.outcome, got, tc.want)
		}
	}
}

// TestDB_MudbThatNeverAnswersEndsTheCallAtItsDeadline: a db request still
// pending at the call's deadline ends the call as a deadline, billed for
// its fuel, and the next call is served.
func TestDB_MudbThatNeverAnswersEndsTheCallAtItsDeadline(t *testing.T) {
	bin := dbFunc(t)
	fake := newFakeMudb()
	h := newDBHarness(t, func(c *Config) { c.MudbAddr = serveFakeMudb(t, fake); c.CallTimeout = time.Second }, Deps{})
	id := ids.StackID{0xdb, 4}
	if err := h.deployDB(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp := h.invokeRaw(t, id, "get", "key=block", nil)
	if resp.GetError().GetKind() != runtimev1.InvokeError_KIND_DEADLINE_EXCEEDED || resp.GetFuelUsed() == 0 {
		t.Fatalf("blocked Get: %v", resp)
	}
	if !strings.Contains(resp.GetError().GetMessage(), "during Get") || time.Since(start) > 10*time.Second {
		t.Errorf("error %q after %v", resp.GetError().GetMessage(), time.Since(start))
	}
	if got := h.invoke(t, id, "get", "key=a", nil); got != " false" {
		t.Errorf("next call: %q", got)
	}
	if got := testutil.ToFloat64(h.srv.metrics.dbRequests.WithLabelValues("Get", dbDeadline)); got != 1 {
		t.Errorf("deadline outcomes %v, want 1", got)
	}
}

// TestDB_WithoutMudbStacksDeployAndDbCallsFail: a node without muDB (a
// laptop) deploys a stack that declares tables; its db calls get a DbError.
func TestDB_WithoutMudbStacksDeployAndDbCallsFail(t *testing.T) {
	bin := dbFunc(t)
	h := newDBHarness(t, nil, Deps{})
	id := ids.StackID{0xdb, 5}
	if err := h.deployDB(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	if got := h.invoke(t, id, "put", "key=k", []byte("v")); got != "Put: muDB is not configured on this runtime node (Put)" {
		t.Errorf("Put without muDB: %q", got)
	}
}

// closedAddr returns a 127.0.0.1 address no service answers on.
func closedAddr(t *testing.T) string {
	t.Helper()
	// The port stays bound for the test, so no other server can take it
	// meanwhile; every connection is hung up at once, which gRPC reports
	// as Unavailable, as it does a refused one.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return lis.Addr().String()
}

// TestDB_DeployFailsWhenMudbIsUnreachable: the tables cannot be created,
// so the revision is refused with Unavailable and nothing is deployed.
func TestDB_DeployFailsWhenMudbIsUnreachable(t *testing.T) {
	bin := dbFunc(t)
	h := newDBHarness(t, func(c *Config) { c.MudbAddr = closedAddr(t) }, Deps{})
	id := ids.StackID{0xdb, 6}
	err := h.deployDB(t, id, 1, bin)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `muDB could not create table "items": Unavailable`) {
		t.Fatalf("deploy with muDB down: %v", err)
	}
	if h.srv.Stacks() != 0 {
		t.Error("a refused deploy left a stack behind")
	}
	// A stack without tables needs no muDB.
	if err := h.deploy(t, ids.StackID{0xdb, 7}, 1, wat(t, okWAT)); err != nil {
		t.Errorf("deploy without tables: %v", err)
	}
}

// TestDB_DepsMudbTakesPrecedence: an in-process client in Deps wins over
// MudbAddr.
func TestDB_DepsMudbTakesPrecedence(t *testing.T) {
	bin := dbFunc(t)
	fake := newFakeMudb()
	conn, err := grpc.NewClient(serveFakeMudb(t, fake), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := newDBHarness(t, func(c *Config) { c.MudbAddr = closedAddr(t) }, Deps{Mudb: mudbv1.NewMudbServiceClient(conn)})
	id := ids.StackID{0xdb, 8}
	if err := h.deployDB(t, id, 1, bin); err != nil {
		t.Fatal(err)
	}
	h.invoke(t, id, "put", "key=k", []byte("v"))
	if got := h.invoke(t, id, "get", "key=k", nil); got != "v true" {
		t.Errorf("get: %q", got)
	}
}

// stubMudb answers every RPC the bridge unit tests use with err, after
// recording the request.
type stubMudb struct {
	mudbv1.MudbServiceClient
	err  error
	puts []*mudbv1.PutRequest
	cas  []*mudbv1.CompareAndSwapRequest
}

func (s *stubMudb) Put(_ context.Context, r *mudbv1.PutRequest, _ ...grpc.CallOption) (*mudbv1.PutResponse, error) {
	s.puts = append(s.puts, r)
	if s.err != nil {
		return nil, s.err
	}
	return &mudbv1.PutResponse{}, nil
}

func (s *stubMudb) CompareAndSwap(_ context.Context, r *mudbv1.CompareAndSwapRequest, _ ...grpc.CallOption) (*mudbv1.CompareAndSwapResponse, error) {
	s.cas = append(s.cas, r)
	if s.err != nil {
		return nil, s.err
	}
	return &mudbv1.CompareAndSwapResponse{PreviousValue: []byte{}, IsSwapped: true}, nil
}

func stubStack(c mudbv1.MudbServiceClient, maxFrame int) *stackDB {
	m := &manifest.Manifest{Tables: []manifest.KeyValueTable{{Name: "t"}}}
	return (&dbBridge{client: c, maxFrame: maxFrame}).forStack(ids.StackID{5}, m)
}

func TestStackDB_MapsMudbErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.NotFound, `table "t" does not exist`), `table "t" does not exist`},
		{status.Error(codes.InvalidArgument, "key of 5000 bytes exceeds max_key_bytes 4096"), "key of 5000 bytes exceeds max_key_bytes 4096"},
		{status.Error(codes.Unavailable, "connection refused"), "muDB is unavailable: connection refused"},
		{status.Error(codes.Internal, "tikv: region error"), "muDB failed: tikv: region error"},
		{status.Error(codes.DeadlineExceeded, "tikv timeout"), "muDB timed out: tikv timeout"},
		{errors.New("plain"), "muDB failed: plain"},
		{status.Error(codes.InvalidArgument, "bad \xff byte"), "bad \uFFFD byte"},
		{status.Error(codes.InvalidArgument, strings.Repeat("é", 3000)), strings.Repeat("é", 2048) + " …[truncated]"},
	} {
		db := stubStack(&stubMudb{err: tc.err}, fnproto.DefaultMaxFrameSize)
		reply, err := db.serve(context.Background(), &fnproto.Put{Table: "t", Key: []byte("k")})
		de, ok := reply.(*fnproto.DbError)
		if err != nil || !ok || de.Error != tc.want {
			t.Errorf("%v: (%#v, %v), want DbError %q", tc.err, reply, err, tc.want)
		}
	}
}

func TestStackDB_EndedContextIsTheCallsDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	db := stubStack(&stubMudb{err: status.Error(codes.Canceled, "context canceled")}, fnproto.DefaultMaxFrameSize)
	if reply, err := db.serve(ctx, &fnproto.Put{Table: "t", Key: []byte("k")}); reply != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("(%v, %v), want the context's error", reply, err)
	}
}

func TestStackDB_TTLsAndEmptyExpectedValue(t *testing.T) {
	stub := &stubMudb{}
	db := stubStack(stub, fnproto.DefaultMaxFrameSize)
	ctx := context.Background()
	reply, _ := db.serve(ctx, &fnproto.PutExpiring{Table: "t", Key: []byte("k")})
	if de, ok := reply.(*fnproto.DbError); !ok || !strings.Contains(de.Error, "ttl_seconds must be at least 1") || len(stub.puts) != 0 {
		t.Errorf("ttl 0: %#v after %d puts", reply, len(stub.puts))
	}
	db.serve(ctx, &fnproto.PutExpiring{Table: "t", Key: []byte("k"), TTLSeconds: 1<<64 - 1})
	db.serve(ctx, &fnproto.PutExpiring{Table: "t", Key: []byte("k"), TTLSeconds: 7, IsAtomic: true})
	if len(stub.puts) != 2 || stub.puts[0].GetTtl().GetSeconds() != maxDurationSeconds || !stub.puts[0].GetTtl().IsValid() ||
		stub.puts[1].GetTtl().AsDuration() != 7*time.Second || !stub.puts[1].GetIsAtomic() {
		t.Errorf("puts %v", stub.puts)
	}
	// An expected empty value stays present (nil would mean "must not exist").
	empty := []byte(nil)
	reply, _ = db.serve(ctx, &fnproto.CompareAndSwap{Table: "t", Key: []byte("k"), PreviousValue: &empty})
	db.serve(ctx, &fnproto.CompareAndSwap{Table: "t", Key: []byte("k")})
	if len(stub.cas) != 2 || stub.cas[0].PreviousValue == nil || len(stub.cas[0].PreviousValue) != 0 || stub.cas[1].PreviousValue != nil {
		t.Errorf("CAS requests %v", stub.cas)
	}
	if r, ok := reply.(*fnproto.CasResult); !ok || r.PreviousValue == nil || !r.IsSwapped {
		t.Errorf("CAS reply %#v: the empty previous value must stay present", reply)
	}
}

// TestReplySize_MatchesTheEncoding keeps replySize in step with the codec
// for every db reply kind.
func TestReplySize_MatchesTheEncoding(t *testing.T) {
	v := []byte("value")
	kvs := []fnproto.KeyValue{{Key: []byte("k"), Value: v}, {Key: []byte("kk")}}
	for _, m := range []fnproto.Message{
		&fnproto.DbError{Error: "nope"},
		&fnproto.EmptyResult{},
		&fnproto.SingleResult{}, &fnproto.SingleResult{Item: &v},
		&fnproto.CasResult{}, &fnproto.CasResult{PreviousValue: &v, IsSwapped: true},
		&fnproto.ListResult{List: [][]byte{v, nil}},
		&fnproto.KeyValueListResult{List: kvs},
		&fnproto.TableKeyListResult{List: []fnproto.TableKey{{Table: "t", Key: v}}},
		&fnproto.TableKeyValueListResult{List: []fnproto.TableKeyValue{{Table: "tt", Key: v, Value: v}}},
		&fnproto.KeyValuePageResult{List: kvs, NextCursor: []byte("c")},
		&fnproto.KeyPageResult{List: [][]byte{v}, NextCursor: []byte("cc")},
		&fnproto.BatchScanPageResult{Results: []fnproto.TableKeyValuePage{{Table: "t", List: kvs, NextCursor: v}, {}}},
		&fnproto.BatchScanKeysPageResult{Results: []fnproto.TableKeyPage{{Table: "t", Keys: [][]byte{v}, NextCursor: v}, {}}},
	} {
		body, err := fnproto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := replySize(m); got != len(body) {
			t.Errorf("replySize(%T) = %d, encoding is %d bytes", m, got, len(body))
		}
	}
}

func TestConfig_MudbAddrIsHostPort(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	for addr, ok := range map[string]bool{"": true, "127.0.0.1:12020": true, "mudb:443": true, "mudb": false, ":12020": false} {
		cfg.MudbAddr = addr
		err := cfg.Validate()
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "mudb_addr") {
			t.Errorf("mudb_addr %q: %v", addr, err)
		}
	}
}
