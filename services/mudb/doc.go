// Package mudb is the muDB service: key/value tables per stack on TiKV
// (tikv/client-go), served over gRPC as mu.mudb.v1.MudbService (proto/mu/mudb/v1).
// Keys are laid out as design §6 says; reads and writes are metered per key.
//
// Until its API lands with its issue, the service is the empty shell of the
// service contract (libs/service): health, reflection and the admin port.
package mudb
