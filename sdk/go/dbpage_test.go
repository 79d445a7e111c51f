package mu_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

func TestTable_PagingAndTTLRoundTrips(t *testing.T) {
	k, v := []byte("k1"), []byte("v1")
	kvs := []fnproto.KeyValue{{Key: []byte("a1"), Value: []byte("x")}, {Key: []byte("a2"), Value: []byte("y")}}
	runHostCases(t, []hostCase{
		{"PutTTL", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("s").PutTTL(k, v, time.Minute) },
			&fnproto.PutExpiring{Table: "s", Key: k, Value: v, TTLSeconds: 60}, &fnproto.EmptyResult{}, nil},
		{"PutTTL rounds up", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("s").PutTTL(k, v, 1500*time.Millisecond) },
			&fnproto.PutExpiring{Table: "s", Key: k, Value: v, TTLSeconds: 2}, &fnproto.EmptyResult{}, nil},
		{"PutTTL of a nanosecond is a second", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("s").PutTTL(k, v, 1) },
			&fnproto.PutExpiring{Table: "s", Key: k, Value: v, TTLSeconds: 1}, &fnproto.EmptyResult{}, nil},
		{"PutTTL longest", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("s").PutTTL(k, v, math.MaxInt64) },
			&fnproto.PutExpiring{Table: "s", Key: k, Value: v, TTLSeconds: uint64(math.MaxInt64/int64(time.Second)) + 1}, &fnproto.EmptyResult{}, nil},
		{"PutAtomicTTL", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("s").PutAtomicTTL(k, v, time.Hour) },
			&fnproto.PutExpiring{Table: "s", Key: k, Value: v, IsAtomic: true, TTLSeconds: 3600}, &fnproto.EmptyResult{}, nil},
		{"ScanPage first", func(ctx *mu.Context) (any, error) { return ctx.Table("t").ScanPage([]byte("a"), 2, nil) },
			&fnproto.ScanPage{Table: "t", KeyPrefix: []byte("a"), Limit: 2},
			&fnproto.KeyValuePageResult{List: kvs, NextCursor: []byte("c1")}, mu.Page{Items: kvs, Next: []byte("c1")}},
		{"ScanPage last", func(ctx *mu.Context) (any, error) { return ctx.Table("t").ScanPage(nil, 0, []byte("c1")) },
			&fnproto.ScanPage{Table: "t", Limit: math.MaxUint32, Cursor: []byte("c1")},
			&fnproto.KeyValuePageResult{List: kvs}, mu.Page{Items: kvs}},
		{"ScanKeysPage", func(ctx *mu.Context) (any, error) { return ctx.Table("t").ScanKeysPage([]byte("a"), 5, []byte("c")) },
			&fnproto.ScanKeysPage{Table: "t", KeyPrefix: []byte("a"), Limit: 5, Cursor: []byte("c")},
			&fnproto.KeyPageResult{List: [][]byte{[]byte("a1")}, NextCursor: []byte("d")}, mu.KeyPage{Keys: [][]byte{[]byte("a1")}, Next: []byte("d")}},
	})
}

