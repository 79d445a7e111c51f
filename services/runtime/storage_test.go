package runtime

import (
	"context"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
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
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
)

// storageFunc builds testdata/storagefunc (cached between runs).
func storageFunc(t *testing.T) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go function")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	path, err := gobuild.Cached(ctx, filepath.Join("testdata", "storagefunc"), gobuild.TestCacheDir(), gobuild.Reactor)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storageMemory is the function's memory_limit: well under the 20 MiB
// object the streaming test moves through it.
const storageMemory = "16MiB"

// storageManifest declares the public box files and the private box site
// beside the function fn.
func storageManifest(binary string) []byte {
	return []byte(fmt.Sprintf(`name: storagetest
version: "1"
services:
  - type: Function
    name: fn
    binary: %s
    runtime: wasi1.0
    memory_limit: %s
  - type: Storage
    name: files
    public: true
  - type: Storage
    name: site
`, binary, storageMemory))
}

// newStorageHarness starts a runtime with 2 MiB frames (SDK chunks of
// 1 MiB) talking to fake through StorageAddr.
func newStorageHarness(t *testing.T, fake *fakeStorage, edit func(*Config)) *dbHarness {
	t.Helper()
	return newDBHarness(t, func(c *Config) {
		c.MaxFrameSize = 2 << 20
		if fake != nil {
			c.StorageAddr = serveFakeStorage(t, fake)
		}
		if edit != nil {
			edit(c)
		}
	}, Deps{})
}

// deployStorage deploys the storage manifest; inline sends the binary with
// the deploy, otherwise the node must find it itself.
func deployStorage(h *dbHarness, id ids.StackID, rev uint64, bin []byte, inline bool) error {
	bid := ids.BinaryID(bin)
	req := &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Revision: rev, Manifest: storageManifest(bid)}}
	if inline {
		req.Binaries = []*runtimev1.FunctionBinary{{BinaryId: bid, Wasm: bin}}
	}
	_, err := h.client.Deploy(context.Background(), req)
	return err
}

// pseudoRandom is the byte stream of the test function's stream type.
func pseudoRandom(seed uint64, n int) []byte {
	out := make([]byte, n)
	x := seed
	for i := range out {
		x = x*6364136223846793005 + 1442695040888963407
		out[i] = byte(x >> 56)
	}
	return out
}

func TestStorage_FunctionRunsEveryOperation(t *testing.T) {
	bin := storageFunc(t)
	fake := newFakeStorage()
	h := newStorageHarness(t, fake, nil)
	id := ids.StackID{0x57, 1}
	if err := deployStorage(h, id, 1, bin, true); err != nil {
		t.Fatal(err)
	}
	stack := hex.EncodeToString(id.Bytes())
	fake.mu.Lock()
	boxes := fmt.Sprint(fake.boxes)
	fake.mu.Unlock()
	if want := fmt.Sprintf("map[%s/files:true %s/site:false]", stack, stack); boxes != want {
		t.Fatalf("boxes after deploy: %s, want %s", boxes, want)
	}
	got := h.invoke(t, id, "ops", "", nil)
	want := `get a.txt: hello true
get missing: false
stat a.txt: true size=5 ct="" etag=true modified=2026-01-01T00:00:00Z
stat missing: false
put docs/b.txt: 10
put docs/c.txt: 11
put docs/d.txt: 12
put e.txt: 13
range docs/c.txt[2:7]: 11111 of 11 text/plain
page 1: a.txt:5:,docs/b.txt:10:text/plain more=true
page 2: docs/c.txt:11:text/plain,docs/d.txt:12:text/plain more=true
page 3: e.txt:13:text/plain more=false
objects docs/: docs/b.txt,docs/c.txt,docs/d.txt
list docs/: docs/b.txt:10,docs/c.txt:11,docs/d.txt:12
sign put: http://storage.test/signed/` + id.String() + `/files/up.png?method=PUT&max=1048576&ct=image/png&exp=600
sign get: http://storage.test/signed/` + id.String() + `/files/a.txt?method=GET&max=0&ct=&exp=3600
after delete: false
open missing: true
range past end: mu: storage StorageGetRange "files" "docs/c.txt": offset 100 is past the end of the 11-byte object
`
	if got != want {
		t.Fatalf("transcript:\n%s\nwant:\n%s", got, want)
	}
	fake.mu.Lock()
	stacks := fmt.Sprint(fake.stacks)
	fake.mu.Unlock()
	if !strings.HasPrefix(stacks, "map["+stack+":") || strings.Count(stacks, ":") != 1 {
		t.Errorf("storage saw stacks %s, want only %s", stacks, stack)
	}
	// A redeploy creates the boxes again (idempotent).
	if err := deployStorage(h, id, 2, bin, true); err != nil {
		t.Fatal(err)
	}
	// Usage: megabyte-instructions only; storage meters its own bytes.
	if err := h.srv.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.sink.mu.Lock()
	for _, r := range h.sink.recs {
		if r.Kind != usage.FunctionMBInstructions {
			t.Errorf("the runtime reported %v usage %+v", r.Kind, r)
		}
	}
	h.sink.mu.Unlock()
	for _, tc := range []struct {
		kind string
		want float64
	}{{"StoragePut", 1}, {"StorageGet", 3}, {"StorageStat", 2}, {"StoragePutBegin", 4}, {"StorageListPage", 3 + 1}, {"StorageSignURL", 2}, {"StorageGetRange", 2}} {
		if got := testutil.ToFloat64(h.srv.metrics.storageRequests.WithLabelValues(tc.kind, stOK)); got != tc.want {
			t.Errorf("storage requests {%s, ok} = %v, want %v", tc.kind, got, tc.want)
		}
	}
}

