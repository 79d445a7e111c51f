// Package billing receives usage records from every service, persists them
// before acknowledging, and settles each stack's usage on the ledger, served
// as mu.billing.v1.BillingService (proto/mu/billing/v1).
//
// # Ingest
//
// ReportUsage validates the whole batch, then hands it to the group
// committer: one goroutine that takes every call pending (up to
// max_commit_records records) and commits them in one TiKV transaction,
// which de-duplicates by idempotency key (against the store and within the
// group), adds the amounts to the per-(stack, bucket, kind) totals and to
// each stack's unsettled totals. A call is answered only after its
// transaction committed; a store failure answers UNAVAILABLE and nothing
// of the call is kept, so the sender's retry is exact.
//
// # Settlement
//
// Every settle_interval (and on Settle) each stack with unsettled usage is
// settled: one transaction moves its unsettled totals into a pending
// settlement with seed max(last seed of the stack + 1, now in unix ns), so
// seeds stay unique even if billing's store is wiped; then update_usage is
// sent with that seed. The answer decides:
//   - applied: the settlement is recorded SETTLED (INSUFFICIENT_ESCROW when
//     the ledger reports a shortfall) with the charge and the ledger slot as
//     ledger_reference;
//   - no answer (ledger.ErrUnavailable, a transport error, a deadline, any
//     error that does not prove the update was refused): the settlement
//     stays pending and is retried with the same seed, first thing at the
//     next round and at the next Start; Settle reports it with status
//     UNSPECIFIED and the error;
//   - ledger.ErrReplayedSeed on the pending seed: an earlier attempt was
//     applied and its answer lost; recorded SETTLED, charged 0 here (the
//     ledger holds the charge), ledger_reference says so;
//   - refused for good (bad signer, unknown stack, overflow, invalid): the
//     settlement is recorded FAILED with the error and its usage returns to
//     unsettled, to be settled with a new seed at the next round;
//   - ledger.ErrInsufficientEscrow (a ledger lacking
//     ledger.CapPartialCharge, such as the Solana program, charges nothing
//     when the escrow cannot pay in full): recorded INSUFFICIENT_ESCROW,
//     charged 0, the usage returns to unsettled and the stack is flagged
//     under the minimum; the next round tries again with a new seed.
//
// A ledger lacking ledger.CapCarries (it truncates each unit's price in
// every update) is sent only ledger.WholeTokenUsage's part of the
// unsettled usage at the region's rates (from the chain indexer, or from
// an in-process ledger without one); the sub-token rest stays unsettled,
// written in the transaction that records the pending settlement, and
// goes out once later usage makes it whole. A remote ledger (ledger_addr)
// is asked what it lacks once (mu.ledger.v1 GetCapabilities).
//
// Usage is never dropped. After each settlement the owner's escrow is
// checked against the region's min_escrow_balance through the chain
// indexer (mu_billing_stacks_under_minimum).
//
// # Keys in the store
//
// Everything lives under "billing/" (u64 values big-endian, stack and
// region ids 32 bytes):
//
//	billing/k/<idempotency key>                      first-seen time (u64 unix ns)
//	billing/kt/<u64 unix ns><u32 chunk>              the keys first seen then (u8 length + bytes each,
//	                                                 up to 1000): the sweeper's index (key_retention)
//	billing/b/<stack><u64 bucket start ns><u8 unit>  u128 total of the bucket (16 bytes big-endian)
//	billing/s/<stack>                                JSON: region, unsettled totals, oldest record,
//	                                                 pending settlement, last seed
//	billing/t/<stack><u64 seed>                      mu.billing.v1.Settlement
//	billing/e/<owner><provider><u64 ns><stack><u64 seed>  u64 charged: the escrow's burn index
//	billing/r/<receipt id>                           mu.billing.v1.SignedReceipt
//	billing/rs/<stack><u64 receipt time ns><receipt id>   marker; ListReceipts' index
//
// Units are ledger.Unit numbers (the UsageKinds minus one). Buckets are
// stored by their start time, so bucket_size may change between runs.
package billing
