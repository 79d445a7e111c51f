// Package runtimev1 is the generated Go code for mu.runtime.v1, the runtime node API:
// RuntimeService with Invoke, Deploy, Undeploy, Status and StreamLogs.
//
// The API and its semantics are documented in runtime.proto beside this file; regenerate with `make
// proto` after editing it. Everything else in this package is generated.
package runtimev1
