// Package examples holds example mu stacks, one per directory, each a
// function (package main, built with GOOS=wasip1 GOARCH=wasm) beside its
// mu.yaml manifest:
//
//   - hello: GET /greet/{name} answers "Hello, {name}!".
//   - todo: a to-do list per user (the x-user-id header) in the muDB table
//     todos: GET / lists, POST / adds, GET and DELETE /{title}.
//
// Serve one locally with `mu run examples/hello`. Each function's handlers
// are tested on the host through mu.App.Serve (see hello/main_test.go) or
// end to end on a region (region/todo_test.go).
//
// This package has no code; it documents the module and keeps
// `go build ./...` from writing an executable named after a single example.
package examples
