// Package chainindexer follows the marketplace ledger (local or Solana) and
// serves providers, regions, stacks and escrow balances with List and Watch
// streams as mu.chainindexer.v1.ChainIndexerService (proto/mu/chainindexer/v1).
//
// The service's implementation lands with its issue; this module holds its place
// in the workspace.
package chainindexer
