package local

import (
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgertest"
)

func openMemory(t *testing.T) ledger.Ledger {
	t.Helper()
	l, err := Open(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLocal_PassesContractSuite(t *testing.T) {
	ledgertest.Run(t, openMemory)
}

func TestLocal_PersistsAcrossReopen(t *testing.T) {
	ledgertest.RunPersistence(t, func(t *testing.T, dir string) ledger.Ledger {
		cfg := DefaultConfig()
		cfg.DataDir = dir
		l, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	})
}