// TestStorage_StreamsObjectsLargerThanTheFunctionsMemory puts a 20 MiB
// object through a function whose memory_limit is 16 MiB and reads it back
// chunk by chunk; the old whole-object Get refuses it by name.
func TestStorage_StreamsObjectsLargerThanTheFunctionsMemory(t *testing.T) {
	bin := storageFunc(t)
	fake := newFakeStorage()
	h := newStorageHarness(t, fake, nil)
	id := ids.StackID{0x57, 2}
	if err := deployStorage(h, id, 1, bin, true); err != nil {
		t.Fatal(err)
	}
	const size = 20 << 20
	start := time.Now()
	if got := h.invoke(t, id, "put_big", fmt.Sprintf("n=%d", size), nil); got != fmt.Sprintf("%d true", size) {
		t.Fatalf("put_big: %q", got)
	}
	putTime := time.Since(start)
	want := pseudoRandom(42, size)
	stored, ok := fake.object(id, "files", "big.bin")
	if !ok || len(stored) != size || !bytesEqual(stored, want) {
		t.Fatalf("stored %d bytes (found %t), want the %d the function streamed", len(stored), ok, size)
	}
	sum := crc32.ChecksumIEEE(want)
	start = time.Now()
	if got := h.invoke(t, id, "get_big", "", nil); got != fmt.Sprintf("%d %08x", size, sum) {
		t.Fatalf("get_big: %q", got)
	}
	getTime := time.Since(start)
	t.Logf("20 MiB through a %s function: put %v, get %v", storageMemory, putTime, getTime)
	fake.mu.Lock()
	maxChunk := fake.maxChunk
	fake.mu.Unlock()
	if maxChunk > 1<<20 {
		t.Errorf("the runtime sent a Put chunk of %d bytes, over the storage service's 1 MiB", maxChunk)
	}
	if got := h.invoke(t, id, "get_big_old", "", nil); !strings.Contains(got, `object "big.bin" of 20971520 bytes does not fit one function protocol frame (2097152 bytes); read it in ranges with StorageGetRange (the SDK's Box.Open or Box.GetRange)`) {
		t.Errorf("old Get of a big object: %q", got)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func TestStorage_ReadDetectsAnObjectReplacedBetweenChunks(t *testing.T) {
	bin := storageFunc(t)
	h := newStorageHarness(t, newFakeStorage(), nil)
	id := ids.StackID{0x57, 3}
	if err := deployStorage(h, id, 1, bin, true); err != nil {
		t.Fatal(err)
	}
	got := h.invoke(t, id, "changed", "", nil)
	if !strings.HasPrefix(got, "true mu: storage \"files\" \"c.bin\": mu: storage object changed while being read (etag ") {
		t.Fatalf("changed: %q", got)
	}
}

func TestStorage_UndeclaredBoxNeverReachesStorage(t *testing.T) {
	bin := storageFunc(t)
	fake := newFakeStorage()
	h := newStorageHarness(t, fake, nil)
	id := ids.StackID{0x57, 4}
	if err := deployStorage(h, id, 1, bin, true); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	before := fake.stacks[hex.EncodeToString(id.Bytes())]
	fake.mu.Unlock()
	got := h.invoke(t, id, "undeclared", "", nil)
	want := `mu: storage StoragePut "secret" "k": box "secret" is not declared in the stack's manifest (add a Storage service named "secret")
mu: storage StoragePutBegin "secret" "k": box "secret" is not declared in the stack's manifest (add a Storage service named "secret")`
	if got != want {
		t.Fatalf("undeclared:\n got %q\nwant %q", got, want)
	}
	fake.mu.Lock()
	after := fake.stacks[hex.EncodeToString(id.Bytes())]
	fake.mu.Unlock()
	if after != before {
		t.Errorf("storage was called %d times for an undeclared box", after-before)
	}
	if got := testutil.ToFloat64(h.srv.metrics.storageRequests.WithLabelValues("StoragePut", stUndeclared)); got != 1 {
		t.Errorf("undeclared outcomes %v", got)
	}
}

// TestStorage_UploadsEndWithTheirCall: an upload left open when the handler
// returns is aborted (storage sees a cancelled stream and stores nothing),
// and a call may hold at most MaxUploadsPerCall.
func TestStorage_UploadsEndWithTheirCall(t *testing.T) {
	bin := storageFunc(t)
	fake := newFakeStorage()
	h := newStorageHarness(t, fake, func(c *Config) { c.MaxUploadsPerCall = 3 })
	id := ids.StackID{0x57, 5}
	if err := deployStorage(h, id, 1, bin, true); err != nil {
		t.Fatal(err)
	}
	if got := h.invoke(t, id, "unfinished", "", nil); got != "left open" {
		t.Fatalf("unfinished: %q", got)
	}
	fake.waitAborted(t, 1)
	if _, ok := fake.object(id, "files", "half.bin"); ok {
		t.Fatal("an upload left open was stored")
	}
	if got := testutil.ToFloat64(h.srv.metrics.uploadsAbandoned); got != 1 {
		t.Errorf("abandoned uploads %v, want 1", got)
	}
	got := h.invoke(t, id, "too_many", "", nil)
	if want := `3 open; mu: storage StoragePutBegin "files" "m3": 3 uploads are open in this call, the most the runtime allows (max_uploads_per_call); end one first; first closed: <nil>`; got != want {
		t.Fatalf("too_many:\n got %q\nwant %q", got, want)
	}
	if b, ok := fake.object(id, "files", "m0"); !ok || string(b) != "first" {
		t.Errorf("m0 = %q, %t", b, ok)
	}
	for _, k := range []string{"m1", "m2"} {
		if _, ok := fake.object(id, "files", k); ok {
			t.Errorf("aborted upload %s was stored", k)
		}
	}
	// How many of the two aborted streams storage itself sees end depends
	// on timing (a stream cancelled before its handler ran is never seen),
	// so what counts is above: an aborted upload never sends its end, so
	// it can never be stored.
}

func TestStorage_StacksReachOnlyTheirOwnObjects(t *testing.T) {
	bin := storageFunc(t)
	fake := newFakeStorage()
	h := newStorageHarness(t, fake, nil)
	a, b := ids.StackID{0x57, 6}, ids.StackID{0x57, 7}
	for _, id := range []ids.StackID{a, b} {
		if err := deployStorage(h, id, 1, bin, true); err != nil {
			t.Fatal(err)
		}
	}
	h.invoke(t, a, "put", "key=k", []byte("from a"))
	if got := h.invoke(t, b, "get", "key=k", nil); got != " false" {
		t.Errorf("b reads a's object: %q", got)
	}
	h.invoke(t, b, "put", "key=k", []byte("from b"))
	if got := h.invoke(t, a, "get", "key=k", nil); got != "from a true" {
		t.Errorf("a reads %q", got)
	}
	if got, _ := fake.object(b, "files", "k"); string(got) != "from b" {
		t.Errorf("b's object %q", got)
	}
}

func TestStorage_WithoutStorageStacksDeployAndCallsFail(t *testing.T) {
	bin := storageFunc(t)
	h := newStorageHarness(t, nil, nil)
	id := ids.StackID{0x57, 8}
	if err := deployStorage(h, id, 1, bin, true); err != nil {
		t.Fatal(err)
	}
	resp := h.invokeRaw(t, id, "get", "key=k", nil)
	if !strings.Contains(string(resp.GetResponse().GetBody()), "storage is not configured on this runtime node (StorageGet)") &&
		!strings.Contains(resp.GetError().GetMessage(), "storage is not configured on this runtime node (StorageGet)") {
		t.Errorf("get without storage: %v", resp)
	}
}

func TestStorage_DeployFailsWhenStorageIsUnreachable(t *testing.T) {
	bin := storageFunc(t)
	h := newStorageHarness(t, nil, func(c *Config) { c.StorageAddr = closedAddr(t) })
	err := deployStorage(h, ids.StackID{0x57, 9}, 1, bin, true)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `storage could not create box "files": Unavailable`) {
		t.Fatalf("deploy with storage down: %v", err)
	}
	if h.srv.Stacks() != 0 {
		t.Error("a refused deploy left a stack behind")
	}
}

// TestStorage_BinariesComeFromStorageByContentID: a deploy without inline
// bytes fetches the binary, checks it against its id and compiles it; a
// node with the compiled artifact in its data dir needs no fetch; a
// corrupt or missing binary is refused naming the id.
func TestStorage_BinariesComeFromStorageByContentID(t *testing.T) {
	bin := storageFunc(t)
	bid := ids.BinaryID(bin)
	fake := newFakeStorage()
	fake.binaries[bid] = bin
	dataDir := t.TempDir()
	h := newStorageHarness(t, fake, func(c *Config) { c.DataDir = dataDir })
	id := ids.StackID{0x57, 10}
	if err := deployStorage(h, id, 1, bin, false); err != nil {
		t.Fatal(err)
	}
	h.invoke(t, id, "put", "key=k", []byte("v"))
	if got := h.invoke(t, id, "get", "key=k", nil); got != "v true" {
		t.Errorf("function from storage: %q", got)
	}
	if got := testutil.ToFloat64(h.srv.metrics.binaries.WithLabelValues("storage")); got != 1 {
		t.Errorf("binaries from storage %v", got)
	}

	// A second node on the same data dir has the artifact: no fetch.
	h.srv.Close()
	h2 := newStorageHarness(t, fake, func(c *Config) { c.DataDir = dataDir })
	if err := deployStorage(h2, id, 1, bin, false); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	fetches := fake.binGets
	fake.mu.Unlock()
	if fetches != 1 || testutil.ToFloat64(h2.srv.metrics.binaries.WithLabelValues("cache")) != 1 {
		t.Errorf("%d GetBinary calls after a cached deploy, want 1", fetches)
	}

	// Corrupt bytes under the id: refused, nothing deployed.
	other := wat(t, okWAT)
	oid := ids.BinaryID(other)
	fake.mu.Lock()
	fake.binaries[oid] = append(append([]byte(nil), other...), 0)
	fake.mu.Unlock()
	m := manifestFor(oid)
	_, err := h2.client.Deploy(context.Background(), &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: ids.StackID{0x57, 11}.Bytes(), Revision: 1, Manifest: m}})
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), fmt.Sprintf("binary %q fetched from storage is corrupt", oid)) {
		t.Errorf("corrupt binary: %v", err)
	}
	// Missing: NotFound naming the id.
	missing := ids.BinaryID([]byte("never uploaded"))
	_, err = h2.client.Deploy(context.Background(), &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: ids.StackID{0x57, 12}.Bytes(), Revision: 1, Manifest: manifestFor(missing)}})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), fmt.Sprintf("binary %q is not in storage", missing)) {
		t.Errorf("missing binary: %v", err)
	}
	// Inline bytes must match their id.
	_, err = h2.client.Deploy(context.Background(), &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: ids.StackID{0x57, 13}.Bytes(), Revision: 1, Manifest: m},
		Binaries: []*runtimev1.FunctionBinary{{BinaryId: oid, Wasm: bin}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fmt.Sprintf("binary_id %q does not match", oid)) {
		t.Errorf("inline mismatch: %v", err)
	}
	if h2.srv.Stacks() != 1 {
		t.Errorf("%d stacks deployed, want 1", h2.srv.Stacks())
	}
}

