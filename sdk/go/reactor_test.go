package mu

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

// TestReactor_ExportsAreTheProtocolNames keeps the go:wasmexport directives
// of reactor_wasip1.go, which must be literals, equal to the names the
// runtime looks for (fnproto.ExportInit, fnproto.ExportServe).
func TestReactor_ExportsAreTheProtocolNames(t *testing.T) {
	src, err := os.ReadFile("reactor_wasip1.go")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.SplitSeq(string(src), "\n") {
		if name, ok := strings.CutPrefix(line, "//go:wasmexport "); ok {
			got = append(got, strings.TrimSpace(name))
		}
	}
	if want := []string{fnproto.ExportInit, fnproto.ExportServe}; !slices.Equal(got, want) {
		t.Fatalf("reactor_wasip1.go exports %q, want %q", got, want)
	}
}
