package mu_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

func ptr[T any](v T) *T { return &v }

// hostCase is one host call: what the handler calls, the request frame the
// runtime must see, the reply it gives, and what the call must return.
type hostCase struct {
	name    string
	call    func(ctx *mu.Context) (any, error)
	wantReq fnproto.Message
	reply   fnproto.Message
	want    any
}

// runHostCases registers one handler per case and checks each round trip.
func runHostCases(t *testing.T, cases []hostCase) {
	t.Helper()
	app := mu.New()
	got := map[string]any{}
	errs := map[string]error{}
	for _, tc := range cases {
		app.Handle(tc.name, func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
			got[tc.name], errs[tc.name] = tc.call(ctx)
			return mu.Status(204), nil
		})
	}
	rt := serve(t, app)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := rt.call(tc.name, get(nil), func(fnproto.Message) fnproto.Message { return tc.reply })
			ex.result(t)
			if len(ex.calls) != 1 || !reflect.DeepEqual(ex.calls[0], tc.wantReq) {
				t.Errorf("runtime saw %#v\nwant %#v", ex.calls, tc.wantReq)
			}
			if errs[tc.name] != nil {
				t.Fatalf("error: %v", errs[tc.name])
			}
			if !reflect.DeepEqual(got[tc.name], tc.want) {
				t.Errorf("returned %#v\nwant %#v", got[tc.name], tc.want)
			}
		})
	}
	if err := rt.close(); err != nil {
		t.Fatal(err)
	}
}

type getResult struct {
	Value []byte
	Found bool
}

type casResult struct {
	Previous []byte
	Swapped  bool
}

