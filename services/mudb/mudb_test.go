package mudb

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/usage"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

func TestRPC_PutGetDeleteRoundTrip(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	n.create(t, st, "todos")
	n.put(t, st, "todos", "a", "1")
	n.put(t, st, "todos", "empty", "")
	if v, ok := n.get(t, st, "todos", "a"); !ok || v != "1" {
		t.Fatalf("get a = %q %v", v, ok)
	}
	if v, ok := n.get(t, st, "todos", "empty"); !ok || v != "" {
		t.Fatalf("empty value: %q %v, want present and empty", v, ok)
	}
	if _, ok := n.get(t, st, "todos", "missing"); ok {
		t.Fatal("missing key is present")
	}
	n.put(t, st, "todos", "a", "2") // replaces
	if v, _ := n.get(t, st, "todos", "a"); v != "2" {
		t.Fatalf("after replace: %q", v)
	}
	for _, atomic := range []bool{false, true} {
		if _, err := n.c.Delete(ctxT(t), &mudbv1.DeleteRequest{StackId: st.Bytes(), Table: "todos", Key: []byte("a"), IsAtomic: atomic}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := n.get(t, st, "todos", "a"); ok {
		t.Fatal("deleted key still present")
	}
}

func TestTable_UndeclaredIsNotFoundForEveryDataRPC(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	sid := st.Bytes()
	ctx := ctxT(t)
	k := []byte("k")
	calls := map[string]func() error{
		"Put": func() error {
			_, err := n.c.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: "todos", Key: k})
			return err
		},
		"Get": func() error {
			_, err := n.c.Get(ctx, &mudbv1.GetRequest{StackId: sid, Table: "todos", Key: k})
			return err
		},
		"Delete": func() error {
			_, err := n.c.Delete(ctx, &mudbv1.DeleteRequest{StackId: sid, Table: "todos", Key: k})
			return err
		},
		"DeleteByPrefix": func() error {
			_, err := n.c.DeleteByPrefix(ctx, &mudbv1.DeleteByPrefixRequest{StackId: sid, Table: "todos"})
			return err
		},
		"Scan": func() error { _, err := n.c.Scan(ctx, &mudbv1.ScanRequest{StackId: sid, Table: "todos"}); return err },
		"ScanKeys": func() error {
			_, err := n.c.ScanKeys(ctx, &mudbv1.ScanKeysRequest{StackId: sid, Table: "todos"})
			return err
		},
		"CompareAndSwap": func() error {
			_, err := n.c.CompareAndSwap(ctx, &mudbv1.CompareAndSwapRequest{StackId: sid, Table: "todos", Key: k})
			return err
		},
		"BatchPut": func() error {
			_, err := n.c.BatchPut(ctx, &mudbv1.BatchPutRequest{StackId: sid, Items: []*mudbv1.TableKeyValue{{Table: "todos", Key: k}}})
			return err
		},
		"BatchGet": func() error {
			_, err := n.c.BatchGet(ctx, &mudbv1.BatchGetRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "todos", Key: k}}})
			return err
		},
		"BatchDelete": func() error {
			_, err := n.c.BatchDelete(ctx, &mudbv1.BatchDeleteRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "todos", Key: k}}})
			return err
		},
		"BatchScan": func() error {
			_, err := n.c.BatchScan(ctx, &mudbv1.BatchScanRequest{StackId: sid, Scans: []*mudbv1.ScanSpec{{Table: "todos"}}})
			return err
		},
		"BatchScanKeys": func() error {
			_, err := n.c.BatchScanKeys(ctx, &mudbv1.BatchScanKeysRequest{StackId: sid, Scans: []*mudbv1.ScanSpec{{Table: "todos"}}})
			return err
		},
	}
	for name, call := range calls {
		wantCode(t, name, call(), codes.NotFound, "", `table "todos" is not declared by stack `+st.String())
	}
	n.flushUsage(t)
	if n.usage.Records() != 0 {
		t.Errorf("failed calls were metered: %d records", n.usage.Records())
	}
}

