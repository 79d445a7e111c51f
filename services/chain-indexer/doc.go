// Package chainindexer follows the marketplace ledger (local or Solana) and
// serves providers, regions, stacks and escrow balances with List and Watch
// streams as mu.chainindexer.v1.ChainIndexerService (proto/mu/chainindexer/v1).
//
// When it hosts the local ledger and serve_ledger is on, it also serves
// every signed write of the ledger (ledger.Writer: initialize, mint,
// providers, regions, usage signers, escrows, stacks, update_usage) and the
// state and wallet balances as mu.ledger.v1.LedgerService (package
// libs/ledger/ledgerrpc), so billing and the mu CLI in other processes can
// drive it; every write is verified against the signature it carries.
package chainindexer
