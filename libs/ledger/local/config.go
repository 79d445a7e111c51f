package local

import (
	"fmt"

	"github.com/muprotocol/mu/libs/service"
)

// Config configures a local ledger. It is plain data; DefaultConfig fills
// every field. Sizes are in bytes.
type Config struct {
	// PDEndpoints are the placement drivers of a TiKV cluster; empty runs
	// the embedded store (see DataDir). Used by Open only.
	PDEndpoints []string
	// DataDir is where the embedded store persists; empty keeps it in
	// memory. Ignored with PDEndpoints; used by Open only.
	DataDir string

	// MaxNameBytes bounds a provider's and a region's name.
	MaxNameBytes int
	// MaxURLBytes bounds a region's base URL.
	MaxURLBytes int
	// MaxManifestBytes bounds a stack's manifest.
	MaxManifestBytes int
	// MaxStacksPerEscrow bounds the active stacks one developer has with
	// one provider (an escrow write reads and may re-emit all of them).
	MaxStacksPerEscrow int
	// MaxStacksPerRegion bounds the active stacks of one region (a region
	// update reads all of them and may re-emit every one).
	MaxStacksPerRegion int
	// ChangeRetention is how many of the latest slots Changes keeps;
	// asking for older ones fails with ErrCompacted.
	ChangeRetention int
	// MaxChangesPage caps the changes of one Changes call, whatever limit
	// it asks for (a slot's changes are never split, so one page may hold
	// more when a single slot does).
	MaxChangesPage int
	// MaxTxnRetries is how many times a write is re-run after a write
	// conflict with a concurrent writer (another process over the same
	// cluster) before it fails with ErrUnavailable.
	MaxTxnRetries int
	// MaxCompactPerWrite bounds how many expired slots of changes one write
	// deletes (more are left to later writes), keeping writes small after
	// ChangeRetention is lowered.
	MaxCompactPerWrite int
}

// maxWriteBytes bounds what one write may have to put in its transaction
// in the worst case the limits allow, below TiKV's default
// txn-total-size-limit (100 MiB).
const maxWriteBytes = 64 << 20

// DefaultConfig returns the defaults: an in-memory embedded store and
// limits sized for development and tests.
func DefaultConfig() Config {
	return Config{
		MaxNameBytes:       64,       // provider and region names
		MaxURLBytes:        256,      // region base URLs
		MaxManifestBytes:   64 << 10, // 64 KiB per manifest
		MaxStacksPerEscrow: 256,      // active stacks per (developer, provider)
		MaxStacksPerRegion: 1024,     // active stacks per region
		ChangeRetention:    100_000,  // slots of changes kept
		MaxChangesPage:     1000,     // changes per Changes call
		MaxTxnRetries:      20,       // conflict retries per write
		MaxCompactPerWrite: 64,       // expired slots deleted per write
	}
}

// Validate reports every invalid field at once, each error naming it; the
// error wraps service.ErrInvalidConfig.
func (c Config) Validate() error {
	var p service.Problems
	p.Positive("max_name_bytes", int64(c.MaxNameBytes))
	p.Positive("max_url_bytes", int64(c.MaxURLBytes))
	p.Positive("max_manifest_bytes", int64(c.MaxManifestBytes))
	p.Positive("max_stacks_per_escrow", int64(c.MaxStacksPerEscrow))
	p.Positive("max_stacks_per_region", int64(c.MaxStacksPerRegion))
	p.Positive("change_retention", int64(c.ChangeRetention))
	p.Positive("max_changes_page", int64(c.MaxChangesPage))
	p.Positive("max_compact_per_write", int64(c.MaxCompactPerWrite))
	p.NotNegative("max_txn_retries", int64(c.MaxTxnRetries))
	for i, e := range c.PDEndpoints {
		if e == "" {
			p.Addf(fmt.Sprintf("pd_endpoints[%d]", i), "is empty")
		}
	}
	if c.MaxManifestBytes > 0 && c.MaxStacksPerRegion > 0 &&
		int64(c.MaxManifestBytes)*int64(c.MaxStacksPerRegion) > maxWriteBytes {
		p.Addf("max_stacks_per_region", "%d stacks × max_manifest_bytes %d exceeds %d bytes, the most one region update may write",
			c.MaxStacksPerRegion, c.MaxManifestBytes, maxWriteBytes)
	}
	if c.MaxManifestBytes > 0 && c.MaxStacksPerEscrow > 0 &&
		int64(c.MaxManifestBytes)*int64(c.MaxStacksPerEscrow) > maxWriteBytes {
		p.Addf("max_stacks_per_escrow", "%d stacks × max_manifest_bytes %d exceeds %d bytes, the most one escrow write may write",
			c.MaxStacksPerEscrow, c.MaxManifestBytes, maxWriteBytes)
	}
	return p.Err("ledger/local")
}
