package fnproto_test

import (
	"os"
	"strings"
	"testing"
)

// TestModule_StandardLibraryOnly keeps fnproto on the standard library alone:
// its go.mod may only name the module and the Go version. The SDK depends on
// fnproto and nothing else, and `mu init` projects build from a copy of the
// two, so a requirement here (or a replace, tool or toolchain line) would
// reach every function author.
func TestModule_StandardLibraryOnly(t *testing.T) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		if c := strings.Index(line, "//"); c >= 0 {
			line = line[:c]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "module", "go":
		default:
			t.Errorf("go.mod:%d: %q: fnproto must depend on the standard library alone (only module and go lines)", i+1, strings.TrimSpace(line))
		}
	}
}
