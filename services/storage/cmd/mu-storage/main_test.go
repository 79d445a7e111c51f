package main

import (
	"testing"

	"github.com/muprotocol/mu/libs/service/servicetest"
)

// TestBinary_ServesAdminAndStopsOnSIGTERM runs the real binary (embedded
// directory backend in a temporary data dir): its admin port serves
// /metrics, /healthz and /readyz, and SIGTERM exits 0.
func TestBinary_ServesAdminAndStopsOnSIGTERM(t *testing.T) {
	servicetest.CheckBinary(t, ".", []string{"--http-addr=127.0.0.1:0", "--data-dir=" + t.TempDir()}, "mu_storage_stored_bytes")
}
