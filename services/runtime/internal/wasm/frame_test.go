package wasm

import (
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

// executeFrameLen sizes Call's request buffer: it must be the encoded
// frame's exact length, or Call allocates again while encoding.
func TestExecuteFrameLen_IsTheEncodedLength(t *testing.T) {
	for _, req := range []fnproto.Request{
		{},
		{Method: "GET"},
		{Method: "POST", PathParams: map[string]string{"name": "ada", "id": "7"}, QueryParams: map[string]string{"q": "x y"},
			Headers: []fnproto.Header{{Name: "accept", Value: "*/*"}, {Name: "x-empty"}}, Body: []byte("{\"a\":1}")},
	} {
		frame, err := fnproto.AppendFrame(nil, &fnproto.ExecuteFunction{Function: "greet_user", Request: req})
		if err != nil {
			t.Fatal(err)
		}
		if got := executeFrameLen("greet_user", &req); got != len(frame) {
			t.Errorf("%+v: executeFrameLen %d, frame %d bytes", req, got, len(frame))
		}
	}
}
