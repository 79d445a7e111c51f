package region

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
)

// todoApp is examples/todo deployed on a region, addressed as one user.
type todoApp struct {
	t    *testing.T
	base string // http://gateway/{stack}/todo
}

func deployTodo(t *testing.T, r *Region, id ids.StackID) todoApp {
	t.Helper()
	m, bins := stackFromDir(t, "../examples/todo")
	if err := r.Deploy(context.Background(), id, 1, m, bins); err != nil {
		t.Fatal(err)
	}
	return todoApp{t: t, base: "http://" + r.Gateway().Addr() + "/" + id.String() + "/todo"}
}

// do sends one request as user ("" sends no x-user-id) and returns the
// status and body.
func (a todoApp) do(method, path, user, body string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("x-user-id", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (a todoApp) want(method, path, user, body string, wantStatus int, wantBody string) {
	a.t.Helper()
	code, got := a.do(method, path, user, body)
	if code != wantStatus || (wantBody != "" && !jsonEqual(got, wantBody) && !strings.Contains(got, wantBody)) {
		a.t.Fatalf("%s %s as %q: %d %s, want %d %s", method, path, user, code, got, wantStatus, wantBody)
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func startDBRegion(t *testing.T, dataDir string) *Region {
	t.Helper()
	return startRegion(t, Options{DataDir: dataDir, Mudb: &MudbOptions{}, Storage: &StorageOptions{}})
}

func TestTodo_ServesEachUsersList(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	id, _, _ := ids.NewStackID()
	app := deployTodo(t, r, id)

	app.want("GET", "/", "ann", "", 200, `[]`)
	app.want("POST", "/", "ann", `{"title": "milk", "done": false}`, 201, `{"title":"milk","done":false}`)
	app.want("POST", "/", "ann", `{"title": "bread", "done": true}`, 201, `{"title":"bread","done":true}`)
	app.want("POST", "/", "ann", `{"title": "milk", "done": true}`, 409, `todo \"milk\" exists already`)
	app.want("GET", "/", "ann", "", 200, `[{"title":"bread","done":true},{"title":"milk","done":false}]`)
	app.want("GET", "/milk", "ann", "", 200, `{"title":"milk","done":false}`)

	// Another user sees none of it, even one whose id extends ann's.
	app.want("GET", "/", "bob", "", 200, `[]`)
	app.want("GET", "/", "ann/", "", 200, `[]`)
	app.want("GET", "/milk", "bob", "", 404, `no todo \"milk\"`)

	app.want("DELETE", "/milk", "ann", "", 204, "")
	app.want("DELETE", "/milk", "ann", "", 204, "")
	app.want("GET", "/milk", "ann", "", 404, "")
	app.want("GET", "/", "ann", "", 200, `[{"title":"bread","done":true}]`)

	// Bad input gets a JSON error naming what is wrong.
	app.want("GET", "/", "", "", 400, "missing x-user-id header")
	app.want("POST", "/", "", `{"title":"x"}`, 400, "missing x-user-id header")
	app.want("POST", "/", "ann", `{"done": true}`, 400, "title is required")
	app.want("POST", "/", "ann", `not json`, 400, "body is not a JSON todo")
	app.want("POST", "/", "ann", `{"title":"x","colour":"red"}`, 400, `unknown field \"colour\"`)
	app.want("PUT", "/milk", "ann", "", 405, "")
}

func TestTodo_AttachmentsAreStoredInTheBox(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	id, _, _ := ids.NewStackID()
	app := deployTodo(t, r, id)
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	post := `{"title":"trip","attachments":[{"name":"map.txt","data":"` + base64.StdEncoding.EncodeToString([]byte("north")) + `"},` +
		`{"name":"big.bin","data":"` + base64.StdEncoding.EncodeToString([]byte(big)) + `"}]}`
	app.want("POST", "/", "ann", post, 201, `{"title":"trip","done":false,"attachments":[{"name":"map.txt"},{"name":"big.bin"}]}`)
	code, body := app.do("GET", "/trip", "ann", "")
	var got todo
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("GET /trip: %d %.200s", code, body)
	}
	if len(got.Attachments) != 2 || got.Attachments[0].Name != "map.txt" || string(got.Attachments[0].Data) != "north" ||
		got.Attachments[1].Name != "big.bin" || string(got.Attachments[1].Data) != big {
		t.Fatalf("attachments came back wrong: %d of them", len(got.Attachments))
	}
	// The list names them without their data.
	app.want("GET", "/", "ann", "", 200, `[{"title":"trip","done":false,"attachments":[{"name":"map.txt"},{"name":"big.bin"}]}]`)
	if n := r.Storage().Server().StoredBytes(id); n != int64(len(big)+5) {
		t.Fatalf("stored bytes %d, want %d", n, len(big)+5)
	}
	// A refused POST leaves the first todo's attachments alone.
	app.want("POST", "/", "ann", `{"title":"trip","attachments":[{"name":"map.txt","data":"c291dGg="}]}`, 409, "")
	app.want("POST", "/", "ann", `{"title":"x","attachments":[{"name":"a/b","data":""}]}`, 400, `attachments[0].name`)
	app.want("POST", "/", "ann", `{"title":"x","attachments":[{"name":"a","data":""},{"name":"a","data":""}]}`, 400, "appears twice")
	code, body = app.do("GET", "/trip", "ann", "")
	if code != 200 || !strings.Contains(body, base64.StdEncoding.EncodeToString([]byte("north"))) {
		t.Fatalf("after a refused POST: %d %.200s", code, body)
	}
	// DELETE takes the attachments with it.
	app.want("DELETE", "/trip", "ann", "", 204, "")
	if n := r.Storage().Server().StoredBytes(id); n != 0 {
		t.Fatalf("stored bytes %d after DELETE, want 0", n)
	}
}

type todo struct {
	Title       string
	Done        bool
	Attachments []struct {
		Name string
		Data []byte
	}
}

func TestTodo_TodosSurviveARestartOfTheRegion(t *testing.T) {
	dir := t.TempDir()
	id, _, _ := ids.NewStackID()
	r := startDBRegion(t, dir)
	app := deployTodo(t, r, id)
	app.want("POST", "/", "ann", `{"title": "milk", "done": false, "attachments": [{"name": "note", "data": "aGk="}]}`, 201, "")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r = startDBRegion(t, dir)
	app = deployTodo(t, r, id)
	app.want("GET", "/", "ann", "", 200, `[{"title":"milk","done":false,"attachments":[{"name":"note"}]}]`)
	app.want("GET", "/milk", "ann", "", 200, `{"title":"milk","done":false,"attachments":[{"name":"note","data":"aGk="}]}`)
}

func TestTodo_DBOpsAreMeteredExactly(t *testing.T) {
	bothPaths(t, testTodoDBOpsAreMeteredExactly)
}

func testTodoDBOpsAreMeteredExactly(t *testing.T, p *path) {
	r := p.start(t, Options{DataDir: t.TempDir(), Mudb: &MudbOptions{}, Storage: &StorageOptions{}})
	id, _, _ := ids.NewStackID()
	app := deployTodo(t, r, id)
	ctx := context.Background()
	step := func(what string, wantReads, wantWrites uint64, do func()) {
		t.Helper()
		if err := r.FlushUsage(ctx); err != nil {
			t.Fatal(err)
		}
		reads, writes := r.Usage.Total(id, usage.DBReads), r.Usage.Total(id, usage.DBWrites)
		do()
		if err := r.FlushUsage(ctx); err != nil {
			t.Fatal(err)
		}
		dr, dw := r.Usage.Total(id, usage.DBReads)-reads, r.Usage.Total(id, usage.DBWrites)-writes
		if dr != wantReads || dw != wantWrites {
			t.Errorf("%s: metered %d reads, %d writes; want %d, %d", what, dr, dw, wantReads, wantWrites)
		}
		p.record(t, what, "%d reads, %d writes", dr, dw)
	}
	// POST checks the title is free (1 read) before storing attachments,
	// then inserts with CompareAndSwap (1 read + 2 writes).
	step("POST", 2, 2, func() { app.want("POST", "/", "ann", `{"title":"a"}`, 201, "") })
	step("POST b", 2, 2, func() { app.want("POST", "/", "ann", `{"title":"b"}`, 201, "") })
	step("refused POST", 1, 0, func() { app.want("POST", "/", "ann", `{"title":"a"}`, 409, "") })
	// A scan reads 1 per key returned, at least 1.
	step("GET / of two", 2, 0, func() { app.want("GET", "/", "ann", "", 200, "") })
	step("GET / of none", 1, 0, func() { app.want("GET", "/", "bob", "", 200, "[]") })
	step("GET one", 1, 0, func() { app.want("GET", "/a", "ann", "", 200, "") })
	step("GET missing", 1, 0, func() { app.want("GET", "/zz", "ann", "", 404, "") })
	// DELETE reads the todo for its attachments' names, then deletes it.
	step("DELETE", 1, 1, func() { app.want("DELETE", "/a", "ann", "", 204, "") })
	step("DELETE missing", 1, 0, func() { app.want("DELETE", "/a", "ann", "", 204, "") })
	// A request refused before any db call costs nothing in db units.
	step("no user", 0, 0, func() { app.want("GET", "/", "", "", 400, "") })
}

func TestRegion_StacksDoNotShareTables(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	one, _, _ := ids.NewStackID()
	two, _, _ := ids.NewStackID()
	a, b := deployTodo(t, r, one), deployTodo(t, r, two)
	a.want("POST", "/", "ann", `{"title":"only in one"}`, 201, "")
	b.want("GET", "/", "ann", "", 200, `[]`)
	b.want("GET", "/only%20in%20one", "ann", "", 404, "")
}

func TestRegion_DeleteStackRemovesItsTables(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	id, _, _ := ids.NewStackID()
	app := deployTodo(t, r, id)
	app.want("POST", "/", "ann", `{"title":"milk","attachments":[{"name":"n","data":"aGk="}]}`, 201, "")
	if n := r.Storage().Server().StoredBytes(id); n != 2 {
		t.Fatalf("stored bytes %d, want 2", n)
	}
	ctx := context.Background()
	if err := r.DeleteStack(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteStack(ctx, id); err != nil {
		t.Fatalf("second DeleteStack: %v", err)
	}
	app = deployTodo(t, r, id)
	app.want("GET", "/", "ann", "", 200, `[]`)
	if n := r.Storage().Server().StoredBytes(id); n != 0 {
		t.Fatalf("stored bytes %d after DeleteStack", n)
	}
}

// The runtime refuses a table the manifest does not declare, naming it.
func TestRegion_UndeclaredTableIsAClearError(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	id, _, _ := ids.NewStackID()
	m, bins := stackFromDir(t, "../examples/todo")
	m.Tables = []manifest.KeyValueTable{{Name: "other"}}
	if err := r.Deploy(context.Background(), id, 1, m, bins); err != nil {
		t.Fatal(err)
	}
	app := todoApp{t: t, base: "http://" + r.Gateway().Addr() + "/" + id.String() + "/todo"}
	code, body := app.do("GET", "/", "ann", "")
	if code != 500 || !strings.Contains(body, `table \"todos\" is not declared`) {
		t.Fatalf("GET with an undeclared table: %d %s", code, body)
	}
}
