// Package mudbv1 is the generated Go code for mu.mudb.v1, the muDB key/value API: MudbService with
// the db operations of the function protocol plus table management.
//
// The API and its semantics are documented in mudb.proto beside this file; regenerate with `make
// proto` after editing it. Everything else in this package is generated.
package mudbv1
