package manifest

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t *testing.T, data []byte) *Manifest {
	t.Helper()
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

// fieldErrors returns the error lines of a ValidationError, failing the test
// for any other error.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	var lines []string
	for _, fe := range verr.Errors {
		lines = append(lines, fe.Error())
	}
	return lines
}

func TestParse_DesignExample(t *testing.T) {
	got := mustParse(t, readFile(t, "testdata/design.yaml"))
	want := &Manifest{
		Name:    "GreetingApp",
		Version: "0.1",
		Functions: []Function{{
			Name:        "greeter_function",
			Binary:      "8MdU7CQGkZaZPjPgXDwMoIkV",
			Runtime:     "wasi1.0",
			MemoryLimit: 256 * MiB,
		}},
		Tables:   []KeyValueTable{{Name: "todos"}},
		Storages: []Storage{{Name: "attachments"}},
		Gateways: []Gateway{{
			Name: "greeting",
			Endpoints: []Endpoint{{
				Path:     "/greet/{name}",
				Method:   "GET",
				RouteTo:  "greeter_function.greet_user",
				Assembly: "greeter_function",
				Function: "greet_user",
			}},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(design example) =\n%#v\nwant\n%#v", got, want)
	}
}

func TestParse_KeepsDeclarationOrderAndSortsEndpoints(t *testing.T) {
	m := mustParse(t, readFile(t, "testdata/todo.yaml"))
	if got := []string{m.Functions[0].Name, m.Functions[1].Name}; !reflect.DeepEqual(got, []string{"api", "thumbnails"}) {
		t.Errorf("functions = %v", got)
	}
	if got := []string{m.Tables[0].Name, m.Tables[1].Name}; !reflect.DeepEqual(got, []string{"todos", "users"}) {
		t.Errorf("tables = %v", got)
	}
	var eps []string
	for _, e := range m.Gateways[0].Endpoints {
		eps = append(eps, e.Method+" "+e.Path+" "+e.Assembly+" "+e.Function)
	}
	want := []string{
		"GET /todos api list",
		"POST /todos api create",
		"DELETE /todos/{id} api remove",
		"GET /todos/{id} api get",
		"PUT /todos/{id} api update",
		"PUT /todos/{id}/attachments/{name} thumbnails upload",
	}
	if !reflect.DeepEqual(eps, want) {
		t.Errorf("endpoints =\n%s\nwant\n%s", strings.Join(eps, "\n"), strings.Join(want, "\n"))
	}
	// The env map is shared through a YAML anchor; numbers are read as written.
	wantEnv := map[string]string{"LOG_LEVEL": "debug", "PORT": "8080"}
	for _, f := range m.Functions {
		if !reflect.DeepEqual(f.Env, wantEnv) {
			t.Errorf("%s env = %v, want %v", f.Name, f.Env, wantEnv)
		}
	}
	if m.Version != "1.2.0" || m.Functions[1].MemoryLimit != 1536*MiB {
		t.Errorf("version %q, memory %v", m.Version, m.Functions[1].MemoryLimit)
	}
}

func TestParse_EndpointFormsAreEquivalent(t *testing.T) {
	const head = "name: A\nversion: \"1\"\nservices:\n" +
		"  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: 1MiB}\n" +
		"  - type: Gateway\n    name: g\n    endpoints:\n"
	forms := map[string]string{
		"list": `      /greet/{name}:
        - method: get
          route_to: f.greet
        - method: post
          route_to: f.post
      /health:
        - {method: HEAD, route_to: f.health}
`,
		"short": `      /greet/{name}: {get: f.greet, post: f.post}
      /health: {head: f.health}
`,
		"mixed": `      /health: {Head: f.health}
      /greet/{name}:
        - route_to: f.post
          method: Post
        - method: get
          route_to: f.greet
`,
	}
	want := []Endpoint{
		{Path: "/greet/{name}", Method: "GET", RouteTo: "f.greet", Assembly: "f", Function: "greet"},
		{Path: "/greet/{name}", Method: "POST", RouteTo: "f.post", Assembly: "f", Function: "post"},
		{Path: "/health", Method: "HEAD", RouteTo: "f.health", Assembly: "f", Function: "health"},
	}
	for name, body := range forms {
		t.Run(name, func(t *testing.T) {
			m := mustParse(t, []byte(head+body))
			if got := m.Gateways[0].Endpoints; !reflect.DeepEqual(got, want) {
				t.Errorf("endpoints = %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParse_RouteSplitsAtFirstDot(t *testing.T) {
	m := mustParse(t, []byte(`name: A
version: "1"
services:
  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: 1MiB}
  - type: Gateway
    name: g
    endpoints: {/: {get: f.pkg.Handler}}
`))
	e := m.Gateways[0].Endpoints[0]
	if e.Assembly != "f" || e.Function != "pkg.Handler" {
		t.Errorf("Assembly, Function = %q, %q; want f, pkg.Handler", e.Assembly, e.Function)
	}
}

func TestParse_CollectsAllErrorsInFileOrderWithLines(t *testing.T) {
	data := []byte(`name: App
version: "1"
services:
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}:
        - method: get
          route_to: greeter.greet_user
  - type: Function
    name: f
    binary: b1
    runtime: wasi2
    memroy_limit: 1GiB
nmae: x
`)
	_, err := Parse(data)
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	var got []string
	for _, fe := range verr.Errors {
		got = append(got, fmt.Sprintf("%d: %v", fe.Line, fe))
	}
	want := []string{
		`9: services[0] (Gateway "greeting"): endpoints["/greet/{name}"][0].route_to: function "greeter" is not declared`,
		`10: services[1] (Function "f"): memory_limit: is required (between 1MiB and 4GiB)`,
		`13: services[1] (Function "f"): runtime: unknown runtime "wasi2" (known runtimes: wasi1.0)`,
		`14: services[1] (Function "f"): memroy_limit: unknown field (known fields: type, name, binary, runtime, memory_limit, env)`,
		`15: nmae: unknown field (known fields: name, version, services)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err.Error() != strings.Join(fieldErrors(t, err), "\n") {
		t.Errorf("Error() = %q, want one error per line", err.Error())
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "endpoints[\"/greet/{name}\"][0].route_to" {
		t.Errorf("errors.As(*FieldError) = %v", fe)
	}
}

func TestParse_InputSizeLimit(t *testing.T) {
	big := append([]byte("name: x\n#"), strings.Repeat("x", MaxManifestSize)...)
	_, err := Parse(big)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	want := fmt.Sprintf("manifest: too large: %d bytes, the limit is %d bytes", len(big), MaxManifestSize)
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	design := readFile(t, "testdata/design.yaml")
	if _, err := ParseWithOptions(design, ParseOptions{MaxSize: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxSize 100: err = %v, want ErrTooLarge", err)
	}
	if _, err := ParseWithOptions(design, ParseOptions{MaxSize: len(design)}); err != nil {
		t.Errorf("MaxSize = len: %v", err)
	}
}

func TestParse_SyntaxErrorHasLine(t *testing.T) {
	_, err := Parse([]byte("name: a\nversion: \"1\"\nservices:\n  - type: Function\n    name: f: g\n"))
	var serr *SyntaxError
	if !errors.As(err, &serr) {
		t.Fatalf("err = %v (%T), want *SyntaxError", err, err)
	}
	if serr.Line != 5 || err.Error() != "manifest: invalid YAML at line 5: mapping values are not allowed in this context" {
		t.Errorf("err = %q (line %d)", err, serr.Line)
	}
}

func TestParse_DocumentShape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "the manifest is empty"},
		{"# only a comment\n", "the manifest is empty"},
		{"- a\n", "a manifest is a mapping with name, version and services, got a list"},
		{"~\n", "a manifest is a mapping with name, version and services, got null"},
		{"hello\n", `a manifest is a mapping with name, version and services, got "hello"`},
		{"name: a\n---\nname: b\n", "a manifest is one YAML document, found a second one"},
		{"a: &a [*a]\n", `line 1: anchor "a" contains an alias to itself`},
	} {
		_, err := Parse([]byte(tc.in))
		if got := fieldErrors(t, err); !reflect.DeepEqual(got, []string{tc.want}) {
			t.Errorf("Parse(%q) errors = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParse_AliasExpansionIsBounded(t *testing.T) {
	// Each level doubles the expanded size: 2^40 nodes from a few hundred bytes.
	var b strings.Builder
	b.WriteString("name: a\nversion: \"1\"\nl0: &l0 [x, x]\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [*l%d, *l%d]\n", i, i, i-1, i-1)
	}
	_, err := Parse([]byte(b.String()))
	got := fieldErrors(t, err)
	if len(got) != 1 || !strings.HasPrefix(got[0], "too many YAML nodes once aliases are expanded") {
		t.Errorf("errors = %q", got)
	}
}

func TestParseWithLimits_RegionBounds(t *testing.T) {
	design := readFile(t, "testdata/design.yaml")
	_, err := ParseWithLimits(design, Limits{MinMemory: uint64(512 * MiB), MaxMemory: uint64(GiB)})
	want := []string{`services[0] (Function "greeter_function"): memory_limit: 256MiB is below the minimum of 512MiB`}
	if got := fieldErrors(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
	_, err = ParseWithLimits(design, Limits{MaxMemory: uint64(128 * MiB)}) // MinMemory from the defaults
	want = []string{`services[0] (Function "greeter_function"): memory_limit: 256MiB is above the maximum of 128MiB`}
	if got := fieldErrors(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
	if _, err := ParseWithLimits(design, Limits{MinMemory: 256 << 20, MaxMemory: 256 << 20}); err != nil {
		t.Errorf("bounds are inclusive: %v", err)
	}
	_, err = ParseWithLimits(design, Limits{MinMemory: uint64(2 * GiB), MaxMemory: uint64(GiB)})
	if err == nil || err.Error() != "manifest: invalid limits: minimum memory 2GiB is above maximum memory 1GiB" {
		t.Errorf("inverted limits: err = %v", err)
	}
}

func TestManifest_Function(t *testing.T) {
	m := mustParse(t, readFile(t, "testdata/todo.yaml"))
	f := m.Function("thumbnails")
	if f == nil || f.Binary != "9Qw2rB7mKx" {
		t.Fatalf("Function(thumbnails) = %+v", f)
	}
	if f := m.Function("todos"); f != nil {
		t.Errorf("Function(todos) = %+v, want nil: todos is a table", f)
	}
	if n := m.EndpointCount(); n != 6 {
		t.Errorf("EndpointCount = %d, want 6", n)
	}
}

func TestValidate_ManifestBuiltInGo(t *testing.T) {
	m := &Manifest{
		Name:      "App",
		Version:   "1",
		Functions: []Function{{Name: "f", Binary: "b", Runtime: RuntimeWASI1, MemoryLimit: 64 * MiB, Env: map[string]string{}}},
		Tables:    []KeyValueTable{{Name: "t"}},
		Gateways: []Gateway{{Name: "g", Endpoints: []Endpoint{
			{Path: "/a", Method: "GET", RouteTo: "f.a", Assembly: "f", Function: "a"},
			{Path: "/a", Method: "get", RouteTo: "f.b", Assembly: "f", Function: "b"},
			{Path: "/b", Method: "GET", RouteTo: "f.b"},
		}}},
	}
	want := []string{
		`services[2] (Gateway "g"): endpoints["/a"][1].method: unknown method "get" (want one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS)`,
		`services[2] (Gateway "g"): endpoints["/b"][0].route_to: Assembly "" and Function "" do not match route_to "f.b"`,
	}
	if got := fieldErrors(t, m.Validate(Limits{})); !reflect.DeepEqual(got, want) {
		t.Errorf("errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	m.Gateways[0].Endpoints = m.Gateways[0].Endpoints[:1]
	if err := m.Validate(DefaultLimits()); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestParse_StoragePublicFlag(t *testing.T) {
	m := mustParse(t, stack("  - {type: Storage, name: files}\n  - type: Storage\n    name: site\n    public: true\n"))
	want := []Storage{{Name: "files"}, {Name: "site", Public: true}}
	if !reflect.DeepEqual(m.Storages, want) {
		t.Fatalf("Storages = %+v, want %+v", m.Storages, want)
	}
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "  - type: Storage\n    name: site\n    public: true\n") ||
		strings.Contains(string(out), "public: false") {
		t.Errorf("Marshal:\n%s", out)
	}
}