func TestTable_RoundTrips(t *testing.T) {
	k, v := []byte("k1"), []byte("v1")
	kvs := []fnproto.KeyValue{{Key: []byte("a1"), Value: []byte("x")}, {Key: []byte("a2"), Value: []byte("y")}}
	runHostCases(t, []hostCase{
		{"Put", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("todos").Put(k, v) },
			&fnproto.Put{Table: "todos", Key: k, Value: v}, &fnproto.EmptyResult{}, nil},
		{"PutAtomic", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("todos").PutAtomic(k, v) },
			&fnproto.Put{Table: "todos", Key: k, Value: v, IsAtomic: true}, &fnproto.EmptyResult{}, nil},
		{"Get found", func(ctx *mu.Context) (any, error) {
			v, ok, err := ctx.Table("todos").Get(k)
			return getResult{v, ok}, err
		}, &fnproto.Get{Table: "todos", Key: k}, &fnproto.SingleResult{Item: &v}, getResult{v, true}},
		{"Get empty value", func(ctx *mu.Context) (any, error) {
			v, ok, err := ctx.Table("todos").Get(k)
			return getResult{v, ok}, err
		}, &fnproto.Get{Table: "todos", Key: k}, &fnproto.SingleResult{Item: ptr([]byte(nil))}, getResult{[]byte{}, true}},
		{"Get missing", func(ctx *mu.Context) (any, error) {
			v, ok, err := ctx.Table("todos").Get(k)
			return getResult{v, ok}, err
		}, &fnproto.Get{Table: "todos", Key: k}, &fnproto.SingleResult{}, getResult{nil, false}},
		{"Get missing as EmptyResult", func(ctx *mu.Context) (any, error) {
			v, ok, err := ctx.Table("todos").Get(k)
			return getResult{v, ok}, err
		}, &fnproto.Get{Table: "todos", Key: k}, &fnproto.EmptyResult{}, getResult{nil, false}},
		{"Delete", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("todos").Delete(k) },
			&fnproto.Delete{Table: "todos", Key: k}, &fnproto.EmptyResult{}, nil},
		{"DeleteAtomic", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("todos").DeleteAtomic(k) },
			&fnproto.Delete{Table: "todos", Key: k, IsAtomic: true}, &fnproto.EmptyResult{}, nil},
		{"DeleteByPrefix", func(ctx *mu.Context) (any, error) { return nil, ctx.Table("todos").DeleteByPrefix([]byte("a")) },
			&fnproto.DeleteByPrefix{Table: "todos", KeyPrefix: []byte("a")}, &fnproto.EmptyResult{}, nil},
		{"Scan", func(ctx *mu.Context) (any, error) { return ctx.Table("todos").Scan([]byte("a"), 10) },
			&fnproto.Scan{Table: "todos", KeyPrefix: []byte("a"), Limit: 10}, &fnproto.KeyValueListResult{List: kvs}, kvs},
		{"Scan without limit", func(ctx *mu.Context) (any, error) { return ctx.Table("todos").Scan(nil, 0) },
			&fnproto.Scan{Table: "todos", Limit: math.MaxUint32}, &fnproto.KeyValueListResult{}, []fnproto.KeyValue(nil)},
		{"ScanKeys", func(ctx *mu.Context) (any, error) { return ctx.Table("todos").ScanKeys([]byte("a"), 2) },
			&fnproto.ScanKeys{Table: "todos", KeyPrefix: []byte("a"), Limit: 2},
			&fnproto.ListResult{List: [][]byte{[]byte("a1"), []byte("a2")}}, [][]byte{[]byte("a1"), []byte("a2")}},
		{"CompareAndSwap must not exist", func(ctx *mu.Context) (any, error) {
			p, ok, err := ctx.Table("todos").CompareAndSwap(k, v, nil)
			return casResult{p, ok}, err
		}, &fnproto.CompareAndSwap{Table: "todos", Key: k, NewValue: v}, &fnproto.CasResult{IsSwapped: true}, casResult{nil, true}},
		{"CompareAndSwap expected value", func(ctx *mu.Context) (any, error) {
			p, ok, err := ctx.Table("todos").CompareAndSwap(k, v, []byte("old"))
			return casResult{p, ok}, err
		}, &fnproto.CompareAndSwap{Table: "todos", Key: k, NewValue: v, PreviousValue: ptr([]byte("old"))},
			&fnproto.CasResult{PreviousValue: ptr([]byte("other"))}, casResult{[]byte("other"), false}},
		{"CompareAndSwap expected empty", func(ctx *mu.Context) (any, error) {
			p, ok, err := ctx.Table("todos").CompareAndSwap(k, v, []byte{})
			return casResult{p, ok}, err
		}, &fnproto.CompareAndSwap{Table: "todos", Key: k, NewValue: v, PreviousValue: ptr([]byte(nil))},
			&fnproto.CasResult{PreviousValue: ptr([]byte(nil)), IsSwapped: true}, casResult{[]byte{}, true}},
	})
}

func TestDB_BatchRoundTrips(t *testing.T) {
	tkvs := []fnproto.TableKeyValue{{Table: "a", Key: []byte("1"), Value: []byte("x")}, {Table: "b", Key: []byte("2"), Value: []byte("y")}}
	tks := []fnproto.TableKey{{Table: "a", Key: []byte("1")}, {Table: "b", Key: []byte("2")}}
	runHostCases(t, []hostCase{
		{"Tables", func(ctx *mu.Context) (any, error) { return ctx.DB().Tables("to") },
			&fnproto.TableList{TablePrefix: "to"}, &fnproto.ListResult{List: [][]byte{[]byte("todos"), []byte("tokens")}}, []string{"todos", "tokens"}},
		{"BatchPut", func(ctx *mu.Context) (any, error) { return nil, ctx.DB().BatchPut(tkvs) },
			&fnproto.BatchPut{TableKeyValues: tkvs}, &fnproto.EmptyResult{}, nil},
		{"BatchPutAtomic", func(ctx *mu.Context) (any, error) { return nil, ctx.DB().BatchPutAtomic(tkvs) },
			&fnproto.BatchPut{TableKeyValues: tkvs, IsAtomic: true}, &fnproto.EmptyResult{}, nil},
		{"BatchGet", func(ctx *mu.Context) (any, error) { return ctx.DB().BatchGet(tks) },
			&fnproto.BatchGet{TableKeys: tks}, &fnproto.TableKeyValueListResult{List: tkvs}, tkvs},
		{"BatchDelete", func(ctx *mu.Context) (any, error) { return nil, ctx.DB().BatchDelete(tks) },
			&fnproto.BatchDelete{TableKeys: tks}, &fnproto.EmptyResult{}, nil},
		{"BatchScan", func(ctx *mu.Context) (any, error) { return ctx.DB().BatchScan(tks, 5) },
			&fnproto.BatchScan{TableKeyPrefixes: tks, Limit: 5}, &fnproto.TableKeyValueListResult{List: tkvs}, tkvs},
		{"BatchScanKeys", func(ctx *mu.Context) (any, error) { return ctx.DB().BatchScanKeys(tks, -1) },
			&fnproto.BatchScanKeys{TableKeyPrefixes: tks, Limit: math.MaxUint32}, &fnproto.TableKeyListResult{List: tks}, tks},
		{"DB.Table", func(ctx *mu.Context) (any, error) { return nil, ctx.DB().Table("x").Delete([]byte("k")) },
			&fnproto.Delete{Table: "x", Key: []byte("k")}, &fnproto.EmptyResult{}, nil},
	})
}

