// Command kv is the muDB benchmark's function (see mu.yaml): GET /get?key=
// answers Table.Get of the key, POST /put?key= does Table.Put of the body.
// Each request makes exactly one db call and nothing else, so the
// benchmark's "through mu" path differs from a direct client-go call only
// by what mu adds.
package main

import (
	mu "github.com/muprotocol/mu/sdk/go"
)

// table is the KeyValueTable declared in mu.yaml.
const table = "kv"

func get(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	v, found, err := ctx.Table(table).Get([]byte(req.Query("key")))
	if err != nil {
		return nil, err
	}
	if !found {
		return mu.Status(404), nil
	}
	return mu.Bytes(200, "application/octet-stream", v), nil
}

func put(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	if err := ctx.Table(table).Put([]byte(req.Query("key")), req.Body); err != nil {
		return nil, err
	}
	return mu.Status(204), nil
}

func main() {
	mu.Handle("get", get)
	mu.Handle("put", put)
	mu.Run()
}
