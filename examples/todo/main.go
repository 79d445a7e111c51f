// Command todo is the classic to-do app on mu: every caller (the x-user-id
// header) has a list of todos, kept in the muDB table todos, and their
// attachments in the storage box todo-attachments (see mu.yaml).
//
//	GET    /          the caller's todos as a JSON array, by title (attachment names only)
//	POST   /          add {"title": "...", "done": false, "attachments": [{"name": "...", "data": "<base64>"}]};
//	                  201, or 409 if the title exists
//	GET    /{title}   one todo with its attachments' data, or 404
//	DELETE /{title}   remove it and its attachments; 204 whether or not it existed
//
// Errors are JSON objects {"error": "..."}. A todo is stored under the key
// "<len(user)>:<user>/<title>", so one user's key prefix can never match
// another user's keys, whatever the user ids contain; its attachments are
// objects "<that key>/<name>" in the box.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	mu "github.com/muprotocol/mu/sdk/go"
)

// table is the KeyValueTable and box the Storage declared in mu.yaml.
const (
	table = "todos"
	box   = "todo-attachments"
)

// Limits of the app's own, well inside muDB's (4 KiB keys, 1 MiB values).
const (
	maxUserBytes  = 256
	maxTitleBytes = 1024
	maxBodyBytes  = 4 << 20 // attachments included, base64
	maxNameBytes  = 255
	maxAttached   = 16
)

// todo is one entry of a user's list. In the table it keeps only the names
// of its attachments; their data lives in the box.
type todo struct {
	Title       string       `json:"title"`
	Done        bool         `json:"done"`
	Attachments []attachment `json:"attachments,omitempty"`
}

// attachment is one file of a todo; Data is base64 in JSON.
type attachment struct {
	Name string `json:"name"`
	Data []byte `json:"data,omitempty"`
}

// userPrefix is the key prefix of every todo of user.
func userPrefix(user string) []byte {
	return []byte(strconv.Itoa(len(user)) + ":" + user + "/")
}

func todoKey(user, title string) []byte {
	return append(userPrefix(user), title...)
}

func attachmentKey(user, title, name string) string {
	return string(todoKey(user, title)) + "/" + name
}

// caller returns the x-user-id header, or a 400 response when it is
// missing or unusable.
func caller(req *mu.Request) (string, *mu.Response) {
	user := req.Header("x-user-id")
	switch {
	case user == "":
		return "", errorJSON(400, "missing x-user-id header: it names the user whose todos to use")
	case len(user) > maxUserBytes:
		return "", errorJSON(400, fmt.Sprintf("x-user-id header of %d bytes is longer than %d", len(user), maxUserBytes))
	}
	return user, nil
}

func errorJSON(status int, msg string) *mu.Response {
	r, err := mu.JSON(status, map[string]string{"error": msg})
	if err != nil { // a map of strings always encodes
		return mu.Text(500, msg)
	}
	return r
}

// list answers GET /: the caller's todos in title order, every page of the
// scan.
func list(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	user, bad := caller(req)
	if bad != nil {
		return bad, nil
	}
	todos := []todo{}
	for kv, err := range ctx.Table(table).All(userPrefix(user)) {
		if err != nil {
			return nil, err
		}
		var t todo
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			return nil, fmt.Errorf("todo %q: stored value is not JSON: %w", kv.Key, err)
		}
		todos = append(todos, t)
	}
	return mu.JSON(200, todos)
}

// add answers POST /: a new todo, refused with 409 if the caller already
// has one with that title (an insert-if-absent CompareAndSwap, so two
// concurrent adds of one title cannot both succeed).
func add(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	user, bad := caller(req)
	if bad != nil {
		return bad, nil
	}
	t, msg := parseTodo(req.Body)
	if msg != "" {
		return errorJSON(400, msg), nil
	}
	stored := todo{Title: t.Title, Done: t.Done}
	for _, a := range t.Attachments {
		stored.Attachments = append(stored.Attachments, attachment{Name: a.Name})
	}
	value, err := json.Marshal(stored)
	if err != nil {
		return nil, err
	}
	key := todoKey(user, t.Title)
	if _, found, err := ctx.Table(table).Get(key); err != nil {
		return nil, err
	} else if found {
		return errorJSON(409, fmt.Sprintf("todo %q exists already", t.Title)), nil
	}
	// The attachments go first, so a todo is never visible without them.
	files := ctx.Storage(box)
	for _, a := range t.Attachments {
		if err := files.Put(attachmentKey(user, t.Title, a.Name), a.Data); err != nil {
			return nil, err
		}
	}
	// Insert-if-absent: of two concurrent adds of one title only one wins.
	_, swapped, err := ctx.Table(table).CompareAndSwap(key, value, nil)
	if err != nil {
		return nil, err
	}
	if !swapped {
		return errorJSON(409, fmt.Sprintf("todo %q exists already", t.Title)), nil
	}
	ctx.Logger().Info("todo added", "title", t.Title, "attachments", len(t.Attachments))
	return mu.Bytes(201, "application/json", value).WithHeader("Location", t.Title), nil
}

