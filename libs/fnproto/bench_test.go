package fnproto_test

import (
	"bytes"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

// benchExecuteFunction is a typical request: a few params, a dozen headers
// and a small JSON body.
func benchExecuteFunction() *fnproto.ExecuteFunction {
	return &fnproto.ExecuteFunction{
		Function: "todo.create",
		Request: fnproto.Request{
			Method:      "POST",
			PathParams:  map[string]string{"user": "alice", "list": "groceries"},
			QueryParams: map[string]string{"notify": "true", "lang": "en", "v": "2"},
			Headers: []fnproto.Header{
				{Name: "Host", Value: "gw.example.com"},
				{Name: "User-Agent", Value: "curl/8.5.0"},
				{Name: "Accept", Value: "*/*"},
				{Name: "Content-Type", Value: "application/json"},
				{Name: "Content-Length", Value: "64"},
				{Name: "X-Request-Id", Value: "7d9f2c1e-5b7a-4e8f-9a0b-1c2d3e4f5a6b"},
				{Name: "Traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
				{Name: "Accept-Encoding", Value: "gzip, deflate, br"},
			},
			Body: bytes.Repeat([]byte(`{"item":"milk"}`), 4),
		},
	}
}

func BenchmarkAppendFrameExecuteFunction(b *testing.B) {
	m := benchExecuteFunction()
	buf, err := fnproto.AppendFrame(nil, m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = fnproto.AppendFrame(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderRead(b *testing.B) {
	frame, err := fnproto.AppendFrame(nil, benchExecuteFunction())
	if err != nil {
		b.Fatal(err)
	}
	r := fnproto.NewReader(&repeatReader{data: frame}, fnproto.ToFunction, 0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderReadPut measures the common small database call.
func BenchmarkReaderReadPut(b *testing.B) {
	frame, err := fnproto.AppendFrame(nil, &fnproto.Put{Table: "todos", Key: []byte("user/alice/42"), Value: []byte(`{"item":"milk","done":false}`)})
	if err != nil {
		b.Fatal(err)
	}
	r := fnproto.NewReader(&repeatReader{data: frame}, fnproto.FromFunction, 0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
	}
}