func TestBox_RoundTrips(t *testing.T) {
	data := []byte("contents")
	objs := []fnproto.StorageObject{{Key: "img/a.png", Size: 10}, {Key: "img/b.png", Size: 0}}
	runHostCases(t, []hostCase{
		{"Put", func(ctx *mu.Context) (any, error) { return nil, ctx.Storage("files").Put("a.txt", data) },
			&fnproto.StoragePut{Storage: "files", Key: "a.txt", Data: data}, &fnproto.StorageEmptyResult{}, nil},
		{"Get", func(ctx *mu.Context) (any, error) {
			d, ok, err := ctx.Storage("files").Get("a.txt")
			return getResult{d, ok}, err
		}, &fnproto.StorageGet{Storage: "files", Key: "a.txt"}, &fnproto.StorageGetResult{Data: &data}, getResult{data, true}},
		{"Get empty object", func(ctx *mu.Context) (any, error) {
			d, ok, err := ctx.Storage("files").Get("a.txt")
			return getResult{d, ok}, err
		}, &fnproto.StorageGet{Storage: "files", Key: "a.txt"}, &fnproto.StorageGetResult{Data: ptr([]byte(nil))}, getResult{[]byte{}, true}},
		{"Get missing", func(ctx *mu.Context) (any, error) {
			d, ok, err := ctx.Storage("files").Get("a.txt")
			return getResult{d, ok}, err
		}, &fnproto.StorageGet{Storage: "files", Key: "a.txt"}, &fnproto.StorageGetResult{}, getResult{nil, false}},
		{"Delete", func(ctx *mu.Context) (any, error) { return nil, ctx.Storage("files").Delete("a.txt") },
			&fnproto.StorageDelete{Storage: "files", Key: "a.txt"}, &fnproto.StorageEmptyResult{}, nil},
		{"List", func(ctx *mu.Context) (any, error) { return ctx.Storage("files").List("img/") },
			&fnproto.StorageList{Storage: "files", Prefix: "img/"}, &fnproto.ObjectListResult{List: objs}, objs},
	})
}

func TestContext_FetchRoundTrips(t *testing.T) {
	hdrs := []fnproto.Header{{Name: "Accept", Value: "text/plain"}}
	runHostCases(t, []hostCase{
		{"Fetch", func(ctx *mu.Context) (any, error) {
			return ctx.Fetch("POST", "https://example.com/x", []byte("in"), hdrs...)
		}, &fnproto.HTTPRequest{Method: "POST", URL: "https://example.com/x", Headers: hdrs, Body: []byte("in")},
			&fnproto.HTTPResponse{Status: 503, Headers: hdrs, Body: []byte("busy")},
			&mu.Response{Status: 503, Headers: hdrs, Body: []byte("busy")}},
	})
}