// parseTodo decodes and checks a POSTed todo; msg says what is wrong.
func parseTodo(body []byte) (t todo, msg string) {
	if len(body) > maxBodyBytes {
		return t, fmt.Sprintf("body of %d bytes is larger than %d", len(body), maxBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || err.Error() == "EOF" {
			return t, `body is not a JSON todo like {"title": "milk", "done": false}: ` + err.Error()
		}
		return t, "body: " + err.Error()
	}
	if dec.More() {
		return t, "body holds more than one JSON value"
	}
	switch {
	case t.Title == "":
		return t, "title is required"
	case len(t.Title) > maxTitleBytes:
		return t, fmt.Sprintf("title of %d bytes is longer than %d", len(t.Title), maxTitleBytes)
	case !utf8.ValidString(t.Title):
		return t, "title is not valid UTF-8"
	case strings.Contains(t.Title, "/"):
		return t, `title must not contain "/": it is a single path segment of GET /{title}`
	case len(t.Attachments) > maxAttached:
		return t, fmt.Sprintf("%d attachments; at most %d", len(t.Attachments), maxAttached)
	}
	names := map[string]bool{}
	for i, a := range t.Attachments {
		switch {
		case a.Name == "":
			return t, fmt.Sprintf("attachments[%d].name is required", i)
		case len(a.Name) > maxNameBytes:
			return t, fmt.Sprintf("attachments[%d].name of %d bytes is longer than %d", i, len(a.Name), maxNameBytes)
		case !utf8.ValidString(a.Name) || strings.ContainsAny(a.Name, "/\x00") || a.Name == "." || a.Name == "..":
			return t, fmt.Sprintf(`attachments[%d].name %q must be valid UTF-8 without "/", NUL, "." or ".."`, i, a.Name)
		case names[a.Name]:
			return t, fmt.Sprintf("attachments[%d].name %q appears twice", i, a.Name)
		}
		names[a.Name] = true
	}
	return t, ""
}

// get answers GET /{title}.
func get(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	user, bad := caller(req)
	if bad != nil {
		return bad, nil
	}
	title := req.Param("title")
	value, found, err := ctx.Table(table).Get(todoKey(user, title))
	if err != nil {
		return nil, err
	}
	if !found {
		return errorJSON(404, fmt.Sprintf("no todo %q", title)), nil
	}
	var t todo
	if err := json.Unmarshal(value, &t); err != nil {
		return nil, fmt.Errorf("todo %q: stored value is not JSON: %w", title, err)
	}
	files := ctx.Storage(box)
	for i, a := range t.Attachments {
		data, found, err := files.Get(attachmentKey(user, title, a.Name))
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("todo %q: attachment %q is missing from box %s", title, a.Name, box)
		}
		t.Attachments[i].Data = data
	}
	return mu.JSON(200, t)
}

// remove answers DELETE /{title}; deleting a missing todo is not an error.
func remove(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
	user, bad := caller(req)
	if bad != nil {
		return bad, nil
	}
	title := req.Param("title")
	key := todoKey(user, title)
	value, found, err := ctx.Table(table).Get(key)
	if err != nil || !found {
		return mu.Status(204), err
	}
	if err := ctx.Table(table).Delete(key); err != nil {
		return nil, err
	}
	var t todo
	if json.Unmarshal(value, &t) == nil {
		files := ctx.Storage(box)
		for _, a := range t.Attachments {
			if err := files.Delete(attachmentKey(user, title, a.Name)); err != nil {
				return nil, err
			}
		}
	}
	return mu.Status(204), nil
}

// register adds the handlers to the default App; tests serve the same
// handlers on the host.
func register() {
	mu.Handle("list", list)
	mu.Handle("add", add)
	mu.Handle("get", get)
	mu.Handle("remove", remove)
}

func main() {
	register()
	mu.Run()
}
