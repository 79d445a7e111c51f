package solana

import (
	_ "embed"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	sol "github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/service"
)

// DefaultProgramID is the marketplace program as mu deploys it.
const DefaultProgramID = "H7eDBkyrr5jLcjmNmyTbDo45sS6U6MvHx6fFGiF9AL8r"

// Config configures a Solana ledger. It is plain data; DefaultConfig fills
// every field but the fee payer's keypair file, which has no sensible
// default. Durations are time.Duration values.
type Config struct {
	// ProgramID is the base58 address of the marketplace program.
	ProgramID string
	// RPCURL is the JSON-RPC endpoint of a Solana node (http or https).
	RPCURL string
	// WSURL is the node's websocket endpoint for the change feed (ws or
	// wss); empty derives it from rpc_url as the Solana tools do: the same
	// host with ws(s) and the port one above rpc_url's.
	WSURL string
	// FeePayerKeypair is the Solana JSON keypair file (a JSON array of the
	// 64 bytes of the private key) of the account that pays every
	// transaction's fees: the region operator's SOL account. Required.
	FeePayerKeypair string
	// MintKeypair is the Solana JSON keypair file of the token mint that
	// Initialize creates (its address is recorded in the state account, so
	// the key is needed only once). Empty makes a fresh key for it.
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
	// confirmation; a write not confirmed by then fails with
	// ErrUnavailable (it may still land: a retry of an UpdateUsage then
	// finds its seed used).
	ConfirmTimeout time.Duration
	// ConfirmPoll is the first wait between two getSignatureStatuses polls
	// of an unconfirmed transaction; it doubles up to retry_max.
	ConfirmPoll time.Duration
	// RetryInitial is the wait after the first transport error in a row
	// (sending, polling, reading); it doubles with every further error up
	// to retry_max.
	RetryInitial time.Duration
	// RetryMax caps the wait between two retries.
	RetryMax time.Duration
	// MaxRetries is how many times one RPC call is retried after
	// transport errors before it fails with ErrUnavailable.
	MaxRetries int

	// ResyncInterval is how often the change feed reads every account of
	// the program and of the mint afresh (getProgramAccounts) and emits the
	// differences from what the subscriptions delivered; it also runs after
	// the websocket reconnects.
	ResyncInterval time.Duration
	// ChangeRetention is how many of the latest slots Changes keeps in
	// memory; asking for older ones fails with ErrCompacted, as does
	// asking for slots before the ledger was opened.
	ChangeRetention int
	// MaxChangesPage caps the changes of one Changes call, whatever limit
	// it asks for (a slot's changes are never split).
	MaxChangesPage int

	// MaxNameBytes bounds a provider's and a region's name (the program
	// takes any; the transaction's size bounds it too).
	MaxNameBytes int
	// MaxURLBytes bounds a region's base URL.
	MaxURLBytes int
}

// DefaultConfig returns the defaults: the program as deployed, a node on
// localhost's standard ports, confirmed commitment.
func DefaultConfig() Config {
	return Config{
		ProgramID:       DefaultProgramID,
		RPCURL:          "http://127.0.0.1:8899", // solana-test-validator's RPC port
		MintDecimals:    6,                       // 10^6 base units per token
		Commitment:      "confirmed",
		RequestTimeout:  10 * time.Second,
		ConfirmTimeout:  60 * time.Second, // about 150 slots: a blockhash's life
		ConfirmPoll:     50 * time.Millisecond,
		RetryInitial:    100 * time.Millisecond,
		RetryMax:        5 * time.Second,
		MaxRetries:      5,
		ResyncInterval:  time.Minute,
		ChangeRetention: 100_000, // slots of changes kept
		MaxChangesPage:  1000,    // changes per Changes call
		MaxNameBytes:    64,      // provider and region names
		MaxURLBytes:     256,     // region base URLs
	}
}

