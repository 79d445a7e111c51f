// Command misbehave is a test function that fails in every way a function
// can, one handler per failure, beside one that answers normally.
package main

import (
	"errors"
	"os"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"
)

var sink [][]byte

func main() {
	mu.Handle("ok", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		return mu.Text(200, "ok"), nil
	})
	mu.Handle("spin", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		n := 0
		for {
			n++
		}
	})
	mu.Handle("sleep", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		time.Sleep(time.Hour)
		return mu.Text(200, "slept"), nil
	})
	mu.Handle("exit", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		os.Exit(3)
		return nil, nil
	})
	mu.Handle("panic", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		panic("boom")
	})
	mu.Handle("fail", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		return nil, errors.New("no luck")
	})
	mu.Handle("hog", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	})
	mu.Handle("db", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		_, _, err := ctx.Table("t").Get([]byte("k"))
		return mu.Text(200, "db: "+err.Error()), nil
	})
	mu.Run()
}
