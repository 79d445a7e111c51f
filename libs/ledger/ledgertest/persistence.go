package ledgertest

import (
	"errors"
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
)

// RunPersistence checks a backend that keeps its state: open(t, dir)
// opens the ledger kept in dir (a t.TempDir shared by both calls). The
// suite fills a ledger, closes it, opens dir again and expects the same
// accounts, balances, slot and changes, and that the rules still hold for
// the old state (a used usage seed stays used, a stack id stays taken).
func RunPersistence(t *testing.T, open func(t *testing.T, dir string) ledger.Ledger) {
	dir := t.TempDir()
	var first ledger.Ledger
	w := setup(t, func(t *testing.T) ledger.Ledger {
		first = open(t, dir)
		return first
	})
	s := w.createStack(1)
	must(w.l.UpdateUsage(w.ctx, w.usage, s.ID, ledger.U128(1), ledger.Usage{DBWrites: ledger.U128(1_000_000)}))(w)
	before := w.snapshot()
	changes := w.changesSince(0)
	w.ok(first.Close())

	w.l = open(t, dir)
	if after := w.snapshot(); !before.equal(after) {
		t.Fatalf("reopened ledger differs:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := w.changesSince(0); renderChanges(got) != renderChanges(changes) {
		t.Fatalf("reopened ledger's changes differ:\nbefore %s\nafter  %s", renderChanges(changes), renderChanges(got))
	}
	snap := w.snapshot()
	_, err := w.l.UpdateUsage(w.ctx, w.usage, s.ID, ledger.U128(1), ledger.Usage{})
	w.refused(err, ledger.ErrReplayedSeed, snap)
	_, err = w.l.CreateStack(w.ctx, w.dev, w.region.ID, 1, []byte("m"))
	w.refused(err, ledger.ErrAlreadyExists, snap)
	if err := w.l.Initialize(w.ctx, w.auth, ledger.InitParams{}); !errors.Is(err, ledger.ErrAlreadyInitialized) {
		t.Fatalf("Initialize after reopening: %v, want ErrAlreadyInitialized", err)
	}
	w.ok(w.l.Mint(w.ctx, w.auth, w.dev.Pubkey(), 1))
	if got := w.slot(); got != before.Slot+1 {
		t.Fatalf("slot %d after one write on the reopened ledger, want %d", got, before.Slot+1)
	}
	w.conserved()
}
