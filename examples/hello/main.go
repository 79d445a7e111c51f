// Command hello is the smallest mu function: the handler greet_user answers
// GET /greet/{name} (see mu.yaml) with "Hello, {name}!".
//
// Build it for the mu runtime with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//
// or let `mu build` / `mu run` do it. (-buildmode=c-shared makes a reactor,
// which the runtime enters once per request; a plain build makes a WASI
// command, which it also serves, a little slower.)
package main

import mu "github.com/muprotocol/mu/sdk/go"

// greetUser answers with a plain-text greeting for the path parameter name.
func greetUser(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	name := req.Param("name")
	ctx.Logger().Info("greeting", "name", name)
	return mu.Text(200, "Hello, "+name+"!"), nil
}

// register adds the handlers to the default App; it is separate from main so
// that main_test.go can serve the same handlers on the host.
func register() {
	mu.Handle("greet_user", greetUser)
}

func main() {
	register()
	mu.Run() // serves requests until the runtime closes stdin
}
