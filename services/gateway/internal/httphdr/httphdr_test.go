package httphdr

import (
	"net/http"
	"slices"
	"testing"
)

func TestFilter_DropsHopByHopAndConnectionNamed(t *testing.T) {
	f := NewFilter([]string{"keep-alive, X-Secret", " x-other "})
	for name, want := range map[string]bool{
		"Connection":        false,
		"connection":        false,
		"Keep-Alive":        false,
		"Transfer-Encoding": false,
		"TE":                false,
		"Upgrade":           false,
		"Trailer":           false,
		"Proxy-Connection":  false,
		"Expect":            false,
		"x-secret":          false,
		"X-Other":           false,
		"Content-Type":      true,
		"Content-Length":    true,
		"X-Custom":          true,
		"Authorization":     true,
	} {
		if got := f.Forward(name); got != want {
			t.Errorf("Forward(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestConnectionValues(t *testing.T) {
	got := ConnectionValues([]string{"connection", "X", "Connection"}, []string{"a", "b", "c"})
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("got %v", got)
	}
}

func TestValidNameAndValue(t *testing.T) {
	for name, want := range map[string]bool{"X-Ok": true, "a!#$%&'*+-.^_`|~z": true, "": false, "Bad Name": false,
		"Bad:Name": false, "Bad\nName": false, "Ünicode": false} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
	for v, want := range map[string]bool{"": true, "text\twith tab": true, "utf-8 ü": true, "a\r\nb": false,
		"nul\x00": false, "del\x7f": false} {
		if ValidValue(v) != want {
			t.Errorf("ValidValue(%q) = %v", v, !want)
		}
	}
}

func TestSize(t *testing.T) {
	h := http.Header{"A": {"1", "22"}, "Bb": {"333"}, "Empty": nil}
	if got := Size(h); got != (1+1)+(1+2)+(2+3) {
		t.Fatalf("Size = %d", got)
	}
}
