package main

import (
	"strings"
	"testing"
)

func TestRun_RequiresRuntimeAddr(t *testing.T) {
	err := run([]string{"-http-addr", "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "runtime_addr") {
		t.Fatalf("err = %v", err)
	}
}

func TestRun_EnvironmentOverridesDefaultsAndFlagsOverrideEnvironment(t *testing.T) {
	t.Setenv("MU_GATEWAY_MAX_HEADER_BYTES", "0")
	err := run([]string{"-runtime-addr", "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "max_header_bytes") {
		t.Fatalf("env not applied: %v", err)
	}
	t.Setenv("MU_GATEWAY_INVOKE_TIMEOUT", "5m") // above write_timeout
	err = run([]string{"-runtime-addr", "127.0.0.1:1", "-max-header-bytes", "1024"})
	if err == nil || strings.Contains(err.Error(), "max_header_bytes") || !strings.Contains(err.Error(), "invoke_timeout") {
		t.Fatalf("flag did not override env: %v", err)
	}
}

func TestRun_RejectsBadStackFlag(t *testing.T) {
	for _, spec := range []string{"no-equals", "bad!id=x.yaml", "11111111111111111111111111111111=/does/not/exist.yaml"} {
		err := run([]string{"-runtime-addr", "127.0.0.1:1", "-http-addr", "127.0.0.1:0", "-stacks", spec})
		if err == nil || !strings.Contains(err.Error(), "stacks") {
			t.Errorf("-stack %s: err = %v", spec, err)
		}
	}
}
