package runtime

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// fakeMudb is a small map-backed MudbService for the bridge tests (the real
// service is tested in services/mudb): tables must be created, scans page
// at pageMax entries with cursors, values are capped at 1 MiB, TTLs are
// recorded, and a Get of the key "block" waits for its context to end. It
// records the stack ids and tables of every request.
type fakeMudb struct {
	mudbv1.UnimplementedMudbServiceServer

	mu      sync.Mutex
	pageMax int
	tables  map[string]bool              // stack/table
	data    map[string]map[string][]byte // stack/table → key → value
	ttl     map[string]time.Duration     // stack/table/key → ttl of the last write
	stacks  map[string]int               // hex stack id → data requests
	named   map[string]int               // table → data requests naming it
	created []string                     // stack/table of every CreateTable, in order
	deletes int                          // DeleteTable and DeleteStackData calls
	// failStackDeletes is how many DeleteStackData calls fail (UNAVAILABLE)
	// before they succeed; stackDeletes counts the ones that succeeded,
	// by hex stack id.
	failStackDeletes int
	stackDeletes     map[string]int
}

const fakeMaxValue = 1 << 20

func newFakeMudb() *fakeMudb {
	return &fakeMudb{pageMax: 4, tables: map[string]bool{}, data: map[string]map[string][]byte{},
		ttl: map[string]time.Duration{}, stacks: map[string]int{}, named: map[string]int{}}
}

// serveFakeMudb starts f on a real gRPC server on 127.0.0.1:0.
func serveFakeMudb(t *testing.T, f *fakeMudb) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	mudbv1.RegisterMudbServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// table returns the map of stack/table, after recording the request; the
// caller holds f.mu.
func (f *fakeMudb) table(stack []byte, table string) (map[string][]byte, error) {
	if len(stack) != 32 {
		return nil, status.Errorf(codes.InvalidArgument, "stack_id: %d bytes, want 32", len(stack))
	}
	f.stacks[hex.EncodeToString(stack)]++
	f.named[table]++
	name := hex.EncodeToString(stack) + "/" + table
	if !f.tables[name] {
		return nil, status.Errorf(codes.NotFound, "table %q does not exist", table)
	}
	if f.data[name] == nil {
		f.data[name] = map[string][]byte{}
	}
	return f.data[name], nil
}

func (f *fakeMudb) snapshot() (stacks map[string]int, named map[string]int, created []string, deletes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stacks, named = map[string]int{}, map[string]int{}
	for k, v := range f.stacks {
		stacks[k] = v
	}
	for k, v := range f.named {
		named[k] = v
	}
	return stacks, named, append([]string(nil), f.created...), f.deletes
}

func (f *fakeMudb) ttlOf(stack []byte, table, key string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ttl[hex.EncodeToString(stack)+"/"+table+"/"+key]
}

func (f *fakeMudb) put(stack []byte, table string, key, value []byte, ttl time.Duration) error {
	tab, err := f.table(stack, table)
	if err != nil {
		return err
	}
	if len(key) == 0 {
		return status.Error(codes.InvalidArgument, "key is empty")
	}
	if len(value) > fakeMaxValue {
		return status.Errorf(codes.InvalidArgument, "value of %d bytes exceeds max_value_bytes %d", len(value), fakeMaxValue)
	}
	tab[string(key)] = bytes.Clone(value)
	f.ttl[hex.EncodeToString(stack)+"/"+table+"/"+string(key)] = ttl
	return nil
}

// page returns up to limit keys of tab with prefix after cursor, and the
// cursor of the next page ("" when none).
func (f *fakeMudb) page(tab map[string][]byte, prefix []byte, limit uint32, cursor []byte) ([]string, []byte, error) {
	after := ""
	if len(cursor) > 0 {
		p, last, ok := strings.Cut(string(cursor), "\x00")
		if !ok || !strings.HasPrefix(p, "cur:") || p[4:] != string(prefix) {
			return nil, nil, status.Error(codes.InvalidArgument, "cursor does not belong to this scan")
		}
		after = last
	}
	n := f.pageMax
	if limit > 0 && int(limit) < n {
		n = int(limit)
	}
	var keys []string
	for k := range tab {
		if strings.HasPrefix(k, string(prefix)) && (cursor == nil || k > after) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) <= n {
		return keys, nil, nil
	}
	keys = keys[:n]
	return keys, []byte("cur:" + string(prefix) + "\x00" + keys[n-1]), nil
}