// TestStorageCall_RangeReadsAreCappedToTheFrame asks for more than a frame
// holds: the reply carries what fits, and the old Get refuses the object.
func TestStorageCall_RangeReadsAreCappedToTheFrame(t *testing.T) {
	fake := newFakeStorage()
	conn, err := grpc.NewClient(serveFakeStorage(t, fake), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	const frame = 64 << 10
	id := ids.StackID{0x57, 14}
	b := &storageBridge{client: storagev1.NewStorageServiceClient(conn), maxFrame: frame, maxUploads: 1, maxListed: 1000}
	if err := b.createBoxes(context.Background(), id, &manifest.Manifest{Storages: []manifest.Storage{{Name: "s"}}}); err != nil {
		t.Fatal(err)
	}
	call := b.forStack(id, &manifest.Manifest{Storages: []manifest.Storage{{Name: "s"}}}).newCall()
	defer call.end()
	ctx := context.Background()
	data := pseudoRandom(7, 200<<10)
	if r, err := call.serve(ctx, &fnproto.StoragePut{Storage: "s", Key: "k", Data: data}); err != nil || r.Kind() != fnproto.KindStorageEmptyResult {
		t.Fatalf("put: %#v %v", r, err)
	}
	r, err := call.serve(ctx, &fnproto.StorageGetRange{Storage: "s", Key: "k", Offset: 1000, Length: 1 << 20})
	rr, ok := r.(*fnproto.StorageRangeResult)
	if err != nil || !ok || !rr.Found || rr.TotalSize != uint64(len(data)) {
		t.Fatalf("range: %#v %v", r, err)
	}
	if n := storageReplySize(rr) + 2; n > frame || len(rr.Data) < frame-100 || !bytesEqual(rr.Data, data[1000:1000+len(rr.Data)]) {
		t.Errorf("range reply of %d bytes with %d data bytes for a %d-byte frame", n, len(rr.Data), frame)
	}
	stale := "old"
	r, _ = call.serve(ctx, &fnproto.StorageGetRange{Storage: "s", Key: "k", Length: 10, IfMatch: &stale})
	if rr, ok := r.(*fnproto.StorageRangeResult); !ok || !rr.Found || len(rr.Data) != 0 || rr.ETag == stale {
		t.Errorf("if_match mismatch: %#v", r)
	}
	r, _ = call.serve(ctx, &fnproto.StorageGet{Storage: "s", Key: "k"})
	if se, ok := r.(*fnproto.StorageError); !ok || !strings.Contains(se.Error, "does not fit one function protocol frame") {
		t.Errorf("old Get of a 200 KiB object with 64 KiB frames: %#v", r)
	}
	r, _ = call.serve(ctx, &fnproto.StoragePutChunk{Upload: 9, Data: []byte("x")})
	if se, ok := r.(*fnproto.StorageError); !ok || se.Error != "upload 9 is not open in this call (never begun, already ended, or failed)" {
		t.Errorf("chunk of an unknown upload: %#v", r)
	}
}

func TestStorage_DepsStorageTakesPrecedence(t *testing.T) {
	bin := storageFunc(t)
	fake := newFakeStorage()
	conn, err := grpc.NewClient(serveFakeStorage(t, fake), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := newDBHarness(t, func(c *Config) { c.StorageAddr = closedAddr(t); c.MaxFrameSize = 2 << 20 }, Deps{Storage: storagev1.NewStorageServiceClient(conn)})
	id := ids.StackID{0x57, 15}
	if err := deployStorage(h, id, 1, bin, true); err != nil {
		t.Fatal(err)
	}
	h.invoke(t, id, "put", "key=k", []byte("v"))
	if got := h.invoke(t, id, "get", "key=k", nil); got != "v true" {
		t.Errorf("get: %q", got)
	}
}

func TestConfig_StorageSettings(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	for addr, ok := range map[string]bool{"": true, "127.0.0.1:12030": true, "storage": false} {
		cfg.StorageAddr = addr
		err := cfg.Validate()
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "storage_addr") {
			t.Errorf("storage_addr %q: %v", addr, err)
		}
	}
	cfg = DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.MaxUploadsPerCall, cfg.MaxListPage = 0, 1001
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "max_uploads_per_call") || !strings.Contains(err.Error(), "max_list_page") {
		t.Errorf("Validate: %v", err)
	}
}
