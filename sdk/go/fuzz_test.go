package mu_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

// FuzzServe feeds arbitrary runtime input to Serve, including replies to
// host calls. Serve must neither panic nor hang, and whatever it writes must
// be well-formed frames ending each request it started.
func FuzzServe(f *testing.F) {
	v := []byte("v")
	seeds := [][]byte{
		scripted(request("f", map[string]string{"name": "x"}), &fnproto.SingleResult{Item: &v}, &fnproto.EmptyResult{},
			&fnproto.ObjectListResult{List: []fnproto.StorageObject{{Key: "a", Size: 1}}}).Bytes(),
		scripted(request("f", nil), &fnproto.DbError{Error: "down"}).Bytes(),
		scripted(request("f", nil), &fnproto.ExecuteFunction{}).Bytes(),
		scripted(request("unknown", nil), request("panic", nil)).Bytes(),
		{0xff, 0xff, 0xff, 0xff, 1, 0},
		{1, 0, 0, 0, 1},
		{3, 0, 0, 0, 1, 0, 0xff},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	app := mu.New(mu.WithMaxFrameSize(1 << 16))
	app.Handle("f", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		ctx.Logger().Info("req", "name", req.Param("name"), "body", req.Body)
		v, _, err := ctx.Table("t").Get([]byte(req.Param("name")))
		if err != nil {
			return nil, err
		}
		if err := ctx.Table("t").Put([]byte("k"), v); err != nil {
			return nil, err
		}
		objs, err := ctx.Storage("b").List("")
		if err != nil {
			return nil, err
		}
		return mu.JSON(200, objs)
	})
	app.Handle("panic", func(*mu.Context, *mu.Request) (*mu.Response, error) { panic("boom") })
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		serveErr := app.Serve(bytes.NewReader(in), &out)
		r := fnproto.NewReader(&out, fnproto.FromFunction, 1<<16)
		for {
			_, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Serve (returned %v) wrote a bad frame: %v", serveErr, err)
			}
		}
	})
}
