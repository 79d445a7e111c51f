// Package backend is how a service's settings name and open a ledger
// backend other than the local one: the Solana backend's settings as the
// chain indexer and billing spell them (ledger_solana_*), documented for
// their --help, and opened with solana.Open.
package backend

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/ledger/solana"
)

// Solana is solana.Config field for field (a struct conversion: the two
// cannot drift apart, a field added to one alone breaks the build), named
// Solana so that its doc comments do not collide with those of a service's
// own Config in --help (docs are keyed Type.Field: Config.RetryMax is the
// chain indexer's too). A service holds it as a field named Solana inside
// its ledger settings, or LedgerSolana: the settings ledger_solana_*.
type Solana struct {
	// ProgramID is the base58 address of the marketplace program.
	ProgramID string
	// RPCURL is the JSON-RPC endpoint of a Solana node (http or https).
	RPCURL string
	// WSURL is the node's websocket endpoint for the change feed (ws or
	// wss); empty derives it from rpc_url: the same host with ws(s) and the
	// port one above rpc_url's.
	WSURL string
	// FeePayerKeypair is the Solana JSON keypair file (a JSON array of the
	// 64 bytes of the private key) of the account that pays every
	// transaction's fees: the region operator's SOL account. Required.
	FeePayerKeypair string
	// MintKeypair is the Solana JSON keypair file of the token mint that
	// Initialize creates (only the marketplace authority initializes; its
	// address is then read from the state account). Empty makes a fresh key.
	MintKeypair string
	// MintDecimals is the decimals of the mint Initialize creates (token
	// base units per displayed token: 10^decimals).
	MintDecimals int
	// Commitment is the commitment level writes are confirmed at and
	// reads are made at: processed, confirmed or finalized.
	Commitment string

	// RequestTimeout bounds one JSON-RPC call; a call that takes longer is
	// retried like a transport error.
	RequestTimeout time.Duration
	// ConfirmTimeout bounds one write from its first send to its
	// confirmation; a write not confirmed by then fails as unavailable (it
	// may still land: billing's retry with the same seed then finds it
	// used).
	ConfirmTimeout time.Duration
	// ConfirmPoll is the first wait between two signature status polls of
	// an unconfirmed transaction; it doubles up to retry_max.
	ConfirmPoll time.Duration
	// RetryInitial is the wait after the first transport error in a row;
	// it doubles with every further error up to retry_max.
	RetryInitial time.Duration
	// RetryMax caps the wait between two retries of a Solana node call.
	RetryMax time.Duration
	// MaxRetries is how many times one RPC call is retried after
	// transport errors before it fails as unavailable.
	MaxRetries int

	// ResyncInterval is how often the change feed reads every account of
	// the program and of the mint afresh and emits the differences from
	// what the websocket subscriptions delivered; it also runs after the
	// websocket reconnects.
	ResyncInterval time.Duration
	// ChangeRetention is how many of the latest slots of changes the
	// backend keeps in memory for its followers (older ones are compacted:
	// the chain indexer then reads every account again).
	ChangeRetention int
	// MaxChangesPage caps the changes of one read of the change feed.
	MaxChangesPage int

	// MaxNameBytes bounds a provider's and a region's name.
	MaxNameBytes int
	// MaxURLBytes bounds a region's base URL.
	MaxURLBytes int
}

// DefaultSolana returns the Solana backend's defaults (solana.DefaultConfig).
func DefaultSolana() Solana { return SolanaOf(solana.DefaultConfig()) }

// SolanaOf is c as settings.
func SolanaOf(c solana.Config) Solana { return Solana(c) }

// Config is s as the backend's own configuration.
func (s Solana) Config() solana.Config { return solana.Config(s) }

// Validate reports every invalid setting (the backend's checks, which
// name each setting), under prefix (e.g. "ledger_solana_"; "" for none).
func (s Solana) Validate(prefix string) error {
	err := s.Config().Validate()
	if err != nil && prefix != "" {
		return fmt.Errorf("%s*: %w", prefix, err)
	}
	return err
}

// OpenSolana opens the Solana backend on s; the caller closes it.
func OpenSolana(ctx context.Context, s Solana) (*solana.Ledger, error) {
	l, err := solana.Open(ctx, s.Config())
	if err != nil {
		return nil, fmt.Errorf("ledger_backend solana: %w", err)
	}
	return l, nil
}

//go:embed solana.go
var source []byte

// ConfigDocs returns the doc comments of Solana's fields, for a service's
// --help (merge them with the service's own).
func ConfigDocs() config.Docs { return config.MustParseDocs(source) }
