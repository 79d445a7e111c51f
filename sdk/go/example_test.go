package mu_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

// scripted returns the frames a runtime would write to a function's stdin.
// Replies to host calls are read in order, so a whole request, replies
// included, can be scripted up front.
func scripted(msgs ...fnproto.Message) *bytes.Buffer {
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = fnproto.AppendFrame(b, m); err != nil {
			panic(err)
		}
	}
	return bytes.NewBuffer(b)
}

// printFrames prints the frames a function wrote to its stdout.
func printFrames(out io.Reader) {
	r := fnproto.NewReader(out, fnproto.FromFunction, 0)
	for {
		m, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		switch m := m.(type) {
		case *fnproto.FunctionResult:
			fmt.Printf("FunctionResult %d %v %q\n", m.Response.Status, m.Response.Headers, m.Response.Body)
		case *fnproto.FatalError:
			fmt.Printf("FatalError %q\n", m.Error)
		case *fnproto.Log:
			fmt.Printf("Log %s %q\n", m.Level, m.Body)
		default:
			fmt.Printf("%s %+v\n", fnproto.KindName(fnproto.FromFunction, m.Kind()), m)
		}
	}
}

func greetUser(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	return mu.Text(200, "Hello, "+req.Param("name")+"!"), nil
}

func request(function string, params map[string]string) *fnproto.ExecuteFunction {
	return &fnproto.ExecuteFunction{Function: function, Request: fnproto.Request{Method: "GET", PathParams: params}}
}

// A function registers its handlers on DefaultApp and calls Run at the end
// of main:
//
//	func main() {
//		mu.Handle("greet_user", greetUser)
//		mu.Run()
//	}
//
// Run serves stdin and stdout; here DefaultApp is served over buffers that
// script the runtime's side instead.
func ExampleHandle() {
	mu.DefaultApp = mu.New() // a fresh default App for this example

	mu.Handle("greet_user", greetUser)

	in := scripted(request("greet_user", map[string]string{"name": "Ann"}))
	var out bytes.Buffer
	if err := mu.DefaultApp.Serve(in, &out); err != nil {
		fmt.Println(err)
	}
	printFrames(&out)
	// Output:
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "Hello, Ann!"
}

// Serve runs an App over any reader and writer, which is how a function is
// tested on the host, without wasm. One App serves requests in turn until
// its input ends.
func ExampleApp_Serve() {
	app := mu.New()
	app.Handle("greet_user", greetUser)

	in := scripted(
		request("greet_user", map[string]string{"name": "Ann"}),
		request("greet_user", map[string]string{"name": "Bob"}),
		request("delete_user", nil),
	)
	var out bytes.Buffer
	err := app.Serve(in, &out)
	fmt.Println("Serve:", err)
	printFrames(&out)
	// Output:
	// Serve: <nil>
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "Hello, Ann!"
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "Hello, Bob!"
	// FatalError "unknown function \"delete_user\"; registered: greet_user"
}

func ExampleJSON() {
	type todo struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	app := mu.New()
	app.Handle("get_todo", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		return mu.JSON(200, todo{ID: req.Param("id"), Title: "write the SDK"})
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(request("get_todo", map[string]string{"id": "7"})), &out)
	printFrames(&out)
	// Output:
	// FunctionResult 200 [{Content-Type application/json}] "{\"id\":\"7\",\"title\":\"write the SDK\"}"
}

// A handler error that wraps a *StatusError becomes a response with that
// status; any other error fails the request.
func ExampleErrorf() {
	app := mu.New()
	app.Handle("get_todo", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		id := req.Param("id")
		if id != "7" {
			return nil, mu.Errorf(404, "no todo %q", id)
		}
		return nil, errors.New("todo 7 is corrupt")
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(
		request("get_todo", map[string]string{"id": "8"}),
		request("get_todo", map[string]string{"id": "7"}),
	), &out)
	printFrames(&out)
	// Output:
	// FunctionResult 404 [{Content-Type text/plain; charset=utf-8}] "no todo \"8\""
	// FatalError "todo 7 is corrupt"
}

func ExampleResponse_WithHeader() {
	resp := mu.Text(200, "cached").WithHeader("Cache-Control", "max-age=60")
	fmt.Println(resp.Status, resp.Headers)
	// Output:
	// 200 [{Content-Type text/plain; charset=utf-8} {Cache-Control max-age=60}]
}

// Logger records become Log frames; they reach the runtime in one write
// with the response.
func ExampleContext_Logger() {
	app := mu.New(mu.WithLogLevel(slog.LevelDebug))
	app.Handle("greet_user", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		log := ctx.Logger().With("user", req.Param("name"))
		log.Debug("greeting")
		log.Warn("name is short", "len", len(req.Param("name")))
		return greetUser(ctx, req)
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(request("greet_user", map[string]string{"name": "Al"})), &out)
	printFrames(&out)
	// Output:
	// Log debug "greeting user=Al"
	// Log warn "name is short user=Al len=2"
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "Hello, Al!"
}