func TestHostCalls_ServiceErrorsAreTyped(t *testing.T) {
	tests := []struct {
		name  string
		call  func(ctx *mu.Context) error
		reply fnproto.Message
		check func(t *testing.T, err error)
	}{
		{"DbError on a table", func(ctx *mu.Context) error { return ctx.Table("todos").Put([]byte("k"), nil) },
			&fnproto.DbError{Error: "database service unavailable"}, func(t *testing.T, err error) {
				var de *mu.DBError
				if !errors.As(err, &de) || *de != (mu.DBError{Op: "Put", Table: "todos", Message: "database service unavailable"}) {
					t.Fatalf("err = %#v", err)
				}
				if err.Error() != `mu: db Put "todos": database service unavailable` {
					t.Errorf("Error() = %q", err)
				}
			}},
		{"DbError on a batch", func(ctx *mu.Context) error { _, err := ctx.DB().BatchGet(nil); return err },
			&fnproto.DbError{Error: "nope"}, func(t *testing.T, err error) {
				if err == nil || err.Error() != "mu: db BatchGet: nope" {
					t.Errorf("err = %v", err)
				}
			}},
		{"DbError on Get", func(ctx *mu.Context) error { _, _, err := ctx.Table("t").Get(nil); return err },
			&fnproto.DbError{Error: "nope"}, func(t *testing.T, err error) {
				var de *mu.DBError
				if !errors.As(err, &de) || de.Op != "Get" {
					t.Errorf("err = %v", err)
				}
			}},
		{"StorageError", func(ctx *mu.Context) error { _, _, err := ctx.Storage("files").Get("a.txt"); return err },
			&fnproto.StorageError{Error: "bucket gone"}, func(t *testing.T, err error) {
				var se *mu.StorageError
				if !errors.As(err, &se) || *se != (mu.StorageError{Op: "StorageGet", Box: "files", Key: "a.txt", Message: "bucket gone"}) {
					t.Fatalf("err = %#v", err)
				}
				if err.Error() != `mu: storage StorageGet "files" "a.txt": bucket gone` {
					t.Errorf("Error() = %q", err)
				}
			}},
		{"StorageError on Put", func(ctx *mu.Context) error { return ctx.Storage("files").Put("k", nil) },
			&fnproto.StorageError{Error: "full"}, func(t *testing.T, err error) {
				var se *mu.StorageError
				if !errors.As(err, &se) || se.Op != "StoragePut" {
					t.Errorf("err = %v", err)
				}
			}},
		{"FetchError", func(ctx *mu.Context) error { _, err := ctx.Fetch("GET", "http://x", nil); return err },
			&fnproto.HTTPResponse{Error: ptr("connection refused")}, func(t *testing.T, err error) {
				var fe *mu.FetchError
				if !errors.As(err, &fe) || err.Error() != "mu: fetch GET http://x: connection refused" {
					t.Errorf("err = %v", err)
				}
			}},
	}
	app := mu.New()
	errs := map[string]error{}
	for _, tt := range tests {
		call := tt.call
		app.Handle(tt.name, func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
			errs[tt.name] = call(ctx)
			return mu.Status(204), nil
		})
	}
	rt := serve(t, app)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := tt.reply
			rt.call(tt.name, get(nil), func(fnproto.Message) fnproto.Message { return reply }).result(t)
			tt.check(t, errs[tt.name])
		})
	}
	if err := rt.close(); err != nil {
		t.Fatal(err)
	}
}

