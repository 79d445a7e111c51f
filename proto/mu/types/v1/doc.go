// Package typesv1 is the generated Go code for mu.types.v1, the messages shared by several mu APIs:
// the HTTP request and response, usage kinds, marketplace rates and Uint128.
//
// The API and its semantics are documented in types.proto beside this file; regenerate with `make
// proto` after editing it. Everything else in this package is generated.
package typesv1