func TestDB_PagingAndTTLRoundTrips(t *testing.T) {
	tkvs := []fnproto.TableKeyValue{{Table: "a", Key: []byte("1"), Value: []byte("x")}, {Table: "b", Key: []byte("2"), Value: []byte("y")}}
	scans := []mu.PageScan{{Table: "a", Prefix: []byte("p"), Limit: 3}, {Table: "b", Cursor: []byte("cb")}}
	wire := []fnproto.ScanSpec{{Table: "a", KeyPrefix: []byte("p"), Limit: 3}, {Table: "b", Limit: math.MaxUint32, Cursor: []byte("cb")}}
	runHostCases(t, []hostCase{
		{"BatchPutTTL", func(ctx *mu.Context) (any, error) { return nil, ctx.DB().BatchPutTTL(tkvs, 90*time.Second) },
			&fnproto.BatchPutExpiring{TableKeyValues: tkvs, TTLSeconds: 90}, &fnproto.EmptyResult{}, nil},
		{"BatchPutAtomicTTL", func(ctx *mu.Context) (any, error) { return nil, ctx.DB().BatchPutAtomicTTL(tkvs, time.Millisecond) },
			&fnproto.BatchPutExpiring{TableKeyValues: tkvs, IsAtomic: true, TTLSeconds: 1}, &fnproto.EmptyResult{}, nil},
		{"BatchScanPage", func(ctx *mu.Context) (any, error) { return ctx.DB().BatchScanPage(scans) },
			&fnproto.BatchScanPage{Scans: wire},
			&fnproto.BatchScanPageResult{Results: []fnproto.TableKeyValuePage{
				{Table: "a", List: []fnproto.KeyValue{{Key: []byte("p1"), Value: []byte("x")}}, NextCursor: []byte("ca")},
				{Table: "b"},
			}},
			[]mu.TablePage{{Table: "a", Items: []fnproto.KeyValue{{Key: []byte("p1"), Value: []byte("x")}}, Next: []byte("ca")}, {Table: "b"}}},
		{"BatchScanKeysPage", func(ctx *mu.Context) (any, error) { return ctx.DB().BatchScanKeysPage(scans) },
			&fnproto.BatchScanKeysPage{Scans: wire},
			&fnproto.BatchScanKeysPageResult{Results: []fnproto.TableKeyPage{
				{Table: "a", Keys: [][]byte{[]byte("p1")}}, {Table: "b", Keys: [][]byte{[]byte("z")}, NextCursor: []byte("n")},
			}},
			[]mu.TableKeyPage{{Table: "a", Keys: [][]byte{[]byte("p1")}}, {Table: "b", Keys: [][]byte{[]byte("z")}, Next: []byte("n")}}},
		{"BatchScanPage none", func(ctx *mu.Context) (any, error) { return ctx.DB().BatchScanPage(nil) },
			&fnproto.BatchScanPage{}, &fnproto.BatchScanPageResult{}, []mu.TablePage{}},
	})
}

// pagedTable answers ScanPage and ScanKeysPage from keys, pageSize per
// page, with the index of the next key as the cursor.
func pagedTable(t *testing.T, keys []string, pageSize int) func(fnproto.Message) fnproto.Message {
	return func(m fnproto.Message) fnproto.Message {
		var cursor []byte
		switch m := m.(type) {
		case *fnproto.ScanPage:
			cursor = m.Cursor
		case *fnproto.ScanKeysPage:
			cursor = m.Cursor
		default:
			t.Errorf("unexpected %T", m)
			return &fnproto.DbError{Error: "unexpected"}
		}
		start := 0
		if cursor != nil {
			fmt.Sscan(string(cursor), &start)
		}
		end := min(start+pageSize, len(keys))
		var next []byte
		if end < len(keys) {
			next = fmt.Append(nil, end)
		}
		if _, ok := m.(*fnproto.ScanKeysPage); ok {
			r := &fnproto.KeyPageResult{NextCursor: next}
			for _, k := range keys[start:end] {
				r.List = append(r.List, []byte(k))
			}
			return r
		}
		r := &fnproto.KeyValuePageResult{NextCursor: next}
		for _, k := range keys[start:end] {
			r.List = append(r.List, fnproto.KeyValue{Key: []byte(k), Value: []byte("v" + k)})
		}
		return r
	}
}