func ttlDuration(d interface{ AsDuration() time.Duration }) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func (f *fakeMudb) CreateTable(_ context.Context, r *mudbv1.CreateTableRequest) (*mudbv1.CreateTableResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := hex.EncodeToString(r.GetStackId()) + "/" + r.GetTable()
	f.created = append(f.created, name)
	created := !f.tables[name]
	f.tables[name] = true
	return &mudbv1.CreateTableResponse{Created: created}, nil
}

func (f *fakeMudb) DeleteTable(context.Context, *mudbv1.DeleteTableRequest) (*mudbv1.DeleteTableResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	return &mudbv1.DeleteTableResponse{}, nil
}

func (f *fakeMudb) DeleteStackData(_ context.Context, r *mudbv1.DeleteStackDataRequest) (*mudbv1.DeleteStackDataResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failStackDeletes > 0 {
		f.failStackDeletes--
		return nil, status.Error(codes.Unavailable, "muDB is restarting")
	}
	f.deletes++
	if f.stackDeletes == nil {
		f.stackDeletes = map[string]int{}
	}
	stack := hex.EncodeToString(r.GetStackId())
	f.stackDeletes[stack]++
	for name := range f.tables {
		if strings.HasPrefix(name, stack+"/") {
			delete(f.tables, name)
			delete(f.data, name)
		}
	}
	return &mudbv1.DeleteStackDataResponse{}, nil
}

// stackDataDeletes is how many DeleteStackData calls for stack succeeded.
func (f *fakeMudb) stackDataDeletes(stack []byte) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stackDeletes[hex.EncodeToString(stack)]
}

func (f *fakeMudb) TableList(_ context.Context, r *mudbv1.TableListRequest) (*mudbv1.TableListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stacks[hex.EncodeToString(r.GetStackId())]++
	prefix := hex.EncodeToString(r.GetStackId()) + "/" + r.GetTablePrefix()
	var names []string
	for name := range f.tables {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name[65:])
		}
	}
	sort.Strings(names)
	return &mudbv1.TableListResponse{Tables: names}, nil
}

func (f *fakeMudb) Put(_ context.Context, r *mudbv1.PutRequest) (*mudbv1.PutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &mudbv1.PutResponse{}, f.put(r.GetStackId(), r.GetTable(), r.GetKey(), r.GetValue(), ttlDuration(r.GetTtl()))
}

func (f *fakeMudb) Get(ctx context.Context, r *mudbv1.GetRequest) (*mudbv1.GetResponse, error) {
	if string(r.GetKey()) == "block" {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tab, err := f.table(r.GetStackId(), r.GetTable())
	if err != nil {
		return nil, err
	}
	v, ok := tab[string(r.GetKey())]
	if !ok {
		return &mudbv1.GetResponse{}, nil
	}
	if v == nil {
		v = []byte{}
	}
	return &mudbv1.GetResponse{Value: v}, nil
}

func (f *fakeMudb) Delete(_ context.Context, r *mudbv1.DeleteRequest) (*mudbv1.DeleteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tab, err := f.table(r.GetStackId(), r.GetTable())
	if err != nil {
		return nil, err
	}
	delete(tab, string(r.GetKey()))
	return &mudbv1.DeleteResponse{}, nil
}

func (f *fakeMudb) DeleteByPrefix(_ context.Context, r *mudbv1.DeleteByPrefixRequest) (*mudbv1.DeleteByPrefixResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tab, err := f.table(r.GetStackId(), r.GetTable())
	if err != nil {
		return nil, err
	}
	var n uint64
	for k := range tab {
		if strings.HasPrefix(k, string(r.GetKeyPrefix())) {
			delete(tab, k)
			n++
		}
	}
	return &mudbv1.DeleteByPrefixResponse{KeysDeleted: n}, nil
}

func (f *fakeMudb) Scan(_ context.Context, r *mudbv1.ScanRequest) (*mudbv1.ScanResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tab, err := f.table(r.GetStackId(), r.GetTable())
	if err != nil {
		return nil, err
	}
	keys, next, err := f.page(tab, r.GetKeyPrefix(), r.GetLimit(), r.GetCursor())
	if err != nil {
		return nil, err
	}
	resp := &mudbv1.ScanResponse{NextCursor: next}
	for _, k := range keys {
		resp.Items = append(resp.Items, &mudbv1.KeyValue{Key: []byte(k), Value: tab[k]})
	}
	return resp, nil
}

func (f *fakeMudb) ScanKeys(_ context.Context, r *mudbv1.ScanKeysRequest) (*mudbv1.ScanKeysResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tab, err := f.table(r.GetStackId(), r.GetTable())
	if err != nil {
		return nil, err
	}
	keys, next, err := f.page(tab, r.GetKeyPrefix(), r.GetLimit(), r.GetCursor())
	if err != nil {
		return nil, err
	}
	resp := &mudbv1.ScanKeysResponse{NextCursor: next}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, []byte(k))
	}
	return resp, nil
}

