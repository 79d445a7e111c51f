package mu_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"

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
