// Package mudb is the muDB service: key/value tables per stack on TiKV
// (tikv/client-go), served over gRPC as mu.mudb.v1.MudbService (proto/mu/mudb/v1).
// Keys are laid out as design §6 says; reads and writes are metered per key.
//
// The service's implementation lands with its issue; this module holds its place
// in the workspace.
package mudb
