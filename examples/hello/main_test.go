package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/manifest"
	mu "github.com/muprotocol/mu/sdk/go"
)

// TestHello_GreetsEachUserInTurn serves the function's handlers, registered
// exactly as main registers them, the way the runtime would: several
// requests to one instance, then EOF.
func TestHello_GreetsEachUserInTurn(t *testing.T) {
	register()

	var in []byte
	names := []string{"Ann", "Bob", "wörld"}
	for _, name := range names {
		var err error
		in, err = fnproto.AppendFrame(in, &fnproto.ExecuteFunction{
			Function: "greet_user",
			Request:  fnproto.Request{Method: "GET", PathParams: map[string]string{"name": name}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := mu.DefaultApp.Serve(bytes.NewReader(in), &out); err != nil {
		t.Fatalf("Serve = %v, want nil at EOF", err)
	}

	r := fnproto.NewReader(&out, fnproto.FromFunction, 0)
	for _, name := range names {
		var logs []string
		var result *fnproto.FunctionResult
		for result == nil {
			m, err := r.Read()
			if err != nil {
				t.Fatalf("request for %q: %v", name, err)
			}
			switch m := m.(type) {
			case *fnproto.Log:
				logs = append(logs, m.Body)
			case *fnproto.FunctionResult:
				result = m
			default:
				t.Fatalf("request for %q: unexpected %#v", name, m)
			}
		}
		resp := result.Response
		want := fnproto.Response{
			Status:  200,
			Headers: []fnproto.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}},
			Body:    []byte("Hello, " + name + "!"),
		}
		if resp.Status != want.Status || !bytes.Equal(resp.Body, want.Body) || len(resp.Headers) != 1 || resp.Headers[0] != want.Headers[0] {
			t.Errorf("response = %+v, want %+v", resp, want)
		}
		if len(logs) != 1 || logs[0] != "greeting name="+name {
			t.Errorf("logs = %q", logs)
		}
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		t.Errorf("extra output after the last response: %v", err)
	}
}

// TestHello_ManifestRoutesToTheHandler checks that mu.yaml is valid and
// routes its endpoint to a handler this function registers.
func TestHello_ManifestRoutesToTheHandler(t *testing.T) {
	data, err := os.ReadFile("mu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		t.Fatalf("mu.yaml: %v", err)
	}
	if len(m.Gateways) != 1 || len(m.Gateways[0].Endpoints) != 1 {
		t.Fatalf("gateways = %+v", m.Gateways)
	}
	e := m.Gateways[0].Endpoints[0]
	if e.Method != "GET" || e.Path != "/greet/{name}" || e.Assembly != "hello" || e.Function != "greet_user" {
		t.Errorf("endpoint = %+v", e)
	}
	if f := m.Function("hello"); f == nil || f.MemoryLimit != 64*manifest.MiB || f.Runtime != manifest.RuntimeWASI1 {
		t.Errorf("function = %+v", f)
	}
}