// Validate reports every invalid field at once, each error naming it; the
// error wraps service.ErrInvalidConfig. It does not read the keypair files
// (Open does).
func (c Config) Validate() error {
	var p service.Problems
	if _, err := sol.PublicKeyFromBase58(c.ProgramID); err != nil {
		p.Addf("program_id", "%q is not a base58 public key: %v", c.ProgramID, err)
	}
	checkURL(&p, "rpc_url", c.RPCURL, "http", "https")
	if c.WSURL != "" {
		checkURL(&p, "ws_url", c.WSURL, "ws", "wss")
	} else if _, err := DeriveWSURL(c.RPCURL); err != nil && c.RPCURL != "" {
		p.Addf("ws_url", "is empty and cannot be derived from rpc_url: %v", err)
	}
	if c.FeePayerKeypair == "" {
		p.Addf("fee_payer_keypair", "is empty: name the Solana JSON keypair file of the account that pays the fees")
	}
	if c.MintDecimals < 0 || c.MintDecimals > 18 {
		p.Addf("mint_decimals", "is %d, want 0..18", c.MintDecimals)
	}
	switch c.Commitment {
	case "processed", "confirmed", "finalized":
	default:
		p.Addf("commitment", "%q: want processed, confirmed or finalized", c.Commitment)
	}
	p.PositiveDuration("request_timeout", c.RequestTimeout)
	p.PositiveDuration("confirm_timeout", c.ConfirmTimeout)
	p.PositiveDuration("confirm_poll", c.ConfirmPoll)
	p.PositiveDuration("retry_initial", c.RetryInitial)
	p.PositiveDuration("retry_max", c.RetryMax)
	if c.RetryInitial > 0 && c.RetryMax > 0 && c.RetryMax < c.RetryInitial {
		p.Addf("retry_max", "%v is below retry_initial %v", c.RetryMax, c.RetryInitial)
	}
	p.NotNegative("max_retries", int64(c.MaxRetries))
	p.PositiveDuration("resync_interval", c.ResyncInterval)
	p.Positive("change_retention", int64(c.ChangeRetention))
	p.Positive("max_changes_page", int64(c.MaxChangesPage))
	p.Positive("max_name_bytes", int64(c.MaxNameBytes))
	p.Positive("max_url_bytes", int64(c.MaxURLBytes))
	return p.Err("ledger/solana")
}

func checkURL(p *service.Problems, field, raw string, schemes ...string) {
	if raw == "" {
		p.Addf(field, "is empty")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		p.Addf(field, "%q is not a URL: %v", raw, err)
		return
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok || u.Host == "" {
		p.Addf(field, "%q: want an absolute %s URL", raw, strings.Join(schemes, " or "))
	}
}

// DeriveWSURL is the websocket URL the Solana tools use for an RPC URL:
// ws for http and wss for https, on the port one above the RPC port (8899
// gives 8900); a URL without a port keeps the scheme's default.
func DeriveWSURL(rpcURL string) (string, error) {
	u, err := url.Parse(rpcURL)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("rpc_url %q is not http or https", rpcURL)
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n >= 65535 {
			return "", fmt.Errorf("rpc_url %q has port %q", rpcURL, port)
		}
		u.Host = u.Hostname() + ":" + strconv.Itoa(n+1)
		if strings.Contains(u.Hostname(), ":") { // IPv6 literal
			u.Host = "[" + u.Hostname() + "]:" + strconv.Itoa(n+1)
		}
	}
	return u.String(), nil
}

// wsURL is the websocket URL the ledger uses.
func (c Config) wsURL() string {
	if c.WSURL != "" {
		return c.WSURL
	}
	u, _ := DeriveWSURL(c.RPCURL) // Validate checked it
	return u
}

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of Config's fields, for a service's
// --help (a service merges them with its own, config.Merge).
func ConfigDocs() config.Docs {
	return config.MustParseDocs(configSource)
}