func TestTable_CreateListDeleteRecreate(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	ctx := ctxT(t)
	resp, err := n.c.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: st.Bytes(), Table: "todos"})
	if err != nil || !resp.Created {
		t.Fatalf("create: %v %v", resp, err)
	}
	resp, err = n.c.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: st.Bytes(), Table: "todos"})
	if err != nil || resp.Created {
		t.Fatalf("second create: %v %v, want created=false", resp, err)
	}
	n.create(t, st, "todo-archive", "users")
	list, err := n.c.TableList(ctx, &mudbv1.TableListRequest{StackId: st.Bytes(), TablePrefix: "todo"})
	if err != nil || strings.Join(list.Tables, ",") != "todo-archive,todos" {
		t.Fatalf("list todo*: %v %v", list, err)
	}
	for i := range 1500 { // more than one purge chunk
		n.put(t, st, "todos", fmt.Sprintf("k%04d", i), "v")
	}
	if _, err := n.c.Put(ctx, &mudbv1.PutRequest{StackId: st.Bytes(), Table: "todos", Key: []byte("ttl"), Value: []byte("v"), Ttl: durationpb.New(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	n.put(t, st, "users", "u", "1")
	del, err := n.c.DeleteTable(ctx, &mudbv1.DeleteTableRequest{StackId: st.Bytes(), Table: "todos"})
	if err != nil || !del.Deleted || del.KeysDeleted != 1501 {
		t.Fatalf("delete table: %v %v, want 1501 keys", del, err)
	}
	todos := keyspace.Table{Stack: st, Name: "todos"}
	if c := n.rawKeys(t, todos.Prefix()); c != 0 {
		t.Errorf("%d data keys left after DeleteTable", c)
	}
	if c := n.rawKeys(t, []byte(keyspace.TTLPrefix)); c != 0 {
		t.Errorf("%d TTL index entries left after DeleteTable", c)
	}
	_, err = n.c.Get(ctx, &mudbv1.GetRequest{StackId: st.Bytes(), Table: "todos", Key: []byte("k0001")})
	wantCode(t, "get after delete", err, codes.NotFound, "", "todos")
	del, err = n.c.DeleteTable(ctx, &mudbv1.DeleteTableRequest{StackId: st.Bytes(), Table: "todos"})
	if err != nil || del.Deleted {
		t.Fatalf("second delete: %v %v, want deleted=false", del, err)
	}
	n.create(t, st, "todos")
	if keys := n.scanAll(t, st, "todos", "", 0); len(keys) != 0 {
		t.Fatalf("recreated table holds %d keys", len(keys))
	}
	if v, ok := n.get(t, st, "users", "u"); !ok || v != "1" {
		t.Fatal("deleting todos touched users")
	}

	// DeleteStackData removes every table and key of the stack only.
	other := newStack(t)
	n.create(t, other, "todos")
	n.put(t, other, "todos", "k", "other")
	n.put(t, st, "todos", "k", "mine")
	sd, err := n.c.DeleteStackData(ctx, &mudbv1.DeleteStackDataRequest{StackId: st.Bytes()})
	if err != nil || sd.TablesDeleted != 3 || sd.KeysDeleted != 2 {
		t.Fatalf("delete stack data: %v %v, want 3 tables, 2 keys", sd, err)
	}
	if c := n.rawKeys(t, keyspace.StackDataPrefix(st)) + n.rawKeys(t, keyspace.StackRegistryPrefix(st)); c != 0 {
		t.Errorf("%d keys of the stack left", c)
	}
	list, err = n.c.TableList(ctx, &mudbv1.TableListRequest{StackId: st.Bytes()})
	if err != nil || len(list.Tables) != 0 {
		t.Fatalf("tables after DeleteStackData: %v %v", list, err)
	}
	if v, _ := n.get(t, other, "todos", "k"); v != "other" {
		t.Fatalf("other stack's key: %q", v)
	}
}

func TestRestart_DataDirPersistsAndIsLocked(t *testing.T) {
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	st := newStack(t)
	s, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// A second node on the same directory fails clearly.
	if s2, err := New(cfg, Deps{}); err == nil {
		s2.Close()
		t.Fatal("a second node opened the same data_dir")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Write through one node, close it, read back through the next.
	n1 := start(t, cfg)
	n1.create(t, st, "todos")
	n1.put(t, st, "todos", "a", "persisted")
	if err := n1.s.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := start(t, cfg)
	if v, ok := n2.get(t, st, "todos", "a"); !ok || v != "persisted" {
		t.Fatalf("after restart: %q %v", v, ok)
	}
}

func TestScan_PaginationWithWritesBehindAndAhead(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	n.create(t, st, "t")
	var items []*mudbv1.TableKeyValue
	for i := range 2500 {
		items = append(items, &mudbv1.TableKeyValue{Table: "t", Key: fmt.Appendf(nil, "k%05d", i*2), Value: []byte("v")})
		if len(items) == 1000 || i == 2499 {
			if _, err := n.c.BatchPut(ctxT(t), &mudbv1.BatchPutRequest{StackId: st.Bytes(), Items: items}); err != nil {
				t.Fatal(err)
			}
			items = nil
		}
	}
	seen := map[string]bool{}
	var order []string
	var cursor []byte
	pages := 0
	for {
		resp, err := n.c.Scan(ctxT(t), &mudbv1.ScanRequest{StackId: st.Bytes(), Table: "t", Limit: 5000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(resp.Items) > 1000 {
			t.Fatalf("page of %d entries, above max_scan_page", len(resp.Items))
		}
		for _, it := range resp.Items {
			if seen[string(it.Key)] {
				t.Fatalf("key %s returned twice", it.Key)
			}
			seen[string(it.Key)] = true
			order = append(order, string(it.Key))
		}
		if pages == 1 {
			// Behind the cursor (odd keys below the last returned) and
			// ahead of it.
			n.put(t, st, "t", "k00001", "behind")
			n.put(t, st, "t", "k04001", "ahead")
			n.put(t, st, "t", "zzz", "ahead")
		}
		if len(resp.NextCursor) == 0 {
			break
		}
		cursor = resp.NextCursor
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3", pages)
	}
	if seen["k00001"] || !seen["k04001"] || !seen["zzz"] || len(seen) != 2502 {
		t.Errorf("behind seen %v, ahead %v %v, total %d (want 2502)", seen["k00001"], seen["k04001"], seen["zzz"], len(seen))
	}
	if !sort.StringsAreSorted(order) {
		t.Error("keys out of order")
	}
	// limit 0 is the default page; prefixes bound the scan.
	resp, err := n.c.ScanKeys(ctxT(t), &mudbv1.ScanKeysRequest{StackId: st.Bytes(), Table: "t"})
	if err != nil || len(resp.Keys) != testConfig().DefaultScanPage || len(resp.NextCursor) == 0 {
		t.Fatalf("default page: %d keys, cursor %d bytes, %v", len(resp.GetKeys()), len(resp.GetNextCursor()), err)
	}
	if got := n.scanAll(t, st, "t", "k001", 7); len(got) != 50 {
		t.Errorf("prefix k001: %d keys, want 50", len(got))
	}
}

func TestScan_CursorMisuseIsInvalidArgument(t *testing.T) {
	n := start(t, testConfig())
	st, other := newStack(t), newStack(t)
	n.create(t, st, "a", "b")
	n.create(t, other, "a")
	for i := range 5 {
		n.put(t, st, "a", fmt.Sprintf("p%d", i), "v")
		n.put(t, other, "a", fmt.Sprintf("p%d", i), "v")
	}
	resp, err := n.c.ScanKeys(ctxT(t), &mudbv1.ScanKeysRequest{StackId: st.Bytes(), Table: "a", KeyPrefix: []byte("p"), Limit: 2})
	if err != nil || len(resp.NextCursor) == 0 {
		t.Fatal(resp, err)
	}
	cur := resp.NextCursor
	flipped := bytes.Clone(cur)
	flipped[2] ^= 1
	cases := []struct {
		name   string
		stack  []byte
		table  string
		prefix string
		cursor []byte
	}{
		{"other stack", other.Bytes(), "a", "p", cur},
		{"other table", st.Bytes(), "b", "p", cur},
		{"other prefix", st.Bytes(), "a", "", cur},
		{"altered", st.Bytes(), "a", "p", flipped},
		{"garbage", st.Bytes(), "a", "p", []byte("not a cursor")},
		{"truncated", st.Bytes(), "a", "p", cur[:len(cur)-1]},
	}
	for _, c := range cases {
		_, err := n.c.Scan(ctxT(t), &mudbv1.ScanRequest{StackId: c.stack, Table: c.table, KeyPrefix: []byte(c.prefix), Cursor: c.cursor})
		wantCode(t, c.name, err, codes.InvalidArgument, rpcerr.InvalidRequest, "cursor")
	}
	// The right one still works and resumes strictly after p1.
	resp, err = n.c.ScanKeys(ctxT(t), &mudbv1.ScanKeysRequest{StackId: st.Bytes(), Table: "a", KeyPrefix: []byte("p"), Cursor: cur})
	if err != nil || len(resp.Keys) != 3 || string(resp.Keys[0]) != "p2" || len(resp.NextCursor) != 0 {
		t.Fatalf("resume: %q %x %v", resp.GetKeys(), resp.GetNextCursor(), err)
	}
}

func TestTTL_ExpiresAtOnceAndIsSwept(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	n.create(t, st, "t")
	ctx := ctxT(t)
	sid := st.Bytes()
	if _, err := n.c.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: "t", Key: []byte("short"), Value: []byte("v"), Ttl: durationpb.New(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.BatchPut(ctx, &mudbv1.BatchPutRequest{StackId: sid, Ttl: durationpb.New(time.Second), Items: []*mudbv1.TableKeyValue{
		{Table: "t", Key: []byte("batch1"), Value: []byte("v")}, {Table: "t", Key: []byte("batch2"), Value: []byte("v")},
	}}); err != nil {
		t.Fatal(err)
	}
	// rewritten: the TTL set first must not sweep the rewrite.
	if _, err := n.c.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: "t", Key: []byte("rewritten"), Value: []byte("v"), Ttl: durationpb.New(time.Second)}); err != nil {
		t.Fatal(err)
	}
	n.put(t, st, "t", "rewritten", "kept")
	n.put(t, st, "t", "plain", "kept")
	written := time.Now()
	if _, ok := n.get(t, st, "t", "short"); !ok {
		t.Fatal("TTL key invisible before its expiry")
	}
	if time.Since(written) >= time.Second {
		t.Skip("machine too slow to observe the key before its 1 s TTL")
	}
	time.Sleep(time.Until(written.Add(time.Second + 50*time.Millisecond)))
	// Invisible at once to every read, whether or not swept yet.
	for _, k := range []string{"short", "batch1", "batch2"} {
		if _, ok := n.get(t, st, "t", k); ok {
			t.Errorf("%s visible after its TTL", k)
		}
	}
	keys := n.scanAll(t, st, "t", "", 0)
	if strings.Join(keys, ",") != "plain,rewritten" {
		t.Errorf("scan after TTL: %v", keys)
	}
	bg, err := n.c.BatchGet(ctx, &mudbv1.BatchGetRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "t", Key: []byte("short")}, {Table: "t", Key: []byte("plain")}}})
	if err != nil || len(bg.Items) != 1 {
		t.Errorf("batch get after TTL: %v %v", bg, err)
	}
	cas, err := n.c.CompareAndSwap(ctx, &mudbv1.CompareAndSwapRequest{StackId: sid, Table: "t", Key: []byte("batch1"), NewValue: []byte("new")})
	if err != nil || !cas.IsSwapped || cas.PreviousValue != nil {
		t.Errorf("CAS on expired key (absent): %v %v", cas, err)
	}
	// Swept from the store later: batch1 now holds the CAS value, the
	// rest of the TTL keys go, and so do their index entries.
	tbl := keyspace.Table{Stack: st, Name: "t"}
	eventually(t, "sweep", func() bool {
		return n.rawKeys(t, tbl.Prefix()) == 3 && n.rawKeys(t, []byte(keyspace.TTLPrefix)) == 0
	})
	if v, _ := n.get(t, st, "t", "rewritten"); v != "kept" {
		t.Errorf("rewritten key: %q", v)
	}
	// short and batch2, and batch1 if the sweeper got to it before the CAS.
	if c := testutilCounter(t, n.s.metrics.swept); c != 2 && c != 3 {
		t.Errorf("swept metric = %v, want 2 or 3", c)
	}
}

func TestCAS_ConcurrentIncrementsAreExact(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	n.create(t, st, "c")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			ctx := ctxT(t)
			var prev []byte // unset: the counter does not exist yet
			for done := 0; done < each; {
				next := []byte("1")
				if prev != nil {
					v, _ := strconv.Atoi(string(prev))
					next = []byte(strconv.Itoa(v + 1))
				}
				resp, err := n.c.CompareAndSwap(ctx, &mudbv1.CompareAndSwapRequest{StackId: st.Bytes(), Table: "c", Key: []byte("ctr"), NewValue: next, PreviousValue: prev})
				if err != nil {
					t.Error(err)
					return
				}
				if resp.IsSwapped {
					done++
					prev = next
				} else {
					prev = resp.PreviousValue
				}
			}
		})
	}
	wg.Wait()
	if v, _ := n.get(t, st, "c", "ctr"); v != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s, want %d", v, workers*each)
	}
}