func TestTable_AllAndKeysFollowCursors(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e", "f", "g"}
	var all, allKeys, firstThree []string
	var allErr, keysErr error
	app := mu.New()
	app.Handle("all", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		for kv, err := range ctx.Table("t").All([]byte("p")) {
			if err != nil {
				allErr = err
				break
			}
			all = append(all, string(kv.Key)+"="+string(kv.Value))
		}
		return mu.Status(204), nil
	})
	app.Handle("keys", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		for k, err := range ctx.Table("t").Keys(nil) {
			if err != nil {
				keysErr = err
				break
			}
			allKeys = append(allKeys, string(k))
		}
		return mu.Status(204), nil
	})
	app.Handle("break", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		for kv, err := range ctx.Table("t").All(nil) {
			if err != nil || len(firstThree) == 3 {
				break
			}
			firstThree = append(firstThree, string(kv.Key))
		}
		return mu.Status(204), nil
	})
	rt := serve(t, app)

	ex := rt.call("all", get(nil), pagedTable(t, keys, 3))
	ex.result(t)
	if allErr != nil || strings.Join(all, ",") != "a=va,b=vb,c=vc,d=vd,e=ve,f=vf,g=vg" {
		t.Errorf("All = %v, %v", all, allErr)
	}
	// Three pages: the first without a cursor, then the cursors given.
	if len(ex.calls) != 3 || ex.calls[0].(*fnproto.ScanPage).Cursor != nil ||
		string(ex.calls[1].(*fnproto.ScanPage).Cursor) != "3" || string(ex.calls[2].(*fnproto.ScanPage).Cursor) != "6" ||
		string(ex.calls[0].(*fnproto.ScanPage).KeyPrefix) != "p" || string(ex.calls[2].(*fnproto.ScanPage).KeyPrefix) != "p" {
		t.Errorf("host calls %#v", ex.calls)
	}

	ex = rt.call("keys", get(nil), pagedTable(t, keys, 7)) // exactly one full page
	ex.result(t)
	if keysErr != nil || strings.Join(allKeys, "") != "abcdefg" || len(ex.calls) != 1 {
		t.Errorf("Keys = %v, %v after %d calls", allKeys, keysErr, len(ex.calls))
	}

	ex = rt.call("break", get(nil), pagedTable(t, keys, 2))
	ex.result(t)
	if strings.Join(firstThree, "") != "abc" || len(ex.calls) != 2 {
		t.Errorf("break after 3: got %v after %d page reads, want abc after 2", firstThree, len(ex.calls))
	}
	if err := rt.close(); err != nil {
		t.Fatal(err)
	}
}

func TestTable_AllYieldsErrorsOnce(t *testing.T) {
	var seen []string
	app := mu.New()
	app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		for kv, err := range ctx.Table("t").All(nil) {
			if err != nil {
				seen = append(seen, "err:"+err.Error())
				continue // the iterator stops by itself
			}
			seen = append(seen, string(kv.Key))
		}
		for _, err := range ctx.Table("t").Keys(nil) {
			if err != nil {
				seen = append(seen, "err:"+err.Error())
			}
		}
		return mu.Status(204), nil
	})
	rt := serve(t, app)
	n := 0
	ex := rt.call("f", get(nil), func(m fnproto.Message) fnproto.Message {
		n++
		switch n {
		case 1:
			return &fnproto.KeyValuePageResult{List: []fnproto.KeyValue{{Key: []byte("a")}}, NextCursor: []byte("c")}
		case 2:
			return &fnproto.DbError{Error: `table "t" is not declared`}
		case 3:
			return &fnproto.KeyPageResult{NextCursor: []byte("c")}
		default: // the same cursor again with nothing in it: no progress
			return &fnproto.KeyPageResult{NextCursor: []byte("c")}
		}
	})
	ex.result(t)
	want := []string{"a", `err:mu: db ScanPage "t": table "t" is not declared`,
		`err:mu: db ScanKeysPage "t": the scan made no progress (empty page with an unchanged cursor)`}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("seen %q\nwant %q", seen, want)
	}
	if len(ex.calls) != 4 {
		t.Errorf("%d host calls, want 4", len(ex.calls))
	}
	if err := rt.close(); err != nil {
		t.Fatal(err)
	}
}

func TestTTL_NotPositiveFailsWithoutSending(t *testing.T) {
	app := mu.New()
	var errs []error
	app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		errs = append(errs,
			ctx.Table("s").PutTTL([]byte("k"), nil, 0),
			ctx.Table("s").PutAtomicTTL([]byte("k"), nil, -time.Second),
			ctx.DB().BatchPutTTL(nil, 0),
			ctx.DB().BatchPutAtomicTTL(nil, -1))
		return mu.Status(204), nil
	})
	rt := serve(t, app)
	rt.call("f", get(nil), nil).result(t) // nil host: any host call fails the test
	want := []string{`mu: db PutExpiring "s": mu: ttl must be positive, got 0s`, `mu: db PutExpiring "s": mu: ttl must be positive, got -1s`,
		"mu: db BatchPutExpiring: mu: ttl must be positive, got 0s", "mu: db BatchPutExpiring: mu: ttl must be positive, got -1ns"}
	for i, err := range errs {
		if !errors.Is(err, mu.ErrInvalidTTL) || err.Error() != want[i] {
			t.Errorf("error %d = %v, want %q wrapping ErrInvalidTTL", i, err, want[i])
		}
	}
}

