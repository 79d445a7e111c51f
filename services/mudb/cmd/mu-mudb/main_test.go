package main

import (
	"testing"

	"github.com/muprotocol/mu/libs/service/servicetest"
)

// TestBinary_ServesAdminAndStopsOnSIGTERM runs the real binary: its admin
// port serves /metrics, /healthz and /readyz, and SIGTERM exits 0.
func TestBinary_ServesAdminAndStopsOnSIGTERM(t *testing.T) {
	servicetest.CheckBinary(t, ".", nil)
}

// TestBinary_PersistsInDataDir runs the binary on a data directory (the
// embedded store's LevelDB) and checks its muDB metrics are served.
func TestBinary_PersistsInDataDir(t *testing.T) {
	servicetest.CheckBinary(t, ".", []string{"--data-dir=" + t.TempDir()}, "mu_mudb_ttl_swept_keys_total", "mu_mudb_metered_reads_total")
}