func TestAtomic_PutAndCASSerialize(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	n.create(t, st, "c")
	sid := st.Bytes()
	n.put(t, st, "c", "k", "0")
	// Atomic puts of known values race with CAS increments: every CAS
	// that swaps must have seen the value just before it, so the final
	// value is consistent with some serial order: each swap's previous
	// value is either an atomic put's value or the previous swap's.
	var wg sync.WaitGroup
	var mu sync.Mutex
	swaps := map[string]string{} // new → previous
	wg.Go(func() {
		for i := range 30 {
			_, err := n.c.Put(ctxT(t), &mudbv1.PutRequest{StackId: sid, Table: "c", Key: []byte("k"), Value: fmt.Appendf(nil, "p%d", i), IsAtomic: true})
			if err != nil {
				t.Error(err)
			}
		}
	})
	for w := range 3 {
		wg.Go(func() {
			prev := []byte("0")
			for i := range 30 {
				next := fmt.Appendf(nil, "c%d-%d", w, i)
				resp, err := n.c.CompareAndSwap(ctxT(t), &mudbv1.CompareAndSwapRequest{StackId: sid, Table: "c", Key: []byte("k"), NewValue: next, PreviousValue: prev})
				if err != nil {
					t.Error(err)
					return
				}
				if resp.IsSwapped {
					mu.Lock()
					swaps[string(next)] = string(prev)
					mu.Unlock()
					prev = next
				} else {
					prev = resp.PreviousValue
				}
			}
		})
	}
	wg.Wait()
	// Every swap replaced a value that existed: no swap was lost under an
	// atomic put, so no two swaps claim the same previous CAS value.
	claimed := map[string]string{}
	for next, prev := range swaps {
		if strings.HasPrefix(prev, "c") {
			if other, dup := claimed[prev]; dup {
				t.Errorf("%s and %s both swapped from %s", other, next, prev)
			}
			claimed[prev] = next
		}
	}
	if len(swaps) == 0 {
		t.Error("no CAS swapped")
	}
}

