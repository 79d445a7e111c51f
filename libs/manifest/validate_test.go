package manifest

import (
	"reflect"
	"strings"
	"testing"
)

// stack returns a manifest with the given services after a valid header.
func stack(services string) []byte {
	return []byte("name: App\nversion: \"1\"\nservices:\n" + services)
}

// fn is a valid function service named f.
const fn = "  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: 64MiB}\n"

// gw returns a gateway named g with the given endpoints mapping body.
func gw(endpoints string) string {
	return "  - type: Gateway\n    name: g\n    endpoints:\n" + endpoints
}

func TestParse_ValidationRules(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []string // error lines; nil: the manifest is valid
	}{
		// The stack.
		{"missing name", []byte("version: \"1\"\nservices: []\n"),
			[]string{`name: is required`}},
		{"blank version", []byte("name: App\nversion: \"  \"\n"),
			[]string{`version: is required`}},
		{"null version", []byte("name: App\nversion: ~\n"),
			[]string{`version: is required`}},
		{"control character in name", []byte("name: \"App\\tX\"\nversion: \"1\"\n"),
			[]string{`name: must not contain control characters`}},
		{"numeric version kept as written", []byte("name: App\nversion: 1.10\n"), nil},
		{"no services", []byte("name: App\nversion: \"1\"\n"), nil},
		{"unknown top-level key", []byte("name: App\nversion: \"1\"\nservice: []\n"),
			[]string{`service: unknown field (known fields: name, version, services)`}},
		{"duplicate top-level key", []byte("name: App\nname: Other\nversion: \"1\"\n"),
			[]string{`name: duplicate key (first at line 1)`}},
		{"services not a list", []byte("name: App\nversion: \"1\"\nservices: {type: Function}\n"),
			[]string{`services: must be a list of services, got a mapping`}},
		{"name not a string", []byte("name: [App]\nversion: \"1\"\n"),
			[]string{`name: must be a string, got a list`}},
		{"unsupported tag", []byte("name: !!binary QXBw\nversion: \"1\"\n"),
			[]string{`name: unsupported YAML tag "!!binary": write a plain string`}},

		// Service types and names.
		{"service not a mapping", stack("  - Function\n"),
			[]string{`services[0]: must be a mapping with a type field, got "Function"`}},
		{"missing type", stack("  - name: f\n"),
			[]string{`services[0]: type: is required (one of Function, KeyValueTable, Storage, Gateway)`}},
		{"unknown type", stack("  - {type: Database, name: d}\n"),
			[]string{`services[0]: type: unknown service type "Database" (want Function, KeyValueTable, Storage or Gateway)`}},
		{"type in the wrong case", stack(fn + "  - {type: keyvaluetable, name: t}\n"),
			[]string{`services[1]: type: unknown service type "keyvaluetable" (want Function, KeyValueTable, Storage or Gateway); did you mean "KeyValueTable"?`}},
		{"missing service name", stack("  - type: Storage\n"),
			[]string{`services[0] (Storage): name: is required`}},
		{"service name with a dot", stack("  - {type: Function, name: my.fn, binary: b1, runtime: wasi1.0, memory_limit: 1MiB}\n"),
			[]string{`services[0] (Function "my.fn"): name: "my.fn" must contain only ASCII letters, digits, '_' and '-'`}},
		{"service name too long", stack("  - {type: Storage, name: " + strings.Repeat("s", 65) + "}\n"),
			[]string{`services[0] (Storage "` + strings.Repeat("s", 65) + `"): name: must be at most 64 characters long`}},
		{"duplicate function", stack(fn + fn),
			[]string{`services[1] (Function "f"): name: duplicate Function name "f" (first at services[0])`}},
		{"duplicate table", stack("  - {type: KeyValueTable, name: t}\n  - {type: Storage, name: s}\n  - {type: KeyValueTable, name: t}\n"),
			[]string{`services[2] (KeyValueTable "t"): name: duplicate KeyValueTable name "t" (first at services[0])`}},
		{"duplicate storage", stack("  - {type: Storage, name: s}\n  - {type: Storage, name: s}\n"),
			[]string{`services[1] (Storage "s"): name: duplicate Storage name "s" (first at services[0])`}},
		{"duplicate gateway", stack(fn + "  - {type: Gateway, name: g}\n  - {type: Gateway, name: g}\n"),
			[]string{`services[2] (Gateway "g"): name: duplicate Gateway name "g" (first at services[1])`}},
		{"same name, different types", stack(fn + "  - {type: KeyValueTable, name: f}\n  - {type: Storage, name: f}\n  - {type: Gateway, name: f}\n"), nil},
		{"unknown function field", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory: 1MiB}\n"),
			[]string{
				`services[0] (Function "f"): memory: unknown field (known fields: type, name, binary, runtime, memory_limit, env)`,
				`services[0] (Function "f"): memory_limit: is required (between 1MiB and 4GiB)`,
			}},
		{"unknown table field", stack("  - {type: KeyValueTable, name: t, delete: true}\n"),
			[]string{`services[0] (KeyValueTable "t"): delete: unknown field (known fields: type, name)`}},
		{"unknown gateway field", stack(fn + "  - {type: Gateway, name: g, routes: {}}\n"),
			[]string{`services[1] (Gateway "g"): routes: unknown field (known fields: type, name, endpoints)`}},
		{"duplicate service key", stack("  - type: Storage\n    name: s\n    name: t\n"),
			[]string{`services[0] (Storage "s"): name: duplicate key (first at line 5)`}},

		// Storage boxes.
		{"public storage", stack("  - {type: Storage, name: s, public: true}\n  - {type: Storage, name: p, public: false}\n  - {type: Storage, name: n, public: ~}\n"), nil},
		{"public as a string", stack("  - {type: Storage, name: s, public: \"true\"}\n"),
			[]string{`services[0] (Storage "s"): public: must be true or false, got "true"`}},
		{"public as yes", stack("  - {type: Storage, name: s, public: yes}\n"),
			[]string{`services[0] (Storage "s"): public: must be true or false, got "yes"`}},
		{"public as a number", stack("  - {type: Storage, name: s, public: 1}\n"),
			[]string{`services[0] (Storage "s"): public: must be true or false, got "1"`}},
		{"public as a list", stack("  - {type: Storage, name: s, public: [true]}\n"),
			[]string{`services[0] (Storage "s"): public: must be true or false, got a list`}},
		{"public on a table", stack("  - {type: KeyValueTable, name: t, public: true}\n"),
			[]string{`services[0] (KeyValueTable "t"): public: unknown field (known fields: type, name)`}},
		{"unknown storage field", stack("  - {type: Storage, name: s, publik: true}\n"),
			[]string{`services[0] (Storage "s"): publik: unknown field (known fields: type, name, public)`}},

		// Functions.
		{"missing binary", stack("  - {type: Function, name: f, runtime: wasi1.0, memory_limit: 1MiB}\n"),
			[]string{`services[0] (Function "f"): binary: is required (the content id of the module in storage)`}},
		{"binary with a space", stack("  - {type: Function, name: f, binary: \"a b\", runtime: wasi1.0, memory_limit: 1MiB}\n"),
			[]string{`services[0] (Function "f"): binary: "a b" is not a content id: it must be valid UTF-8 without spaces or control characters`}},
		{"missing runtime", stack("  - {type: Function, name: f, binary: b1, memory_limit: 1MiB}\n"),
			[]string{`services[0] (Function "f"): runtime: is required (known runtimes: wasi1.0)`}},
		{"unknown runtime", stack("  - {type: Function, name: f, binary: b1, runtime: wasi2.0, memory_limit: 1MiB}\n"),
			[]string{`services[0] (Function "f"): runtime: unknown runtime "wasi2.0" (known runtimes: wasi1.0)`}},
		{"missing memory limit", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0}\n"),
			[]string{`services[0] (Function "f"): memory_limit: is required (between 1MiB and 4GiB)`}},
		{"zero memory limit", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: 0}\n"),
			[]string{`services[0] (Function "f"): memory_limit: is required (between 1MiB and 4GiB)`}},
		{"memory below the minimum", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: 512KiB}\n"),
			[]string{`services[0] (Function "f"): memory_limit: 512KiB is below the minimum of 1MiB`}},
		{"memory above the maximum", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: 4.5GiB}\n"),
			[]string{`services[0] (Function "f"): memory_limit: 4608MiB is above the maximum of 4GiB`}},
		{"memory at both bounds", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: 1048576}\n" +
			"  - {type: Function, name: g, binary: b1, runtime: wasi1.0, memory_limit: 4GiB}\n"), nil},
		{"memory with an unknown unit", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: 256Mb}\n"),
			[]string{`services[0] (Function "f"): memory_limit: invalid size "256Mb": unknown unit "Mb" (want B, kB, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`}},
		{"negative memory", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: -1MiB}\n"),
			[]string{`services[0] (Function "f"): memory_limit: invalid size "-1MiB": negative sizes are not allowed`}},
		{"memory as a list", stack("  - {type: Function, name: f, binary: b1, runtime: wasi1.0, memory_limit: [1]}\n"),
			[]string{`services[0] (Function "f"): memory_limit: must be a string, got a list`}},
		{"env values are text", stack("  - type: Function\n    name: f\n    binary: b1\n    runtime: wasi1.0\n    memory_limit: 1MiB\n" +
			"    env: {PORT: 8080, DEBUG: true, EMPTY: ~, \"LANG\": \"C=UTF-8\\nx\"}\n"), nil},
		{"env key problems", stack("  - type: Function\n    name: f\n    binary: b1\n    runtime: wasi1.0\n    memory_limit: 1MiB\n" +
			"    env: {\"\": x, \"A=B\": x, \"N\\0UL\": x, OK: \"v\\0\"}\n"),
			[]string{
				`services[0] (Function "f"): env[""]: variable name must not be empty`,
				`services[0] (Function "f"): env["A=B"]: variable name must not contain '='`,
				`services[0] (Function "f"): env["N\x00UL"]: variable name must not contain NUL`,
				`services[0] (Function "f"): env["OK"]: value must not contain NUL`,
			}},
		{"env value not a string", stack("  - type: Function\n    name: f\n    binary: b1\n    runtime: wasi1.0\n    memory_limit: 1MiB\n" +
			"    env: {A: [1, 2]}\n"),
			[]string{`services[0] (Function "f"): env["A"]: must be a string, got a list`}},
		{"env not a mapping", stack("  - type: Function\n    name: f\n    binary: b1\n    runtime: wasi1.0\n    memory_limit: 1MiB\n" +
			"    env: [A=B]\n"),
			[]string{`services[0] (Function "f"): env: must be a mapping of variable names to values, got a list`}},
		{"duplicate env key", stack("  - type: Function\n    name: f\n    binary: b1\n    runtime: wasi1.0\n    memory_limit: 1MiB\n" +
			"    env:\n      A: x\n      A: y\n"),
			[]string{`services[0] (Function "f"): env["A"]: duplicate key (first at line 10)`}},

		// Routes.
		{"route to an undeclared function", stack(fn + "  - {type: KeyValueTable, name: greeter}\n" +
			"  - type: Gateway\n    name: greeting\n    endpoints:\n      /greet/{name}:\n        - method: get\n          route_to: greeter.greet_user\n"),
			[]string{`services[2] (Gateway "greeting"): endpoints["/greet/{name}"][0].route_to: function "greeter" is not declared`}},
		{"short-form route to an undeclared function", stack(fn + gw("      /greet/{name}: {get: greeter.greet_user}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/greet/{name}"].get: function "greeter" is not declared`}},
		{"route without an export", stack(fn + gw("      /a: {get: f}\n      /b: {get: f.}\n      /c: {get: .x}\n")),
			[]string{
				`services[1] (Gateway "g"): endpoints["/a"].get: "f" must have the form assembly.function (a Function service and its export)`,
				`services[1] (Gateway "g"): endpoints["/b"].get: "f." must have the form assembly.function (a Function service and its export)`,
				`services[1] (Gateway "g"): endpoints["/c"].get: ".x" must have the form assembly.function (a Function service and its export)`,
			}},
		{"missing route_to and method", stack(fn + gw("      /a:\n        - method: get\n        - route_to: f.a\n      /b: {get: ~}\n")),
			[]string{
				`services[1] (Gateway "g"): endpoints["/a"][0].route_to: is required (assembly.function, e.g. my_function.handler)`,
				`services[1] (Gateway "g"): endpoints["/a"][1].method: is required (one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS)`,
				`services[1] (Gateway "g"): endpoints["/b"].get: route_to is required (assembly.function, e.g. my_function.handler)`,
			}},
		{"export with a space", stack(fn + gw("      /a: {get: \"f.a b\"}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a"].get: export name "a b" must be valid UTF-8 without spaces or control characters`}},
		{"unknown method", stack(fn + gw("      /a:\n        - {method: fetch, route_to: f.a}\n      /b: {connect: f.b}\n")),
			[]string{
				`services[1] (Gateway "g"): endpoints["/a"][0].method: unknown method "FETCH" (want one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS)`,
				`services[1] (Gateway "g"): endpoints["/b"].connect: unknown method "CONNECT" (want one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS)`,
			}},
		{"non-ASCII method is not upper-cased", stack(fn + gw("      /a: {\"poſt\": f.a}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a"]["poſt"]: unknown method "POſT" (want one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS)`}},
		{"unknown endpoint field", stack(fn + gw("      /a:\n        - {method: get, route_to: f.a, auth: none}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a"][0].auth: unknown field (known fields: method, route_to)`}},
		{"duplicate method in the list form", stack(fn + gw("      /a:\n        - {method: get, route_to: f.a}\n        - {method: GET, route_to: f.b}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a"][1]: duplicate endpoint GET /a (first at endpoints["/a"][0])`}},
		{"duplicate method in the short form", stack(fn + gw("      /a: {get: f.a, GET: f.b}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a"].GET: duplicate endpoint GET /a (first at endpoints["/a"].get)`}},
		{"duplicate path", stack(fn + gw("      /a: {get: f.a}\n      /a: {post: f.b}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a"]: duplicate key (first at line 8)`}},
		{"same route, other parameter names", stack(fn + gw("      /u/{id}: {get: f.a}\n      /u/{name}: {get: f.b, put: f.c}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/u/{name}"].get: GET /u/{name} conflicts with GET /u/{id} at endpoints["/u/{id}"].get`}},
		{"same path in two gateways", stack(fn + gw("      /a: {get: f.a}\n") + "  - {type: Gateway, name: h, endpoints: {/a: {get: f.a}}}\n"), nil},
		{"path value of the wrong kind", stack(fn + gw("      /a: f.a\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a"]: must be a list of {method, route_to} or a mapping of method to route_to, got "f.a"`}},
		{"endpoints not a mapping", stack(fn + "  - {type: Gateway, name: g, endpoints: [/a]}\n"),
			[]string{`services[1] (Gateway "g"): endpoints: must be a mapping of paths to methods, got a list`}},
		{"endpoint not a mapping", stack(fn + gw("      /a: [get]\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a"][0]: must be a mapping with method and route_to, got "get"`}},

		// Paths.
		{"path without a leading slash", stack(fn + gw("      greet: {get: f.a}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["greet"]: path must start with '/'`}},
		{"path with a query", stack(fn + gw("      /a?b=c: {get: f.a}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a?b=c"]: path must not contain '?' or '#' (query and fragment are not part of the path)`}},
		{"path with a space", stack(fn + gw("      \"/a b\": {get: f.a}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a b"]: path must not contain spaces or control characters`}},
		{"empty parameter", stack(fn + gw("      /a/{}: {get: f.a}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a/{}"]: path has a parameter without a name: {}`}},
		{"parameter not an identifier", stack(fn + gw("      /a/{user-id}: {get: f.a}\n      /b/{1st}: {get: f.a}\n")),
			[]string{
				`services[1] (Gateway "g"): endpoints["/a/{user-id}"]: path parameter {user-id}: the name must be letters, digits and '_', not starting with a digit`,
				`services[1] (Gateway "g"): endpoints["/b/{1st}"]: path parameter {1st}: the name must be letters, digits and '_', not starting with a digit`,
			}},
		{"repeated parameter", stack(fn + gw("      /a/{x}/b/{x}: {get: f.a, put: f.b}\n")),
			[]string{`services[1] (Gateway "g"): endpoints["/a/{x}/b/{x}"]: path repeats parameter {x}`}},
		{"parameter not a whole segment", stack(fn + gw("      /a/{x}.json: {get: f.a}\n      /b/{x: {get: f.a}\n      /c/{{x}}: {get: f.a}\n")),
			[]string{
				`services[1] (Gateway "g"): endpoints["/a/{x}.json"]: path segment "{x}.json": a parameter must be a whole segment like {name}`,
				`services[1] (Gateway "g"): endpoints["/b/{x"]: path segment "{x": a parameter must be a whole segment like {name}`,
				`services[1] (Gateway "g"): endpoints["/c/{{x}}"]: path segment "{{x}}": a parameter must be a whole segment like {name}`,
			}},
		{"root, trailing slash and several parameters", stack(fn + gw("      /: {get: f.a}\n      /a/: {get: f.a}\n      /u/{user}/items/{item_2}: {delete: f.a}\n")), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.in)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Parse: unexpected error:\n%v", err)
				}
				if m == nil {
					t.Fatal("Parse returned a nil manifest and no error")
				}
				return
			}
			if m != nil {
				t.Errorf("Parse returned a manifest with an error")
			}
			got := fieldErrors(t, err)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
