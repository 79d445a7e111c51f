// Package chainindexer follows the marketplace ledger (local or Solana) and
// serves providers, regions, stacks and escrow balances with List and Watch
// streams as mu.chainindexer.v1.ChainIndexerService (proto/mu/chainindexer/v1).
//
// When it hosts the local ledger and serve_ledger is on, it also serves the
// ledger's signed writes as mu.ledger.v1.LedgerService (package
// libs/ledger/ledgerrpc), so billing in another process can settle usage on
// it; every write is verified against the signature it carries.
package chainindexer