// Table calls write a request frame and block until the runtime's reply.
// Here the replies are scripted after the request.
func ExampleContext_Table() {
	app := mu.New()
	app.Handle("visit", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		visits := ctx.Table("visits")
		prev, found, err := visits.Get([]byte("count"))
		if err != nil {
			return nil, err
		}
		if !found {
			prev = []byte("0")
		}
		var n int
		fmt.Sscan(string(prev), &n)
		if err := visits.Put([]byte("count"), fmt.Append(nil, n+1)); err != nil {
			return nil, err
		}
		return mu.Text(200, fmt.Sprint("visit #", n+1)), nil
	})
	stored := []byte("41")
	var out bytes.Buffer
	_ = app.Serve(scripted(
		request("visit", nil),
		&fnproto.SingleResult{Item: &stored}, // reply to Get
		&fnproto.EmptyResult{},               // reply to Put
	), &out)
	printFrames(&out)
	// Output:
	// Get &{Table:visits Key:[99 111 117 110 116]}
	// Put &{Table:visits Key:[99 111 117 110 116] Value:[52 50] IsAtomic:false}
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "visit #42"
}

// Failures reported by the database service are *DBError values.
func ExampleDBError() {
	app := mu.New()
	app.Handle("save", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		err := ctx.Table("todos").Put([]byte("k"), req.Body)
		var dbErr *mu.DBError
		if errors.As(err, &dbErr) {
			return mu.Text(503, "try later: "+dbErr.Message), nil
		}
		if err != nil {
			return nil, err
		}
		return mu.Status(204), nil
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(request("save", nil), &fnproto.DbError{Error: "database unavailable"}), &out)
	printFrames(&out)
	// Output:
	// Put &{Table:todos Key:[107] Value:[] IsAtomic:false}
	// FunctionResult 503 [{Content-Type text/plain; charset=utf-8}] "try later: database unavailable"
}

// ScanPage reads one page and the cursor of the next; a function that
// serves its own paginated API hands the cursor to its client and passes
// it back on the next request.
func ExampleTable_ScanPage() {
	app := mu.New()
	app.Handle("list", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		var cursor []byte // from the client's previous page, nil at first
		if c := req.Query("cursor"); c != "" {
			cursor = []byte(c)
		}
		page, err := ctx.Table("todos").ScanPage([]byte("user/7/"), 2, cursor)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		for _, kv := range page.Items {
			fmt.Fprintf(&b, "%s ", kv.Key)
		}
		fmt.Fprintf(&b, "next=%q", page.Next)
		return mu.Text(200, b.String()), nil
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(
		request("list", nil),
		&fnproto.KeyValuePageResult{List: []fnproto.KeyValue{{Key: []byte("user/7/a")}, {Key: []byte("user/7/b")}}, NextCursor: []byte("opaque")},
	), &out)
	printFrames(&out)
	// Output:
	// ScanPage &{Table:todos KeyPrefix:[117 115 101 114 47 55 47] Limit:2 Cursor:[]}
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "user/7/a user/7/b next=\"opaque\""
}

// All walks every page of a prefix scan; each page is one host call, made
// when the loop reaches it.
func ExampleTable_All() {
	app := mu.New()
	app.Handle("count", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		n := 0
		for _, err := range ctx.Table("todos").All([]byte("user/7/")) {
			if err != nil {
				return nil, err
			}
			n++
		}
		return mu.Text(200, fmt.Sprint(n, " todos")), nil
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(
		request("count", nil),
		&fnproto.KeyValuePageResult{List: []fnproto.KeyValue{{Key: []byte("user/7/a")}, {Key: []byte("user/7/b")}}, NextCursor: []byte("c1")},
		&fnproto.KeyValuePageResult{List: []fnproto.KeyValue{{Key: []byte("user/7/c")}}}, // no cursor: done
	), &out)
	printFrames(&out)
	// Output:
	// ScanPage &{Table:todos KeyPrefix:[117 115 101 114 47 55 47] Limit:4294967295 Cursor:[]}
	// ScanPage &{Table:todos KeyPrefix:[117 115 101 114 47 55 47] Limit:4294967295 Cursor:[99 49]}
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "3 todos"
}

// PutTTL writes a key that expires: here a session that lasts 30 minutes.
// The ttl is rounded up to whole seconds.
func ExampleTable_PutTTL() {
	app := mu.New()
	app.Handle("login", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		if err := ctx.Table("sessions").PutTTL([]byte("s-1"), []byte("user 7"), 30*time.Minute); err != nil {
			return nil, err
		}
		return mu.Status(204), nil
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(request("login", nil), &fnproto.EmptyResult{}), &out)
	printFrames(&out)
	// Output:
	// PutExpiring &{Table:sessions Key:[115 45 49] Value:[117 115 101 114 32 55] IsAtomic:false TTLSeconds:1800}
	// FunctionResult 204 [] ""
}

