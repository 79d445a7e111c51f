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
