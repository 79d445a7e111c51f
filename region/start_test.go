package region

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/runtime"
)

func TestStart_NothingToStartIsAnError(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "nothing to start") {
		t.Fatalf("got %v", err)
	}
	_, err := Start(context.Background(), Options{Gateway: &GatewayOptions{}})
	if err == nil || !strings.Contains(err.Error(), "needs a runtime") {
		t.Fatalf("gateway without a runtime: got %v", err)
	}
	_, err = Start(context.Background(), Options{Mode: Processes, Runtime: &RuntimeOptions{}})
	if err == nil || !strings.Contains(err.Error(), "RepoDir") {
		t.Fatalf("process mode without a repository: got %v", err)
	}
}

func TestStart_SeveralRuntimesWithoutGatewayAllGetTheStack(t *testing.T) {
	r, err := Start(context.Background(), Options{DataDir: t.TempDir(), Runtime: &RuntimeOptions{
		Nodes:  3,
		Config: func(i int, c *runtime.Config) { c.PrewarmInstances = i % 2 },
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if r.Gateway() != nil || len(r.Runtimes()) != 3 || len(r.Processes()) != 0 {
		t.Fatalf("gateway %v, %d runtimes, %d processes", r.Gateway(), len(r.Runtimes()), len(r.Processes()))
	}
	m, bins := stackFromDir(t, "../examples/hello")
	id, _, _ := ids.NewStackID()
	ctx := context.Background()
	if err := r.Deploy(ctx, id, 1, m, bins); err != nil {
		t.Fatal(err)
	}
	if urls := r.URLs(id, m); urls != nil {
		t.Fatalf("URLs without a gateway: %v", urls)
	}
	seen := map[string]bool{}
	for i, n := range r.Runtimes() {
		if want := runtimeName(i); n.Name() != want || seen[n.Addr()] {
			t.Fatalf("node %d: %s at %s", i, n.Name(), n.Addr())
		}
		seen[n.Addr()] = true
		st, err := n.Client().Status(ctx, &runtimev1.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetNodeName() != n.Name() || len(st.GetNodeId()) != 64 || len(st.GetStacks()) != 1 || st.GetStacks()[0].GetRevision() != 1 {
			t.Fatalf("%s: status %v", n.Name(), st)
		}
	}
	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, n := range r.Runtimes() {
		if st, err := n.Client().Status(ctx, &runtimev1.StatusRequest{}); err != nil || len(st.GetStacks()) != 0 {
			t.Fatalf("%s after Remove: %v %v", n.Name(), st, err)
		}
	}
}

func TestStart_GatewayInFrontOfAnotherRegionsRuntime(t *testing.T) {
	ctx := context.Background()
	back, err := Start(ctx, Options{Runtime: &RuntimeOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	front, err := Start(ctx, Options{Gateway: &GatewayOptions{RuntimeAddr: back.Runtime().Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	if front.Runtime() != nil {
		t.Fatal("the front region started a runtime of its own")
	}
	m, bins := stackFromDir(t, "../examples/hello")
	id, _, _ := ids.NewStackID()
	if err := back.Deploy(ctx, id, 1, m, bins); err != nil { // the runtime only
		t.Fatal(err)
	}
	if err := front.Deploy(ctx, id, 1, m, nil); err != nil { // the gateway only
		t.Fatal(err)
	}
	url := strings.Replace(front.URLs(id, m)[0].URL, "{name}", "front", 1)
	if code, body := get(t, url); code != 200 || body != "Hello, front!" {
		t.Fatalf("GET %s: %d %q", url, code, body)
	}
}

// The gateway's PutStack and RemoveStack RPCs, which Deploy and Remove use.
// (They live here rather than in services/gateway while the gateway's
// server code is being reworked.)
func TestGatewayAdmin_PutStackAndRemoveStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// No runtime listens there: the RPCs under test never call it.
	r, err := Start(ctx, Options{Gateway: &GatewayOptions{RuntimeAddr: "127.0.0.1:1",
		Config: func(c *gateway.Config) { c.PublicURL = "https://gw.example.com" }}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	c := r.Gateway().Client()
	id, _, _ := ids.NewStackID()
	hello := []byte("name: hello\nversion: \"1\"\nservices:\n  - type: Function\n    name: hello\n    binary: b\n    runtime: wasi1.0\n    memory_limit: 64MiB\n  - type: Gateway\n    name: greeting\n    endpoints:\n      /greet/{name}: {get: hello.greet_user}\n")

	for _, tc := range []struct {
		name  string
		req   *gatewayv1.PutStackRequest
		field string
	}{
		{"short id", &gatewayv1.PutStackRequest{StackId: []byte{1, 2, 3}, Revision: 1, ManifestYaml: hello}, "stack_id"},
		{"no id", &gatewayv1.PutStackRequest{Revision: 1, ManifestYaml: hello}, "stack_id"},
		{"not yaml", &gatewayv1.PutStackRequest{StackId: id.Bytes(), Revision: 1, ManifestYaml: []byte("name: [")}, "manifest_yaml"},
		{"invalid", &gatewayv1.PutStackRequest{StackId: id.Bytes(), Revision: 1, ManifestYaml: []byte("name: x\nversion: \"1\"\nservices:\n  - type: Gateway\n    name: g\n    endpoints:\n      /a: {get: nowhere.f}\n")}, "manifest_yaml"},
		{"empty", &gatewayv1.PutStackRequest{StackId: id.Bytes(), Revision: 1}, "manifest_yaml"},
	} {
		_, err := c.PutStack(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field) {
			t.Errorf("%s: got %v, want InvalidArgument naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := c.Routes(ctx, &gatewayv1.RoutesRequest{StackId: id.Bytes()}); status.Code(err) != codes.NotFound {
		t.Fatalf("a rejected PutStack installed the stack: %v", err)
	}

	if _, err := c.PutStack(ctx, &gatewayv1.PutStackRequest{StackId: id.Bytes(), Revision: 2, ManifestYaml: hello}); err != nil {
		t.Fatal(err)
	}
	routes, err := c.Routes(ctx, &gatewayv1.RoutesRequest{StackId: id.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://gw.example.com/" + id.String() + "/greeting/greet/{name}"
	if len(routes.GetRoutes()) != 1 || routes.GetRoutes()[0].GetUrl() != want || routes.GetRoutes()[0].GetFunction() != "hello.greet_user" {
		t.Fatalf("routes %v, want one at %s", routes.GetRoutes(), want)
	}
	// An older revision is ignored: the stack keeps revision 2's routes.
	older := []byte(strings.Replace(string(hello), "/greet/{name}", "/old", 1))
	if _, err := c.PutStack(ctx, &gatewayv1.PutStackRequest{StackId: id.Bytes(), Revision: 1, ManifestYaml: older}); err != nil {
		t.Fatal(err)
	}
	if routes, _ := c.Routes(ctx, &gatewayv1.RoutesRequest{StackId: id.Bytes()}); len(routes.GetRoutes()) != 1 || routes.GetRoutes()[0].GetPath() != "/greet/{name}" {
		t.Fatalf("after an older revision: %v", routes.GetRoutes())
	}

	if _, err := c.RemoveStack(ctx, &gatewayv1.RemoveStackRequest{StackId: []byte{9}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "stack_id") {
		t.Errorf("RemoveStack with a short id: %v", err)
	}
	if _, err := c.RemoveStack(ctx, &gatewayv1.RemoveStackRequest{StackId: id.Bytes()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Routes(ctx, &gatewayv1.RoutesRequest{StackId: id.Bytes()}); status.Code(err) != codes.NotFound {
		t.Fatalf("after RemoveStack: %v", err)
	}
	if code, _ := get(t, "http://"+r.Gateway().Addr()+"/"+id.String()+"/greeting/greet/x"); code != 404 {
		t.Fatalf("removed stack answered %d, want 404", code)
	}
	if _, err := c.RemoveStack(ctx, &gatewayv1.RemoveStackRequest{StackId: id.Bytes()}); err != nil {
		t.Fatalf("removing an unknown stack: %v", err)
	}
}
