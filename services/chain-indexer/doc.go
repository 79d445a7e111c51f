// Package chainindexer follows the marketplace ledger (local or Solana) and
// serves providers, regions, stacks and escrow balances with List and Watch
// streams as mu.chainindexer.v1.ChainIndexerService (proto/mu/chainindexer/v1).
//
// Until its API lands with its issue, the service is the empty shell of the
// service contract (libs/service): health, reflection and the admin port.
package chainindexer
