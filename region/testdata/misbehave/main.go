// Command misbehave is a test function that fails in every way a function
// can, one handler per failure, beside one that answers normally.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"
)

var sink [][]byte

// bulk is what the bulk handler fills and copies: clear and copy compile to
// memory.fill and memory.copy.
var bulk []byte

// garbageFrame is a complete frame of a kind no function may send.
var garbageFrame = []byte{6, 0, 0, 0, 0xef, 0xbe, 'j', 'u', 'n', 'k'}

// depth keeps recurse from being turned into a loop.
var depth int

//go:noinline
func recurse(n int) int {
	var pad [256]byte
	pad[n%len(pad)] = byte(n)
	depth = n
	return recurse(n+1) + int(pad[(n+1)%len(pad)])
}

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
	mu.Handle("bulk", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		bulk = make([]byte, 8<<20)
		for {
			clear(bulk)
			copy(bulk[:4<<20], bulk[4<<20:])
		}
	})
	// The function's own stdout is the protocol (the SDK points os.Stdout
	// at stderr); syscall.Write reaches it anyway.
	mu.Handle("garbage", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		for {
			syscall.Write(1, garbageFrame)
		}
	})
	mu.Handle("oversize", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		var h [6]byte
		binary.LittleEndian.PutUint32(h[:], 1<<31-1)
		binary.LittleEndian.PutUint16(h[4:], 2) // FunctionResult
		syscall.Write(1, h[:])
		return mu.Text(200, "oversize"), nil
	})
	mu.Handle("flood", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		line := strings.Repeat("x", 1000)
		for n := 0; ; n++ {
			fmt.Fprintln(os.Stderr, n, line)
		}
	})
	mu.Handle("recurse", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		return mu.Text(200, fmt.Sprint(recurse(0))), nil
	})
	mu.Handle("db", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		_, _, err := ctx.Table("t").Get([]byte("k"))
		return mu.Text(200, "db: "+err.Error()), nil
	})
	mu.Run()
}