// BatchScanPage pages several scans at once; each result carries its own
// cursor, and a scan is done when its Next is nil.
func ExampleDB_BatchScanPage() {
	app := mu.New()
	app.Handle("dump", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		scans := []mu.PageScan{{Table: "todos", Limit: 1}, {Table: "users", Limit: 1}}
		var b strings.Builder
		for len(scans) > 0 {
			pages, err := ctx.DB().BatchScanPage(scans)
			if err != nil {
				return nil, err
			}
			var more []mu.PageScan
			for i, p := range pages {
				for _, kv := range p.Items {
					fmt.Fprintf(&b, "%s/%s ", p.Table, kv.Key)
				}
				if p.Next != nil {
					s := scans[i]
					s.Cursor = p.Next
					more = append(more, s)
				}
			}
			scans = more
		}
		return mu.Text(200, b.String()), nil
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(
		request("dump", nil),
		&fnproto.BatchScanPageResult{Results: []fnproto.TableKeyValuePage{
			{Table: "todos", List: []fnproto.KeyValue{{Key: []byte("1")}}, NextCursor: []byte("t")},
			{Table: "users", List: []fnproto.KeyValue{{Key: []byte("ann")}}},
		}},
		&fnproto.BatchScanPageResult{Results: []fnproto.TableKeyValuePage{
			{Table: "todos", List: []fnproto.KeyValue{{Key: []byte("2")}}},
		}},
	), &out)
	printFrames(&out)
	// Output:
	// BatchScanPage &{Scans:[{Table:todos KeyPrefix:[] Limit:1 Cursor:[]} {Table:users KeyPrefix:[] Limit:1 Cursor:[]}]}
	// BatchScanPage &{Scans:[{Table:todos KeyPrefix:[] Limit:1 Cursor:[116]}]}
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "todos/1 users/ann todos/2 "
}

// PutReader streams a body of any size into a box, one chunk per host
// call; the object appears when the last chunk is committed.
func ExampleBox_PutReader() {
	app := mu.New()
	app.Handle("upload", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		info, err := ctx.Storage("files").PutReader("notes.txt", strings.NewReader("hello"), mu.WithContentType("text/plain"))
		if err != nil {
			return nil, err
		}
		return mu.Text(201, fmt.Sprintf("%d bytes, etag %s", info.Size, info.ETag)), nil
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(
		request("upload", nil),
		&fnproto.StorageUploadResult{Upload: 1},
		&fnproto.StorageEmptyResult{},
		&fnproto.StorageObjectResult{Size: 5, ETag: "e1"},
	), &out)
	printFrames(&out)
	// Output:
	// StoragePutBegin &{Storage:files Key:notes.txt ContentType:text/plain Size:<nil>}
	// StoragePutChunk &{Upload:1 Data:[104 101 108 108 111]}
	// StoragePutEnd &{Upload:1 Abort:false}
	// FunctionResult 201 [{Content-Type text/plain; charset=utf-8}] "5 bytes, etag e1"
}

// Open reads an object chunk by chunk, pinned to the etag of its first
// chunk, so a replacement midway is an error rather than mixed content.
func ExampleBox_Open() {
	app := mu.New()
	app.Handle("download", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		r, err := ctx.Storage("files").Open("notes.txt")
		if errors.Is(err, mu.ErrNotFound) {
			return mu.Text(404, "no such file"), nil
		}
		if err != nil {
			return nil, err
		}
		defer r.Close()
		body, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		return mu.Bytes(200, r.Info().ContentType, body), nil
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(
		request("download", nil),
		&fnproto.StorageRangeResult{Found: true, Data: []byte("hello"), TotalSize: 5, ETag: "e1", ContentType: "text/plain"},
	), &out)
	printFrames(&out)
	// Output:
	// StorageGetRange &{Storage:files Key:notes.txt Offset:0 Length:1048576 IfMatch:<nil>}
	// FunctionResult 200 [{Content-Type text/plain}] "hello"
}

// SignURL hands a browser a URL to upload straight to storage, so large
// files never pass through the function.
func ExampleBox_SignURL() {
	app := mu.New()
	app.Handle("upload_url", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		u, err := ctx.Storage("files").SignURL("avatar.png", "PUT", 15*time.Minute, &mu.SignURLOptions{MaxBytes: 5 << 20, ContentType: "image/png"})
		if err != nil {
			return nil, err
		}
		return mu.Text(200, u), nil
	})
	var out bytes.Buffer
	_ = app.Serve(scripted(
		request("upload_url", nil),
		&fnproto.StorageSignedURLResult{URL: "https://storage.example/signed/2xYb/files/avatar.png?sig=abc", ExpiresAtUnix: 1767226500},
	), &out)
	printFrames(&out)
	// Output:
	// StorageSignURL &{Storage:files Key:avatar.png Method:PUT ExpiresInSeconds:900 MaxBytes:5242880 ContentType:image/png}
	// FunctionResult 200 [{Content-Type text/plain; charset=utf-8}] "https://storage.example/signed/2xYb/files/avatar.png?sig=abc"
}
