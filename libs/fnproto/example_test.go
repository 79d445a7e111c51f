package fnproto_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/muprotocol/mu/libs/fnproto"
)

// A function writes its requests to the runtime on stdout, one frame per
// message.
func ExampleWriter() {
	var stdout bytes.Buffer // os.Stdout in a function
	w := fnproto.NewWriter(&stdout)
	if err := w.Write(&fnproto.Log{Body: "saving", Level: fnproto.LogLevelInfo}); err != nil {
		panic(err)
	}
	if err := w.Write(&fnproto.Put{Table: "todos", Key: []byte("k1"), Value: []byte("v")}); err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", stdout.Bytes()[:17])
	fmt.Printf("% x\n", stdout.Bytes()[17:])
	// Output:
	// 0d 00 00 00 03 00 06 00 00 00 73 61 76 69 6e 67 02
	// 17 00 00 00 e9 03 05 00 00 00 74 6f 64 6f 73 02 00 00 00 6b 31 01 00 00 00 76 00
}

// The runtime reads a function's stdout until it ends, serving each request.
func ExampleReader() {
	var stdout bytes.Buffer // the function's stdout pipe in the runtime
	w := fnproto.NewWriter(&stdout)
	_ = w.Write(&fnproto.Get{Table: "todos", Key: []byte("k1")})
	_ = w.Write(&fnproto.FunctionResult{Response: fnproto.Response{Status: 200, Body: []byte("done")}})

	r := fnproto.NewReader(&stdout, fnproto.FromFunction, fnproto.DefaultMaxFrameSize)
	for {
		m, err := r.Read()
		if errors.Is(err, io.EOF) {
			fmt.Println("function closed stdout")
			return
		}
		if err != nil {
			fmt.Println("protocol error:", err)
			return
		}
		switch m := m.(type) {
		case *fnproto.Get:
			fmt.Printf("%s: table=%s key=%s\n", fnproto.KindName(m.Direction(), m.Kind()), m.Table, m.Key)
		case *fnproto.FunctionResult:
			fmt.Printf("result: %d %s\n", m.Response.Status, m.Response.Body)
		}
	}
	// Output:
	// Get: table=todos key=k1
	// result: 200 done
	// function closed stdout
}

// ParseFrame suits callers that manage their own buffer: it reports an
// incomplete frame as (nil, 0, nil).
func ExampleParseFrame() {
	frame, _ := fnproto.AppendFrame(nil, &fnproto.SingleResult{Item: nil})
	for _, buf := range [][]byte{frame[:4], frame} {
		m, n, err := fnproto.ParseFrame(fnproto.ToFunction, buf, 0)
		fmt.Printf("%d bytes: message=%v n=%d err=%v\n", len(buf), m != nil, n, err)
	}
	// Output:
	// 4 bytes: message=false n=0 err=<nil>
	// 7 bytes: message=true n=7 err=<nil>
}

// A host dispatches what a function asks for on the message's class, not on
// ranges of kind numbers.
func ExampleClassOf() {
	for _, m := range []fnproto.Message{
		&fnproto.Get{Table: "todos", Key: []byte("k1")},
		&fnproto.StorageList{Storage: "files"},
		&fnproto.HTTPRequest{Method: "GET", URL: "https://example.com"},
		&fnproto.Log{Body: "hi"},
	} {
		switch c := fnproto.ClassOf(m.Direction(), m.Kind()); c {
		case fnproto.ClassDb, fnproto.ClassStorage, fnproto.ClassHTTP:
			fmt.Printf("%s: serve from %s\n", fnproto.KindName(m.Direction(), m.Kind()), c)
		default:
			fmt.Printf("%s: %s message, handled by the call itself\n", fnproto.KindName(m.Direction(), m.Kind()), c)
		}
	}
	// Output:
	// Get: serve from db
	// StorageList: serve from storage
	// HTTPRequest: serve from http
	// Log: control message, handled by the call itself
}
