// Package runtime is the runtime node: it runs stacks' WebAssembly functions
// on wasmtime (internal/wasm), keeps warm instances (internal/pool), and
// serves RuntimeService over gRPC: Deploy and Undeploy stacks, Invoke a
// function, Status, and StreamLogs.
//
// # Logs
//
// Functions' Log messages and stderr lines, and the node's own lines about
// them (deploys, crashes), go to a hub (logs.Hub; Server.Logs) that fans
// them out to StreamLogs callers without blocking: a caller that falls more
// than LogBuffer lines behind loses lines, counted in the next entry's
// dropped. The hub keeps the last LogHistoryLines lines of each stack (each
// body cut to 16 KiB, the stderr line limit; LogHistoryBytes for all
// stacks together, oldest first out), which StreamLogs sends first when
// asked for a tail, and drops them when the stack leaves the node
// (Undeploy, release, delete). With no_follow the stream ends after them.
// A line written during a traced call carries the call's trace id
// (LogEntry.trace_id).
//
// # Traces
//
// With tracing on (Deps.TracerProvider, or otlp_endpoint; off by default)
// an Invoke's server span (gRPC, or in process from a gateway in the same
// process) holds SpanInstanceWait (a warm instance from the pool or one
// started for the call, and the node's memory for it; mu.instance.fresh)
// and SpanWasmCall (mu.function, mu.fuel_used, mu.outcome as receipts name
// it; an error status unless ok), and the wasm call holds the client spans
// of the function's muDB and storage calls, whose trace context reaches
// those services. Off, none is started.
//
// # Where stacks come from
//
// Deploy, Undeploy and SetStackEnabled install, remove, enable and disable
// stacks directly (`mu run`, tests, a region without a chain indexer). With
// Config.ChainIndexerAddr (or Deps.ChainIndexer) and Config.RegionID the
// node also follows the chain indexer (libs/chainwatch): the stacks of its
// region (WatchStacks) and the region itself (WatchRegions).
//
//   - An ACTIVE stack is deployed at its ledger revision, its binaries
//     fetched from storage by content id, by ChainDeployWorkers workers:
//     one stack at a time per worker, each stack on one worker at a time,
//     always at the latest state the ledger gave it (an older revision
//     still queued is skipped; a revision lower than the installed one is
//     never deployed). A deploy that fails is logged with the stack and
//     revision, counted in mu_runtime_chain_deploy_failures_total and
//     retried with ChainRetry's backoff; the other stacks go on meanwhile.
//     An update swaps revisions as Deploy does: calls in flight finish on
//     the old revision, new calls go to the new one, none fails.
//   - enabled=false (the owner's escrow under the region's minimum): the
//     node drops the stack's instances and refuses its calls with
//     FAILED_PRECONDITION, reason STACK_DISABLED (libs/rpcerr); the
//     compiled modules stay, so enabled=true serves again at once.
//   - STACK_STATE_DELETED (or a DELETE, or a stack that the snapshot after
//     an OUT_OF_RANGE no longer has): the stack is undeployed and its data
//     deleted, muDB's DeleteStackData then storage's, retried until both
//     succeed (both are idempotent, so every node of the region doing it is
//     safe).
//   - The region's max_giga_instructions_per_call caps the fuel of a call
//     (the lower of it × 10^9 and MaxFuelPerCall; 0 is no cap) and its
//     min/max_memory_limit_bytes narrow MinMemory..MaxMemory for every
//     deploy (0 is no bound): a manifest outside them is refused, naming
//     the function and the bound. The workers start once the regions
//     snapshot is in, so no stack is deployed before its region's limits
//     are known; later changes apply to later deploys and calls.
//   - An indexer that is unreachable or restarts changes nothing: the node
//     keeps serving what it has, and the follower resumes where it
//     stopped. Nothing is removed because of an outage.
//
// mu_runtime_chain_synced is 1 once both Watch snapshots are in (and stays
// 1 during an outage); mu_runtime_chain_sequence is the indexer sequence
// the node's stacks are current to.
//
// Not yet: placement (every node of the region deploys every stack of the
// region; later only the owner will, and only the owner will delete data),
// and stacks deleted while the node was not running are not cleaned up by
// it (its snapshot holds active stacks only).
package runtime
