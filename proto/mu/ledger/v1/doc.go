// Package ledgerv1 is the generated Go code for mu.ledger.v1, the network form of the local
// marketplace ledger: LedgerService takes signed writes for the process that hosts the ledger.
//
// The API and its semantics are documented in ledger.proto beside this file; regenerate with `make
// proto` after editing it. Everything else in this package is generated.
package ledgerv1