func TestHostCalls_WrongKindReplyIsProtocolError(t *testing.T) {
	tests := []struct {
		name  string
		call  func(ctx *mu.Context) error
		reply fnproto.Message
		want  string
	}{
		{"Put answered with SingleResult", func(ctx *mu.Context) error { return ctx.Table("t").Put(nil, nil) },
			&fnproto.SingleResult{}, "Put answered with SingleResult"},
		{"Get answered with StorageError", func(ctx *mu.Context) error { _, _, err := ctx.Table("t").Get(nil); return err },
			&fnproto.StorageError{Error: "x"}, "Get answered with StorageError"},
		{"Scan answered with ListResult", func(ctx *mu.Context) error { _, err := ctx.Table("t").Scan(nil, 1); return err },
			&fnproto.ListResult{}, "Scan answered with ListResult"},
		{"storage answered with DbError", func(ctx *mu.Context) error { return ctx.Storage("b").Delete("k") },
			&fnproto.DbError{Error: "x"}, "StorageDelete answered with DbError"},
		{"answered with ExecuteFunction", func(ctx *mu.Context) error { _, err := ctx.DB().BatchScanKeys(nil, 1); return err },
			&fnproto.ExecuteFunction{Function: "f"}, "BatchScanKeys answered with ExecuteFunction"},
		{"Fetch answered with EmptyResult", func(ctx *mu.Context) error { _, err := ctx.Fetch("GET", "http://x", nil); return err },
			&fnproto.EmptyResult{}, "HTTPRequest answered with EmptyResult"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := mu.New()
			var first, second error
			app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
				first = tt.call(ctx)
				second = ctx.Table("t").Delete(nil) // must not reach the runtime
				return mu.Status(204), nil          // ignored: the stream is broken
			})
			rt := serve(t, app)
			reply := tt.reply
			ex := rt.call("f", get(nil), func(fnproto.Message) fnproto.Message { return reply })
			if msg := ex.fatal(t); !strings.Contains(msg, "mu: protocol error: "+tt.want) {
				t.Errorf("FatalError = %q", msg)
			}
			if len(ex.calls) != 1 {
				t.Errorf("%d host calls reached the runtime, want 1", len(ex.calls))
			}
			if !errors.Is(first, mu.ErrProtocol) || !strings.Contains(first.Error(), tt.want) {
				t.Errorf("call error = %v", first)
			}
			if !errors.Is(second, mu.ErrProtocol) {
				t.Errorf("later call error = %v, want the same protocol error", second)
			}
			if err := rt.wait(); !errors.Is(err, mu.ErrProtocol) {
				t.Errorf("Serve = %v, want ErrProtocol", err)
			}
		})
	}
}

func TestHostCalls_EOFWhileAwaitingReply(t *testing.T) {
	app := mu.New()
	got := make(chan error, 1)
	app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		_, _, err := ctx.Table("t").Get([]byte("k"))
		got <- err
		return nil, err
	})
	rt := serve(t, app)
	rt.send(&fnproto.ExecuteFunction{Function: "f"})
	if _, ok := rt.recv().(*fnproto.Get); !ok {
		t.Fatal("want a Get")
	}
	rt.stdin.Close()
	if err := <-got; !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, mu.ErrProtocol) ||
		!strings.Contains(err.Error(), "reading the reply to Get") {
		t.Errorf("Get = %v", err)
	}
	if err := rt.wait(); !errors.Is(err, mu.ErrProtocol) {
		t.Errorf("Serve = %v", err)
	}
}

func TestHostCalls_RequestOverFrameLimitFailsWithoutSending(t *testing.T) {
	app := mu.New(mu.WithMaxFrameSize(1024))
	app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		err := ctx.Table("t").Put([]byte("k"), make([]byte, 2000))
		if !errors.Is(err, fnproto.ErrFrameTooLarge) {
			return nil, fmt.Errorf("big Put = %v", err)
		}
		if err := ctx.Storage("b").Put("bad\xff", nil); !errors.Is(err, fnproto.ErrMalformed) {
			return nil, fmt.Errorf("invalid key = %v", err)
		}
		if err := ctx.Table("t").Put([]byte("k"), []byte("small")); err != nil { // the stream is still fine
			return nil, err
		}
		return mu.Status(204), nil
	})
	rt := serve(t, app)
	ex := rt.call("f", get(nil), func(fnproto.Message) fnproto.Message { return &fnproto.EmptyResult{} })
	if ex.result(t).Status != 204 || len(ex.calls) != 1 {
		t.Errorf("exchange %+v", ex)
	}
}
