// Package chainindexerv1 is the generated Go code for mu.chainindexer.v1, the chain indexer API:
// ChainIndexerService with List and Watch of providers, regions, stacks and escrow balances.
//
// The API and its semantics are documented in chainindexer.proto beside this file; regenerate with
// `make proto` after editing it. Everything else in this package is generated.
package chainindexerv1
