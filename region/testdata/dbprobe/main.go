// Command dbprobe drives muDB through the SDK for the region's end-to-end
// db tests: each handler is one operation whose inputs come from the query
// string, answering JSON, and a db error comes back as 422 {"error": ...}
// so tests can check its text.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"
)

func fail(err error) (*mu.Response, error) {
	var dbe *mu.DBError
	if errors.As(err, &dbe) {
		return mu.JSON(422, map[string]string{"error": err.Error()})
	}
	return nil, err
}

func num(req *mu.Request, name string, def int) int {
	if n, err := strconv.Atoi(req.Query(name)); err == nil {
		return n
	}
	return def
}

func table(ctx *mu.Context, req *mu.Request) *mu.Table {
	if t := req.Query("table"); t != "" {
		return ctx.Table(t)
	}
	return ctx.Table("items")
}

// fill writes keys prefix+%05d for i in [from, from+n) with value "v<i>",
// in atomic batches of at most 1,000.
func fill(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	prefix, from, n := req.Query("prefix"), num(req, "from", 0), num(req, "n", 0)
	for start := from; start < from+n; start += 1000 {
		var batch []mu.TableKeyValue
		for i := start; i < min(start+1000, from+n); i++ {
			batch = append(batch, mu.TableKeyValue{Table: "items", Key: fmt.Appendf(nil, "%s%05d", prefix, i), Value: fmt.Appendf(nil, "v%d", i)})
		}
		if err := ctx.DB().BatchPutAtomic(batch); err != nil {
			return fail(err)
		}
	}
	return mu.Text(200, "ok"), nil
}

// page returns one page of a scan: {"keys": [...], "next": base64 cursor}.
func page(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	cursor, err := base64.StdEncoding.DecodeString(req.Query("cursor"))
	if err != nil {
		return mu.Text(400, "cursor: "+err.Error()), nil
	}
	p, err := table(ctx, req).ScanPage([]byte(req.Query("prefix")), num(req, "limit", 0), cursor)
	if err != nil {
		return fail(err)
	}
	out := struct {
		Keys []string `json:"keys"`
		Next string   `json:"next"`
	}{Keys: []string{}, Next: base64.StdEncoding.EncodeToString(p.Next)}
	for _, kv := range p.Items {
		out.Keys = append(out.Keys, string(kv.Key))
	}
	return mu.JSON(200, out)
}

// put writes key (or a key of keylen bytes) with the request body as its
// value, or a value of size bytes; ttl (seconds) makes it expire.
func put(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	key := []byte(req.Query("key"))
	if n := num(req, "keylen", 0); n > 0 {
		key = []byte(strings.Repeat("k", n))
	}
	value := req.Body
	if n := num(req, "size", -1); n >= 0 {
		value = make([]byte, n)
	}
	t := table(ctx, req)
	var err error
	if ttl := num(req, "ttl", 0); ttl > 0 {
		err = t.PutTTL(key, value, time.Duration(ttl)*time.Second)
	} else {
		err = t.Put(key, value)
	}
	if err != nil {
		return fail(err)
	}
	return mu.Text(200, "ok"), nil
}

// get answers the key's value, or 404.
func get(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	v, found, err := table(ctx, req).Get([]byte(req.Query("key")))
	if err != nil {
		return fail(err)
	}
	if !found {
		return mu.Status(404), nil
	}
	return mu.Bytes(200, "application/octet-stream", v), nil
}

// incr adds 1 to the decimal counter under key, n times, each with a
// CompareAndSwap retry loop, and answers how many swaps were refused.
func incr(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	key, n := []byte(req.Query("key")), num(req, "n", 1)
	t := table(ctx, req)
	refused := 0
	for range n {
		cur, found, err := t.Get(key)
		if err != nil {
			return fail(err)
		}
		for {
			var expected []byte
			next := 1
			if found {
				expected = cur
				c, err := strconv.Atoi(string(cur))
				if err != nil {
					return nil, fmt.Errorf("counter %q: %w", cur, err)
				}
				next = c + 1
			}
			prev, swapped, err := t.CompareAndSwap(key, []byte(strconv.Itoa(next)), expected)
			if err != nil {
				return fail(err)
			}
			if swapped {
				break
			}
			refused++
			cur, found = prev, prev != nil
		}
	}
	return mu.Text(200, strconv.Itoa(refused)), nil
}

// batch writes the JSON body [{"table", "key", "value"}, ...] in one
// BatchPut (atomic with ?atomic=1); "size" instead of "value" makes a value
// of that many zero bytes.
func batch(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	var items []struct {
		Table, Key, Value string
		Size              int
	}
	if err := json.Unmarshal(req.Body, &items); err != nil {
		return mu.Text(400, err.Error()), nil
	}
	entries := make([]mu.TableKeyValue, len(items))
	for i, it := range items {
		v := []byte(it.Value)
		if it.Size > 0 {
			v = make([]byte, it.Size)
		}
		entries[i] = mu.TableKeyValue{Table: it.Table, Key: []byte(it.Key), Value: v}
	}
	var err error
	if req.Query("atomic") == "1" {
		err = ctx.DB().BatchPutAtomic(entries)
	} else {
		err = ctx.DB().BatchPut(entries)
	}
	if err != nil {
		return fail(err)
	}
	return mu.Text(200, "ok"), nil
}

func main() {
	mu.Handle("fill", fill)
	mu.Handle("page", page)
	mu.Handle("put", put)
	mu.Handle("get", get)
	mu.Handle("incr", incr)
	mu.Handle("batch", batch)
	mu.Run()
}
