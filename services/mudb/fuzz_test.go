package mudb

import (
	"bytes"
	"context"
	"testing"

	"github.com/muprotocol/mu/libs/ids"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// FuzzIsolation throws arbitrary table names, keys, prefixes and cursors
// from stack A at a node where stack B holds tables of the same and of
// neighbouring names: nothing A does may read, change or delete B's keys.
func FuzzIsolation(f *testing.F) {
	f.Add("todos", []byte("k"), []byte(""), []byte(""))
	f.Add("a", []byte("\x00"), []byte("\xff"), []byte("\x01\x01k"))
	f.Add("todos\x01", []byte("\xff\xff"), []byte("k"), []byte("\x01\x00"))
	cfg := testConfig()
	cfg.AdminAddr = ""
	s, err := New(cfg, Deps{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	a, b := ids.StackID{0xaa}, ids.StackID{0xbb}
	secret := []byte("B-secret")
	// B's tables: fixed names plus, per input, the fuzzed one.
	prepareB := func(table string) {
		for _, tb := range []string{"todos", "a", "todos\x01", table} {
			if _, err := s.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: b.Bytes(), Table: tb}); err != nil {
				continue // an invalid fuzzed name
			}
			for _, k := range [][]byte{[]byte("k"), {0}, {0xff}} {
				if _, err := s.Put(ctx, &mudbv1.PutRequest{StackId: b.Bytes(), Table: tb, Key: k, Value: secret}); err != nil {
					f.Fatal(err)
				}
			}
		}
	}
	bKeys := func() int {
		txn, _ := s.kv.Begin()
		defer txn.Rollback()
		p := keyspace.StackDataPrefix(b)
		it, err := txn.Iter(p, keyspace.PrefixEnd(p))
		if err != nil {
			f.Fatal(err)
		}
		defer it.Close()
		n := 0
		for ; it.Valid(); it.Next() {
			if v, _, err := keyspace.Unwrap(it.Value()); err != nil || !bytes.Equal(v, secret) {
				f.Fatalf("B's key %q holds %q", it.Key(), v)
			}
			n++
		}
		return n
	}
	f.Fuzz(func(t *testing.T, table string, key, prefix, cursor []byte) {
		prepareB(table)
		before := bKeys()
		sid := a.Bytes()
		s.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: sid, Table: table})
		s.Put(ctx, &mudbv1.PutRequest{StackId: sid, Table: table, Key: key, Value: []byte("A")})
		leak := func(what string, vals ...[]byte) {
			for _, v := range vals {
				if bytes.Equal(v, secret) {
					t.Fatalf("%s returned B's value", what)
				}
			}
		}
		if r, err := s.Get(ctx, &mudbv1.GetRequest{StackId: sid, Table: table, Key: key}); err == nil {
			leak("get", r.Value)
		}
		if r, err := s.Scan(ctx, &mudbv1.ScanRequest{StackId: sid, Table: table, KeyPrefix: prefix, Cursor: cursor}); err == nil {
			for _, it := range r.Items {
				leak("scan", it.Value)
			}
		}
		if r, err := s.BatchScan(ctx, &mudbv1.BatchScanRequest{StackId: sid, Scans: []*mudbv1.ScanSpec{{Table: table, KeyPrefix: prefix, Cursor: cursor}, {Table: "todos"}}}); err == nil {
			for _, res := range r.Results {
				for _, it := range res.Items {
					leak("batch scan", it.Value)
				}
			}
		}
		if r, err := s.BatchGet(ctx, &mudbv1.BatchGetRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: table, Key: key}, {Table: table, Key: prefix}}}); err == nil {
			for _, it := range r.Items {
				leak("batch get", it.Value)
			}
		}
		if r, err := s.CompareAndSwap(ctx, &mudbv1.CompareAndSwapRequest{StackId: sid, Table: table, Key: key, NewValue: []byte("A2"), PreviousValue: secret}); err == nil {
			if r.IsSwapped {
				t.Fatal("A swapped from B's value")
			}
			leak("cas", r.PreviousValue)
		}
		s.BatchDelete(ctx, &mudbv1.BatchDeleteRequest{StackId: sid, Keys: []*mudbv1.TableKey{{Table: table, Key: key}, {Table: table, Key: prefix}}})
		s.Delete(ctx, &mudbv1.DeleteRequest{StackId: sid, Table: table, Key: prefix})
		s.DeleteByPrefix(ctx, &mudbv1.DeleteByPrefixRequest{StackId: sid, Table: table, KeyPrefix: prefix})
		if after := bKeys(); after != before {
			t.Fatalf("B had %d keys, has %d after A's calls", before, after)
		}
	})
}