func TestBatchPut_AllOrNothingAcrossTables(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	n.create(t, st, "a", "b")
	sid := st.Bytes()
	for _, atomic := range []bool{false, true} {
		// One invalid item (empty key) writes nothing.
		_, err := n.c.BatchPut(ctxT(t), &mudbv1.BatchPutRequest{StackId: sid, IsAtomic: atomic, Items: []*mudbv1.TableKeyValue{
			{Table: "a", Key: []byte("x"), Value: []byte("1")}, {Table: "b", Key: nil, Value: []byte("2")},
		}})
		wantCode(t, "empty key", err, codes.InvalidArgument, rpcerr.InvalidRequest, "items[1].key")
		// One undeclared table writes nothing either.
		_, err = n.c.BatchPut(ctxT(t), &mudbv1.BatchPutRequest{StackId: sid, IsAtomic: atomic, Items: []*mudbv1.TableKeyValue{
			{Table: "a", Key: []byte("x"), Value: []byte("1")}, {Table: "nope", Key: []byte("y"), Value: []byte("2")},
		}})
		wantCode(t, "undeclared", err, codes.NotFound, "", `"nope"`)
		if _, ok := n.get(t, st, "a", "x"); ok {
			t.Fatalf("atomic=%v: a failed batch wrote a/x", atomic)
		}
	}
	_, err := n.c.BatchPut(ctxT(t), &mudbv1.BatchPutRequest{StackId: sid, Items: []*mudbv1.TableKeyValue{
		{Table: "a", Key: []byte("x"), Value: []byte("1")}, {Table: "b", Key: []byte("y"), Value: []byte("2")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	bg, err := n.c.BatchGet(ctxT(t), &mudbv1.BatchGetRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "b", Key: []byte("y")}, {Table: "a", Key: []byte("missing")}, {Table: "a", Key: []byte("x")}}})
	if err != nil || len(bg.Items) != 2 || bg.Items[0].Table != "b" || string(bg.Items[1].Value) != "1" {
		t.Fatalf("batch get: %v %v", bg, err)
	}
	// BatchDelete is one transaction as well.
	_, err = n.c.BatchDelete(ctxT(t), &mudbv1.BatchDeleteRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "a", Key: []byte("x")}, {Table: "nope", Key: []byte("y")}}})
	wantCode(t, "batch delete undeclared", err, codes.NotFound, "", "nope")
	if _, ok := n.get(t, st, "a", "x"); !ok {
		t.Fatal("a failed batch delete deleted a/x")
	}
	if _, err := n.c.BatchDelete(ctxT(t), &mudbv1.BatchDeleteRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "a", Key: []byte("x")}, {Table: "b", Key: []byte("y")}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.get(t, st, "b", "y"); ok {
		t.Fatal("b/y survived BatchDelete")
	}
}

