// Command dbfunc is a test function of the runtime's db bridge: one handler
// runs every db operation of the SDK, cursor paging and TTL writes included,
// and answers with a transcript the test compares; the others fail in the
// ways a function can meet (an undeclared table, a value over muDB's limit,
// a reply too large for a frame, a request muDB never answers).
package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"
)

// transcript collects one line per operation.
type transcript struct {
	b   strings.Builder
	err error
}

func (t *transcript) line(format string, args ...any) { fmt.Fprintf(&t.b, format+"\n", args...) }

// check records err as the handler's failure unless one is recorded already.
func (t *transcript) check(op string, err error) bool {
	if err != nil && t.err == nil {
		t.err = fmt.Errorf("%s: %w", op, err)
	}
	return err == nil
}

func kvs(items []mu.KeyValue) string {
	var parts []string
	for _, kv := range items {
		parts = append(parts, string(kv.Key)+"="+string(kv.Value))
	}
	return strings.Join(parts, ",")
}

func keys(ks [][]byte) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, string(k))
	}
	return strings.Join(parts, ",")
}

func ops(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	var t transcript
	items, db := ctx.Table("items"), ctx.DB()

	t.check("Put", items.Put([]byte("a"), []byte("1")))
	t.check("PutAtomic", items.PutAtomic([]byte("b"), []byte("2")))
	t.check("PutTTL", items.PutTTL([]byte("s"), []byte("session"), 90*time.Second))
	t.check("PutAtomicTTL", items.PutAtomicTTL([]byte("t"), []byte("token"), 1500*time.Millisecond))
	v, found, err := items.Get([]byte("a"))
	t.check("Get", err)
	t.line("get a: %s %t", v, found)
	_, found, err = items.Get([]byte("nope"))
	t.check("Get missing", err)
	t.line("get nope: %t", found)
	prev, swapped, err := items.CompareAndSwap([]byte("c"), []byte("3"), nil)
	t.check("CompareAndSwap", err)
	t.line("cas c absent: %q %t", prev, swapped)
	prev, swapped, err = items.CompareAndSwap([]byte("c"), []byte("4"), []byte("wrong"))
	t.check("CompareAndSwap wrong", err)
	t.line("cas c wrong: %q %t", prev, swapped)
	prev, swapped, err = items.CompareAndSwap([]byte("c"), []byte("4"), []byte("3"))
	t.check("CompareAndSwap right", err)
	t.line("cas c right: %q %t", prev, swapped)

	t.check("BatchPut", db.BatchPut([]mu.TableKeyValue{{Table: "other", Key: []byte("o1"), Value: []byte("x")}, {Table: "other", Key: []byte("o2"), Value: []byte("y")}}))
	t.check("BatchPutAtomic", db.BatchPutAtomic([]mu.TableKeyValue{{Table: "other", Key: []byte("o3"), Value: []byte("z")}}))
	t.check("BatchPutTTL", db.BatchPutTTL([]mu.TableKeyValue{{Table: "other", Key: []byte("o4"), Value: []byte("w")}}, time.Minute))
	t.check("BatchPutAtomicTTL", db.BatchPutAtomicTTL([]mu.TableKeyValue{{Table: "other", Key: []byte("o5"), Value: []byte("v")}}, time.Hour))
	got, err := db.BatchGet([]mu.TableKey{{Table: "items", Key: []byte("a")}, {Table: "other", Key: []byte("o1")}, {Table: "items", Key: []byte("zz")}})
	t.check("BatchGet", err)
	var parts []string
	for _, e := range got {
		parts = append(parts, e.Table+"/"+string(e.Key)+"="+string(e.Value))
	}
	t.line("batch get: %s", strings.Join(parts, ","))

	var ten []mu.TableKeyValue
	for i := range 10 {
		ten = append(ten, mu.TableKeyValue{Table: "items", Key: fmt.Appendf(nil, "k%02d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	t.check("BatchPut ten", db.BatchPut(ten))

	list, err := items.Scan([]byte("k"), 0)
	t.check("Scan", err)
	t.line("scan (first page only): %s", kvs(list))
	ks, err := items.ScanKeys([]byte("k"), 2)
	t.check("ScanKeys", err)
	t.line("scan keys limit 2: %s", keys(ks))

	var cursor []byte
	for page := 1; ; page++ {
		p, err := items.ScanPage([]byte("k"), 3, cursor)
		if !t.check("ScanPage", err) {
			break
		}
		t.line("scan page %d: %s more=%t", page, kvs(p.Items), p.Next != nil)
		if p.Next == nil {
			break
		}
		cursor = p.Next
	}
	cursor = nil
	for page := 1; ; page++ {
		p, err := items.ScanKeysPage([]byte("k0"), 0, cursor)
		if !t.check("ScanKeysPage", err) {
			break
		}
		t.line("scan keys page %d: %s", page, keys(p.Keys))
		if p.Next == nil {
			break
		}
		cursor = p.Next
	}
	var all []string
	for kv, err := range items.All([]byte("k")) {
		if !t.check("All", err) {
			break
		}
		all = append(all, string(kv.Key))
	}
	t.line("all: %s", strings.Join(all, ","))
	var allKeys []string
	for k, err := range items.Keys(nil) {
		if !t.check("Keys", err) {
			break
		}
		allKeys = append(allKeys, string(k))
	}
	t.line("keys: %s", strings.Join(allKeys, ","))

	bs, err := db.BatchScan([]mu.TableKey{{Table: "items", Key: []byte("k")}, {Table: "other", Key: []byte("o")}}, 2)
	t.check("BatchScan", err)
	parts = nil
	for _, e := range bs {
		parts = append(parts, e.Table+"/"+string(e.Key))
	}
	t.line("batch scan: %s", strings.Join(parts, ","))
	bk, err := db.BatchScanKeys([]mu.TableKey{{Table: "other"}, {Table: "items", Key: []byte("k09")}}, 0)
	t.check("BatchScanKeys", err)
	parts = nil
	for _, e := range bk {
		parts = append(parts, e.Table+"/"+string(e.Key))
	}
	t.line("batch scan keys: %s", strings.Join(parts, ","))

	scans := []mu.PageScan{{Table: "items", Prefix: []byte("k"), Limit: 4}, {Table: "other", Limit: 4}}
	for round := 1; len(scans) > 0; round++ {
		pages, err := db.BatchScanPage(scans)
		if !t.check("BatchScanPage", err) {
			break
		}
		var more []mu.PageScan
		for i, p := range pages {
			t.line("batch scan page %d: %s %s", round, p.Table, kvs(p.Items))
			if p.Next != nil {
				s := scans[i]
				s.Cursor = p.Next
				more = append(more, s)
			}
		}
		scans = more
	}
	kpages, err := db.BatchScanKeysPage([]mu.PageScan{{Table: "other", Limit: 2}, {Table: "items", Prefix: []byte("x")}})
	t.check("BatchScanKeysPage", err)
	for _, p := range kpages {
		t.line("batch scan keys page: %s %s more=%t", p.Table, keys(p.Keys), p.Next != nil)
	}

	tables, err := db.Tables("")
	t.check("Tables", err)
	t.line("tables: %s", strings.Join(tables, ","))

	t.check("Delete", items.Delete([]byte("a")))
	t.check("DeleteAtomic", items.DeleteAtomic([]byte("b")))
	t.check("DeleteByPrefix", items.DeleteByPrefix([]byte("k")))
	t.check("BatchDelete", db.BatchDelete([]mu.TableKey{{Table: "other", Key: []byte("o1")}, {Table: "other", Key: []byte("o2")}}))
	ks, err = items.ScanKeys(nil, 0)
	t.check("ScanKeys after deletes", err)
	t.line("items left: %s", keys(ks))
	ks, err = ctx.Table("other").ScanKeys(nil, 0)
	t.check("ScanKeys other after deletes", err)
	t.line("other left: %s", keys(ks))

	if t.err != nil {
		return nil, t.err
	}
	return mu.Text(200, t.b.String()), nil
}

// dbErr answers with the text of a *mu.DBError, or fails.
func dbErr(err error) (*mu.Response, error) {
	var de *mu.DBError
	if errors.As(err, &de) {
		return mu.Text(200, de.Op+": "+de.Message), nil
	}
	return nil, fmt.Errorf("want a *mu.DBError, got %v", err)
}

func main() {
	mu.Handle("ops", ops)
	mu.Handle("get", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		v, found, err := ctx.Table("items").Get([]byte(req.Query("key")))
		if err != nil {
			return dbErr(err)
		}
		return mu.Text(200, fmt.Sprintf("%s %t", v, found)), nil
	})
	mu.Handle("put", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		if err := ctx.Table("items").Put([]byte(req.Query("key")), req.Body); err != nil {
			return dbErr(err)
		}
		return mu.Status(204), nil
	})
	mu.Handle("undeclared", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		return dbErr(ctx.Table("secrets").Put([]byte("k"), []byte("v")))
	})
	mu.Handle("undeclared_batch", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		_, err := ctx.DB().BatchScanPage([]mu.PageScan{{Table: "items"}, {Table: "secrets"}})
		return dbErr(err)
	})
	mu.Handle("big_value", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		return dbErr(ctx.Table("items").Put([]byte("big"), make([]byte, 2_000_000)))
	})
	mu.Handle("big_page", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		// Four values of 1 MB: one page of them is over a 3 MiB frame.
		for i := range 4 {
			if err := ctx.Table("items").Put(fmt.Appendf(nil, "big%d", i), make([]byte, 1_000_000)); err != nil {
				return nil, err
			}
		}
		_, err := ctx.Table("items").ScanPage([]byte("big"), 0, nil)
		return dbErr(err)
	})
	mu.Handle("bad_cursor", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		_, err := ctx.Table("items").ScanPage(nil, 0, []byte("not a cursor"))
		return dbErr(err)
	})
	mu.Run()
}
