// Package mudb is the muDB service: key/value tables per stack on TiKV
// (tikv/client-go txnkv), served over gRPC as mu.mudb.v1.MudbService
// (proto/mu/mudb/v1, whose comments are the contract). A Server runs on a
// TiKV cluster (Config.PDEndpoints) or on client-go's embedded store, in
// memory or persisted in Config.DataDir (locked while open: a second node
// on the same directory fails in New).
//
// Guarantees:
//
//   - Every data call is exactly one TiKV transaction, so every call and
//     every batch (BatchPut, BatchDelete; BatchGet and BatchScan read one
//     snapshot) is all-or-nothing across tables whether or not is_atomic is
//     set. A read sees every write acknowledged before it began.
//   - Plain writes are optimistic transactions retried up to MaxTxnRetries
//     times on a write conflict (last writer wins). Atomic writes and
//     CompareAndSwap are pessimistic: they lock their keys, wait for other
//     holders, and decide on values read under the lock, so they are
//     serialized with each other per key and CompareAndSwap is
//     linearizable. On one node they first queue per key (keyLocks), so
//     they rarely wait on TiKV at all. Any write transaction that would
//     commit more than MaxTxnDuration after it began fails with ABORTED.
//   - Keys (design section 6): "mudb/" + stack id + u8 table-name length +
//     table + user key; the table registry "mudb-tables/" + stack id +
//     table; the TTL index "mudb-ttl/" + expiry + data key (see
//     internal/keyspace). Every key and range a call builds lies inside its
//     own stack and table, whatever the names, keys, prefixes and cursors
//     (FuzzIsolation).
//   - Tables: data calls on a table that is not created fail with
//     NOT_FOUND naming table and stack. DeleteTable hides the table in one
//     transaction, waits MaxTxnDuration (so no write that saw it live can
//     still commit), then deletes its keys in chunks and removes the
//     registry entry in the transaction that finds the range empty; a
//     recreated table starts empty, and CreateTable finishes a deletion
//     that was interrupted.
//   - TTL: values are stored in an envelope (version, expiry in unix ms,
//     value); a key is absent to every call from its expiry on, and the
//     sweeper (every TTLSweepInterval, TTLSweepBatch keys per transaction)
//     deletes it only if it still carries the expiry its index entry names.
//     A write without ttl, and a swap, clear an earlier ttl.
//   - Scans: limit 0 is DefaultScanPage, capped at MaxScanPage; a page also
//     ends before MaxResponseBytes would be passed. Cursors resume strictly
//     after the last key returned and are bound to (stack, table, prefix)
//     by a hash; a foreign or altered one is INVALID_ARGUMENT.
//   - Metering (MeteredOps in every data reply, and the same amounts as
//     DB_READS/DB_WRITES usage records through a usage.Batcher to
//     Deps.Usage): reads 1 per key returned, at least 1 per read call;
//     writes 1 per key of the request, 2 when atomic; CompareAndSwap 1 read
//     and 2 writes; DeleteByPrefix 1 write per key removed, at least 1.
//     Failed calls and table management are not metered.
package mudb