func TestIsolation_TwoStacksSameTablesAndKeys(t *testing.T) {
	n := start(t, testConfig())
	a, b := newStack(t), newStack(t)
	n.create(t, a, "t", "t2")
	n.create(t, b, "t")
	n.put(t, a, "t", "k", "a")
	n.put(t, b, "t", "k", "b")
	n.put(t, a, "t2", "k", "a2")
	if v, _ := n.get(t, a, "t", "k"); v != "a" {
		t.Errorf("a sees %q", v)
	}
	if v, _ := n.get(t, b, "t", "k"); v != "b" {
		t.Errorf("b sees %q", v)
	}
	_, err := n.c.Get(ctxT(t), &mudbv1.GetRequest{StackId: b.Bytes(), Table: "t2", Key: []byte("k")})
	wantCode(t, "b reads a's table", err, codes.NotFound, "", "t2")
	if _, err := n.c.DeleteByPrefix(ctxT(t), &mudbv1.DeleteByPrefixRequest{StackId: b.Bytes(), Table: "t"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := n.get(t, a, "t", "k"); v != "a" {
		t.Errorf("b's DeleteByPrefix reached a: %q", v)
	}
	if keys := n.scanAll(t, b, "t", "", 0); len(keys) != 0 {
		t.Errorf("b's table: %v", keys)
	}
	list, _ := n.c.TableList(ctxT(t), &mudbv1.TableListRequest{StackId: b.Bytes()})
	if strings.Join(list.GetTables(), ",") != "t" {
		t.Errorf("b's tables: %v", list.GetTables())
	}
}

func TestLimits_NameFieldSizeAndLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxKeyBytes = 16
	cfg.MaxValueBytes = 64
	cfg.MaxBatchEntries = 3
	cfg.MaxScanPage = 4
	cfg.DefaultScanPage = 2
	cfg.MaxTableNameBytes = 8
	cfg.MaxDeletePrefixKeys = 5
	cfg.MaxResponseBytes = 1200
	n := start(t, cfg)
	st := newStack(t)
	sid := st.Bytes()
	n.create(t, st, "t")
	ctx := ctxT(t)
	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	items := func(n int) []*mudbv1.TableKeyValue {
		var out []*mudbv1.TableKeyValue
		for i := range n {
			out = append(out, &mudbv1.TableKeyValue{Table: "t", Key: fmt.Appendf(nil, "k%d", i)})
		}
		return out
	}
	err := func(_ any, err error) error { return err }
	cases := []struct {
		name   string
		err    error
		code   codes.Code
		reason rpcerr.Reason
		msg    []string
	}{
		{"key", err(n.c.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: "t", Key: big(17)})), codes.InvalidArgument, rpcerr.RequestTooLarge, []string{"key is 17 bytes", "max_key_bytes 16"}},
		{"empty key", err(n.c.Get(ctx, &mudbv1.GetRequest{StackId: sid, Table: "t"})), codes.InvalidArgument, rpcerr.InvalidRequest, []string{"key"}},
		{"value", err(n.c.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: "t", Key: []byte("k"), Value: big(65)})), codes.InvalidArgument, rpcerr.RequestTooLarge, []string{"value is 65 bytes", "max_value_bytes 64"}},
		{"cas value", err(n.c.CompareAndSwap(ctx, &mudbv1.CompareAndSwapRequest{StackId: sid, Table: "t", Key: []byte("k"), NewValue: big(65)})), codes.InvalidArgument, rpcerr.RequestTooLarge, []string{"new_value", "max_value_bytes 64"}},
		{"prefix", err(n.c.Scan(ctx, &mudbv1.ScanRequest{StackId: sid, Table: "t", KeyPrefix: big(17)})), codes.InvalidArgument, rpcerr.RequestTooLarge, []string{"key_prefix is 17 bytes"}},
		{"batch put", err(n.c.BatchPut(ctx, &mudbv1.BatchPutRequest{StackId: sid, Items: items(4)})), codes.InvalidArgument, rpcerr.RequestTooLarge, []string{"items is 4 entries", "max_batch_entries 3"}},
		{"batch get", err(n.c.BatchGet(ctx, &mudbv1.BatchGetRequest{StackId: sid, Keys: make([]*mudbv1.TableKey, 4)})), codes.InvalidArgument, rpcerr.RequestTooLarge, []string{"keys is 4 entries"}},
		{"batch scan", err(n.c.BatchScan(ctx, &mudbv1.BatchScanRequest{StackId: sid, Scans: make([]*mudbv1.ScanSpec, 4)})), codes.InvalidArgument, rpcerr.RequestTooLarge, []string{"scans is 4 entries"}},
		{"table name", err(n.c.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: sid, Table: "ninechars"})), codes.InvalidArgument, rpcerr.RequestTooLarge, []string{"table is 9 bytes", "max_table_name_bytes 8"}},
		{"empty table", err(n.c.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: sid})), codes.InvalidArgument, rpcerr.InvalidRequest, []string{"table"}},
		// gRPC's Go client refuses to send invalid UTF-8; other clients may.
		{"bad utf-8 table", err(n.s.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: sid, Table: "\xff"})), codes.InvalidArgument, rpcerr.InvalidRequest, []string{"UTF-8"}},
		{"short stack", err(n.c.Get(ctx, &mudbv1.GetRequest{StackId: []byte{1, 2}, Table: "t", Key: []byte("k")})), codes.InvalidArgument, rpcerr.InvalidRequest, []string{"stack_id is 2 bytes, want 32"}},
		{"zero stack", err(n.c.TableList(ctx, &mudbv1.TableListRequest{StackId: make([]byte, 32)})), codes.InvalidArgument, rpcerr.InvalidRequest, []string{"zero"}},
		{"negative ttl", err(n.c.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: "t", Key: []byte("k"), Ttl: durationpb.New(-time.Second)})), codes.InvalidArgument, rpcerr.InvalidRequest, []string{"ttl"}},
	}
	for _, c := range cases {
		wantCode(t, c.name, c.err, c.code, c.reason, c.msg...)
	}

	// Page cap: limit 100 gets max_scan_page 4; limit 0 gets 2.
	for i := range 6 {
		n.put(t, st, "t", fmt.Sprintf("k%d", i), "")
	}
	if r, err := n.c.ScanKeys(ctx, &mudbv1.ScanKeysRequest{StackId: sid, Table: "t", Limit: 100}); err != nil || len(r.Keys) != 4 || len(r.NextCursor) == 0 {
		t.Errorf("page cap: %v %v", r, err)
	}
	if r, err := n.c.ScanKeys(ctx, &mudbv1.ScanKeysRequest{StackId: sid, Table: "t"}); err != nil || len(r.Keys) != 2 {
		t.Errorf("default page: %v %v", r, err)
	}

	// DeleteByPrefix over max_delete_prefix_keys deletes nothing.
	_, e := n.c.DeleteByPrefix(ctx, &mudbv1.DeleteByPrefixRequest{StackId: sid, Table: "t", KeyPrefix: []byte("k")})
	wantCode(t, "delete prefix", e, codes.ResourceExhausted, rpcerr.ResultTooLarge, "max_delete_prefix_keys 5")
	if keys := n.scanAll(t, st, "t", "", 0); len(keys) != 6 {
		t.Errorf("refused DeleteByPrefix deleted keys: %v", keys)
	}

	// Response bytes: 64-byte values; a page stops early with a cursor,
	// a BatchGet too big fails.
	for i := range 6 {
		n.put(t, st, "t", fmt.Sprintf("k%d", i), string(big(64)))
	}
	var got int
	var cursor []byte
	for {
		r, err := n.c.Scan(ctx, &mudbv1.ScanRequest{StackId: sid, Table: "t", Limit: 4, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, it := range r.Items {
			size += len(it.Key) + len(it.Value)
		}
		if size > cfg.MaxResponseBytes {
			t.Errorf("page of %d bytes", size)
		}
		got += len(r.Items)
		if len(r.NextCursor) == 0 {
			break
		}
		cursor = r.NextCursor
	}
	if got != 6 {
		t.Errorf("scan under the byte limit returned %d entries, want 6", got)
	}
	var keys []*mudbv1.TableKey
	for i := range 3 {
		keys = append(keys, &mudbv1.TableKey{Table: "t", Key: fmt.Appendf(nil, "k%d", i)})
	}
	if _, err := n.c.BatchGet(ctx, &mudbv1.BatchGetRequest{StackId: sid, Keys: keys}); err != nil {
		t.Errorf("batch get within the limit: %v", err)
	}
}

func TestLimits_ResponseBytes(t *testing.T) {
	cfg := testConfig()
	cfg.MaxKeyBytes = 16
	cfg.MaxValueBytes = 400
	cfg.MaxResponseBytes = 1000
	n := start(t, cfg)
	st := newStack(t)
	sid := st.Bytes()
	n.create(t, st, "t")
	var keys []*mudbv1.TableKey
	for i := range 5 {
		n.put(t, st, "t", fmt.Sprintf("k%d", i), strings.Repeat("v", 400))
		keys = append(keys, &mudbv1.TableKey{Table: "t", Key: fmt.Appendf(nil, "k%d", i)})
	}
	_, err := n.c.BatchGet(ctxT(t), &mudbv1.BatchGetRequest{StackId: sid, Keys: keys})
	wantCode(t, "batch get", err, codes.ResourceExhausted, rpcerr.ResultTooLarge, "max_response_bytes 1000")
	r, err := n.c.Scan(ctxT(t), &mudbv1.ScanRequest{StackId: sid, Table: "t", Limit: 5})
	if err != nil || len(r.Items) != 1 || len(r.NextCursor) == 0 {
		t.Fatalf("scan page under 1000 bytes: %d items, cursor %x, %v", len(r.GetItems()), r.GetNextCursor(), err)
	}
	// BatchScan shares the budget; the remaining scans continue later.
	bs, err := n.c.BatchScan(ctxT(t), &mudbv1.BatchScanRequest{StackId: sid, Scans: []*mudbv1.ScanSpec{{Table: "t"}, {Table: "t", KeyPrefix: []byte("k4")}}})
	if err != nil || len(bs.Results) != 2 || len(bs.Results[0].Items) != 1 || len(bs.Results[1].Items) != 0 || len(bs.Results[1].NextCursor) == 0 {
		t.Fatalf("batch scan: %v %v", bs, err)
	}
	bs2, err := n.c.BatchScan(ctxT(t), &mudbv1.BatchScanRequest{StackId: sid, Scans: []*mudbv1.ScanSpec{{Table: "t", KeyPrefix: []byte("k4"), Cursor: bs.Results[1].NextCursor}}})
	if err != nil || len(bs2.Results[0].Items) != 1 || string(bs2.Results[0].Items[0].Key) != "k4" {
		t.Fatalf("resumed batch scan: %v %v", bs2, err)
	}
}

func TestMetering_ExactCountsPerRPC(t *testing.T) {
	n := start(t, testConfig())
	st := newStack(t)
	sid := st.Bytes()
	n.create(t, st, "t", "u")
	ctx := ctxT(t)
	var reads, writes uint64
	check := func(name string, ops *mudbv1.MeteredOps, r, w uint64) {
		t.Helper()
		if ops.GetReads() != r || ops.GetWrites() != w {
			t.Errorf("%s: metered %d reads %d writes, want %d %d", name, ops.GetReads(), ops.GetWrites(), r, w)
		}
		reads += r
		writes += w
	}
	kv := func(tb, k string) *mudbv1.TableKeyValue {
		return &mudbv1.TableKeyValue{Table: tb, Key: []byte(k), Value: []byte("v")}
	}
	p, _ := n.c.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: "t", Key: []byte("a"), Value: []byte("1")})
	check("put", p.GetOps(), 0, 1)
	p, _ = n.c.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: "t", Key: []byte("b"), Value: []byte("1"), IsAtomic: true})
	check("atomic put", p.GetOps(), 0, 2)
	g, _ := n.c.Get(ctx, &mudbv1.GetRequest{StackId: sid, Table: "t", Key: []byte("a")})
	check("get hit", g.GetOps(), 1, 0)
	g, _ = n.c.Get(ctx, &mudbv1.GetRequest{StackId: sid, Table: "t", Key: []byte("zz")})
	check("get miss (min 1)", g.GetOps(), 1, 0)
	bp, _ := n.c.BatchPut(ctx, &mudbv1.BatchPutRequest{StackId: sid, Items: []*mudbv1.TableKeyValue{kv("t", "c"), kv("u", "c"), kv("t", "d")}})
	check("batch put", bp.GetOps(), 0, 3)
	bp, _ = n.c.BatchPut(ctx, &mudbv1.BatchPutRequest{StackId: sid, IsAtomic: true, Items: []*mudbv1.TableKeyValue{kv("t", "e"), kv("u", "e")}})
	check("atomic batch put", bp.GetOps(), 0, 4)
	bg, _ := n.c.BatchGet(ctx, &mudbv1.BatchGetRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "t", Key: []byte("a")}, {Table: "u", Key: []byte("c")}, {Table: "t", Key: []byte("zz")}}})
	check("batch get (2 found)", bg.GetOps(), 2, 0)
	bg, _ = n.c.BatchGet(ctx, &mudbv1.BatchGetRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "t", Key: []byte("zz")}}})
	check("batch get none (min 1)", bg.GetOps(), 1, 0)
	sc, _ := n.c.Scan(ctx, &mudbv1.ScanRequest{StackId: sid, Table: "t"}) // a b c d e
	check("scan", sc.GetOps(), 5, 0)
	sk, _ := n.c.ScanKeys(ctx, &mudbv1.ScanKeysRequest{StackId: sid, Table: "t", KeyPrefix: []byte("none")})
	check("scan keys empty (min 1)", sk.GetOps(), 1, 0)
	bs, _ := n.c.BatchScan(ctx, &mudbv1.BatchScanRequest{StackId: sid, Scans: []*mudbv1.ScanSpec{{Table: "t", Limit: 2}, {Table: "u"}}})
	check("batch scan", bs.GetOps(), 4, 0)
	bsk, _ := n.c.BatchScanKeys(ctx, &mudbv1.BatchScanKeysRequest{StackId: sid, Scans: []*mudbv1.ScanSpec{{Table: "u", KeyPrefix: []byte("x")}}})
	check("batch scan keys empty (min 1)", bsk.GetOps(), 1, 0)
	cas, _ := n.c.CompareAndSwap(ctx, &mudbv1.CompareAndSwapRequest{StackId: sid, Table: "t", Key: []byte("a"), NewValue: []byte("2"), PreviousValue: []byte("1")})
	check("cas swapped", cas.GetOps(), 1, 2)
	cas, _ = n.c.CompareAndSwap(ctx, &mudbv1.CompareAndSwapRequest{StackId: sid, Table: "t", Key: []byte("a"), NewValue: []byte("3"), PreviousValue: []byte("1")})
	check("cas not swapped", cas.GetOps(), 1, 2)
	d, _ := n.c.Delete(ctx, &mudbv1.DeleteRequest{StackId: sid, Table: "t", Key: []byte("zz")})
	check("delete missing", d.GetOps(), 0, 1)
	d, _ = n.c.Delete(ctx, &mudbv1.DeleteRequest{StackId: sid, Table: "t", Key: []byte("b"), IsAtomic: true})
	check("atomic delete", d.GetOps(), 0, 2)
	bd, _ := n.c.BatchDelete(ctx, &mudbv1.BatchDeleteRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: "t", Key: []byte("c")}, {Table: "u", Key: []byte("zz")}}})
	check("batch delete", bd.GetOps(), 0, 2)
	dp, _ := n.c.DeleteByPrefix(ctx, &mudbv1.DeleteByPrefixRequest{StackId: sid, Table: "t"}) // a d e
	if dp.GetKeysDeleted() != 3 {
		t.Errorf("delete by prefix removed %d keys, want 3", dp.GetKeysDeleted())
	}
	check("delete by prefix", dp.GetOps(), 0, 3)
	dp, _ = n.c.DeleteByPrefix(ctx, &mudbv1.DeleteByPrefixRequest{StackId: sid, Table: "t"})
	check("delete by prefix none (min 1)", dp.GetOps(), 0, 1)

	// muDB reported exactly the same through the usage pipeline; table
	// management is not metered.
	n.flushUsage(t)
	if got := n.usage.Total(st, usage.DBReads); got != reads {
		t.Errorf("usage DB_READS = %d, want %d", got, reads)
	}
	if got := n.usage.Total(st, usage.DBWrites); got != writes {
		t.Errorf("usage DB_WRITES = %d, want %d", got, writes)
	}
	if testutilCounter(t, n.s.metrics.reads) != float64(reads) || testutilCounter(t, n.s.metrics.writes) != float64(writes) {
		t.Error("metered metrics differ from the replies")
	}
}

func TestClose_FlushesUsageAndStopsSweeper(t *testing.T) {
	cfg := testConfig()
	cfg.Usage.FlushInterval = time.Hour // only Close sends it
	mem := usage.NewMemory()
	s, err := New(cfg, Deps{Usage: mem})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	st := newStack(t)
	if _, err := s.CreateTable(ctxT(t), &mudbv1.CreateTableRequest{StackId: st.Bytes(), Table: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctxT(t), &mudbv1.PutRequest{StackId: st.Bytes(), Table: "t", Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if mem.Total(st, usage.DBWrites) != 1 {
		t.Errorf("usage after Close: %d writes, want 1", mem.Total(st, usage.DBWrites))
	}
	select {
	case <-s.sweepDone:
	default:
		t.Error("sweeper still running after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