func (f *fakeMudb) CompareAndSwap(_ context.Context, r *mudbv1.CompareAndSwapRequest) (*mudbv1.CompareAndSwapResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tab, err := f.table(r.GetStackId(), r.GetTable())
	if err != nil {
		return nil, err
	}
	cur, exists := tab[string(r.GetKey())]
	resp := &mudbv1.CompareAndSwapResponse{}
	if exists {
		resp.PreviousValue = append([]byte{}, cur...)
	}
	if (r.PreviousValue == nil && !exists) || (r.PreviousValue != nil && exists && bytes.Equal(cur, r.PreviousValue)) {
		tab[string(r.GetKey())] = bytes.Clone(r.GetNewValue())
		resp.IsSwapped = true
	}
	return resp, nil
}

func (f *fakeMudb) BatchPut(_ context.Context, r *mudbv1.BatchPutRequest) (*mudbv1.BatchPutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, it := range r.GetItems() {
		if err := f.put(r.GetStackId(), it.GetTable(), it.GetKey(), it.GetValue(), ttlDuration(r.GetTtl())); err != nil {
			return nil, err
		}
	}
	return &mudbv1.BatchPutResponse{}, nil
}

func (f *fakeMudb) BatchGet(_ context.Context, r *mudbv1.BatchGetRequest) (*mudbv1.BatchGetResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &mudbv1.BatchGetResponse{}
	for _, k := range r.GetKeys() {
		tab, err := f.table(r.GetStackId(), k.GetTable())
		if err != nil {
			return nil, err
		}
		if v, ok := tab[string(k.GetKey())]; ok {
			resp.Items = append(resp.Items, &mudbv1.TableKeyValue{Table: k.GetTable(), Key: k.GetKey(), Value: v})
		}
	}
	return resp, nil
}

func (f *fakeMudb) BatchDelete(_ context.Context, r *mudbv1.BatchDeleteRequest) (*mudbv1.BatchDeleteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range r.GetKeys() {
		tab, err := f.table(r.GetStackId(), k.GetTable())
		if err != nil {
			return nil, err
		}
		delete(tab, string(k.GetKey()))
	}
	return &mudbv1.BatchDeleteResponse{}, nil
}

func (f *fakeMudb) BatchScan(_ context.Context, r *mudbv1.BatchScanRequest) (*mudbv1.BatchScanResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &mudbv1.BatchScanResponse{}
	for _, s := range r.GetScans() {
		tab, err := f.table(r.GetStackId(), s.GetTable())
		if err != nil {
			return nil, err
		}
		keys, next, err := f.page(tab, s.GetKeyPrefix(), s.GetLimit(), s.GetCursor())
		if err != nil {
			return nil, err
		}
		res := &mudbv1.BatchScanResult{Table: s.GetTable(), NextCursor: next}
		for _, k := range keys {
			res.Items = append(res.Items, &mudbv1.KeyValue{Key: []byte(k), Value: tab[k]})
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

func (f *fakeMudb) BatchScanKeys(_ context.Context, r *mudbv1.BatchScanKeysRequest) (*mudbv1.BatchScanKeysResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &mudbv1.BatchScanKeysResponse{}
	for _, s := range r.GetScans() {
		tab, err := f.table(r.GetStackId(), s.GetTable())
		if err != nil {
			return nil, err
		}
		keys, next, err := f.page(tab, s.GetKeyPrefix(), s.GetLimit(), s.GetCursor())
		if err != nil {
			return nil, err
		}
		res := &mudbv1.BatchScanKeysResult{Table: s.GetTable(), NextCursor: next}
		for _, k := range keys {
			res.Keys = append(res.Keys, []byte(k))
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}
