package manifest

import (
	"reflect"
	"testing"
)

func TestMarshal_RoundTrip(t *testing.T) {
	for _, name := range []string{"testdata/design.yaml", "testdata/todo.yaml"} {
		t.Run(name, func(t *testing.T) {
			m := mustParse(t, readFile(t, name))
			out, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(out)
			if err != nil {
				t.Fatalf("Parse(Marshal(m)): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, m) {
				t.Errorf("Parse(Marshal(m)) =\n%#v\nwant\n%#v\nYAML:\n%s", back, m, out)
			}
		})
	}
}

func TestMarshal_BuiltInGo(t *testing.T) {
	m := &Manifest{
		Name:    "Odd: names",
		Version: "0.10",
		Functions: []Function{{Name: "true", Binary: "null", Runtime: RuntimeWASI1, MemoryLimit: 10_000_001,
			Env: map[string]string{"MULTI": "line one\nline two\n", "YES": "yes", "NUM": "010", "EMPTY": ""}}},
		Storages: []Storage{{Name: "s"}, {Name: "pub", Public: true}},
		Gateways: []Gateway{{Name: "g", Endpoints: []Endpoint{
			{Path: "/a", Method: "GET", RouteTo: "true.a", Assembly: "true", Function: "a"},
		}}},
	}
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("Parse(Marshal(m)) =\n%#v\nwant\n%#v\nYAML:\n%s", back, m, out)
	}
}

func TestMarshal_DesignExample(t *testing.T) {
	m := mustParse(t, readFile(t, "testdata/design.yaml"))
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const want = `name: GreetingApp
version: "0.1"
services:
  - type: Function
    name: greeter_function
    binary: 8MdU7CQGkZaZPjPgXDwMoIkV
    runtime: wasi1.0
    memory_limit: 256MiB
  - type: KeyValueTable
    name: todos
  - type: Storage
    name: attachments
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}:
        - method: get
          route_to: greeter_function.greet_user
`
	if string(out) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", out, want)
	}
}
