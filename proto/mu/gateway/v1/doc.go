// Package gatewayv1 is the generated Go code for mu.gateway.v1, the gateway management API:
// GatewayService with Routes and Status.
//
// The API and its semantics are documented in gateway.proto beside this file; regenerate with `make
// proto` after editing it. Everything else in this package is generated.
package gatewayv1
