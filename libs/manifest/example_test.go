package manifest_test

import (
	"errors"
	"fmt"

	"github.com/muprotocol/mu/libs/manifest"
)

func ExampleParse() {
	m, err := manifest.Parse([]byte(`
name: GreetingApp
version: "0.1"
services:
  - type: Function
    name: greeter_function
    binary: 8MdU7CQGkZaZPjPgXDwMoIkV
    runtime: wasi1.0
    memory_limit: 256MiB
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}:
        - method: get
          route_to: greeter_function.greet_user
      /hello: {post: greeter_function.hello}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	f := m.Function("greeter_function")
	fmt.Println(f.MemoryLimit, f.MemoryLimit.MiBCeil(), "MiB")
	for _, e := range m.Gateways[0].Endpoints {
		fmt.Println(e.Method, e.Path, "->", e.Assembly, e.Function)
	}
	// Output:
	// 256MiB 256 MiB
	// GET /greet/{name} -> greeter_function greet_user
	// POST /hello -> greeter_function hello
}

func ExampleValidationError() {
	_, err := manifest.Parse([]byte(`
name: GreetingApp
version: "0.1"
services:
  - type: Function
    name: greeter_function
    binary: 8MdU7CQGkZaZPjPgXDwMoIkV
    runtime: wasi1.0
    memory_limit: 8GiB
    env: {"A=B": x}
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}:
        - method: get
          route_to: greeter.greet_user
`))
	var verr *manifest.ValidationError
	if errors.As(err, &verr) {
		for _, fe := range verr.Errors {
			fmt.Printf("line %d: %v\n", fe.Line, fe)
		}
	}
	// Output:
	// line 9: services[0] (Function "greeter_function"): memory_limit: 8GiB is above the maximum of 4GiB
	// line 10: services[0] (Function "greeter_function"): env["A=B"]: variable name must not contain '='
	// line 16: services[1] (Gateway "greeting"): endpoints["/greet/{name}"][0].route_to: function "greeter" is not declared
}

func ExampleParseByteSize() {
	for _, s := range []string{"256MiB", "1GB", "1.5GiB", "1048576", "-1MiB"} {
		b, err := manifest.ParseByteSize(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(uint64(b), b)
	}
	// Output:
	// 268435456 256MiB
	// 1000000000 1GB
	// 1610612736 1536MiB
	// 1048576 1MiB
	// invalid size "-1MiB": negative sizes are not allowed
}

func ExampleManifest_Marshal() {
	m := &manifest.Manifest{
		Name:    "Hello",
		Version: "1.0",
		Functions: []manifest.Function{{
			Name: "hello", Binary: "5HueCGU8rMjx", Runtime: manifest.RuntimeWASI1, MemoryLimit: 64 * manifest.MiB,
		}},
		Gateways: []manifest.Gateway{{Name: "web", Endpoints: []manifest.Endpoint{{
			Path: "/", Method: "GET", RouteTo: "hello.index", Assembly: "hello", Function: "index",
		}}}},
	}
	if err := m.Validate(manifest.DefaultLimits()); err != nil {
		fmt.Println(err)
		return
	}
	out, err := m.Marshal()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Output:
	// name: Hello
	// version: "1.0"
	// services:
	//   - type: Function
	//     name: hello
	//     binary: 5HueCGU8rMjx
	//     runtime: wasi1.0
	//     memory_limit: 64MiB
	//   - type: Gateway
	//     name: web
	//     endpoints:
	//       /:
	//         - method: get
	//           route_to: hello.index
}