func TestPaging_WrongKindReplyIsProtocolError(t *testing.T) {
	tests := []struct {
		name  string
		call  func(ctx *mu.Context) error
		reply fnproto.Message
		want  string
	}{
		{"ScanPage answered with KeyValueListResult", func(ctx *mu.Context) error { _, err := ctx.Table("t").ScanPage(nil, 1, nil); return err },
			&fnproto.KeyValueListResult{}, "ScanPage answered with KeyValueListResult"},
		{"ScanKeysPage answered with ListResult", func(ctx *mu.Context) error { _, err := ctx.Table("t").ScanKeysPage(nil, 1, nil); return err },
			&fnproto.ListResult{}, "ScanKeysPage answered with ListResult"},
		{"BatchScanPage answered with BatchScanKeysPageResult", func(ctx *mu.Context) error { _, err := ctx.DB().BatchScanPage(nil); return err },
			&fnproto.BatchScanKeysPageResult{}, "BatchScanPage answered with BatchScanKeysPageResult"},
		{"BatchScanKeysPage answered with TableKeyListResult", func(ctx *mu.Context) error { _, err := ctx.DB().BatchScanKeysPage(nil); return err },
			&fnproto.TableKeyListResult{}, "BatchScanKeysPage answered with TableKeyListResult"},
		{"PutTTL answered with CasResult", func(ctx *mu.Context) error { return ctx.Table("t").PutTTL(nil, nil, time.Second) },
			&fnproto.CasResult{}, "PutExpiring answered with CasResult"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := mu.New()
			var got error
			app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
				got = tt.call(ctx)
				return mu.Status(204), nil
			})
			rt := serve(t, app)
			reply := tt.reply
			ex := rt.call("f", get(nil), func(fnproto.Message) fnproto.Message { return reply })
			if msg := ex.fatal(t); !strings.Contains(msg, tt.want) {
				t.Errorf("FatalError = %q", msg)
			}
			if !errors.Is(got, mu.ErrProtocol) || !strings.Contains(got.Error(), tt.want) {
				t.Errorf("call error = %v", got)
			}
			rt.wait()
		})
	}
}

func TestPaging_DbErrorsAreTyped(t *testing.T) {
	app := mu.New()
	var errs []error
	app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		_, e1 := ctx.Table("t").ScanPage(nil, 0, []byte("bad"))
		_, e2 := ctx.Table("t").ScanKeysPage(nil, 0, nil)
		_, e3 := ctx.DB().BatchScanPage([]mu.PageScan{{Table: "t"}})
		_, e4 := ctx.DB().BatchScanKeysPage([]mu.PageScan{{Table: "t"}})
		e5 := ctx.DB().BatchPutTTL(nil, time.Second)
		errs = []error{e1, e2, e3, e4, e5}
		return mu.Status(204), nil
	})
	rt := serve(t, app)
	rt.call("f", get(nil), func(fnproto.Message) fnproto.Message { return &fnproto.DbError{Error: "boom"} }).result(t)
	want := []mu.DBError{{Op: "ScanPage", Table: "t", Message: "boom"}, {Op: "ScanKeysPage", Table: "t", Message: "boom"},
		{Op: "BatchScanPage", Message: "boom"}, {Op: "BatchScanKeysPage", Message: "boom"}, {Op: "BatchPutExpiring", Message: "boom"}}
	for i, err := range errs {
		var de *mu.DBError
		if !errors.As(err, &de) || *de != want[i] {
			t.Errorf("error %d = %#v, want %+v", i, err, want[i])
		}
	}
}
