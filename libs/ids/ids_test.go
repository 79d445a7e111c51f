package ids

import (
	"strings"
	"testing"
)

func TestStackID_RoundTripAndErrors(t *testing.T) {
	id, priv, err := NewStackID()
	if err != nil || len(priv) == 0 {
		t.Fatal(err)
	}
	got, err := ParseStackID(id.String())
	if err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	b, _ := id.MarshalText()
	var back StackID
	if err := back.UnmarshalText(b); err != nil || back != id {
		t.Fatalf("text: %v", err)
	}
	if v, err := StackIDFromBytes(id.Bytes()); err != nil || v != id {
		t.Fatalf("bytes: %v", err)
	}
	for in, want := range map[string]string{
		"":                      "empty",
		"0OIl":                  "not base58",
		"abc":                   "want 32",
		strings.Repeat("z", 65): "65 characters",
	} {
		if _, err := ParseStackID(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseStackID(%q) = %v, want error containing %q", in, err, want)
		}
	}
	if _, err := StackIDFromBytes([]byte{1, 2}); err == nil || !strings.Contains(err.Error(), "2 bytes") {
		t.Errorf("short bytes: %v", err)
	}
	if !(StackID{}).IsZero() || id.IsZero() {
		t.Error("IsZero")
	}
}

func TestBinaryID_IsContentAddressed(t *testing.T) {
	a, b := BinaryID([]byte("wasm")), BinaryID([]byte("wasm"))
	if a != b || a == BinaryID([]byte("wasm2")) {
		t.Fatalf("ids %q %q", a, b)
	}
	// SHA-256("") in base58, pinned so the id format never drifts.
	if got := BinaryID(nil); got != "GKot5hBsd81kMupNCXHaqbhv3huEbxAFMLnpcX2hniwn" {
		t.Fatalf("BinaryID(nil) = %q", got)
	}
}

func TestStackID_AllZeroIsRefused(t *testing.T) {
	if _, err := ParseStackID("11111111111111111111111111111111"); err == nil || !strings.Contains(err.Error(), "all zeroes") {
		t.Errorf("base58 zero id: %v", err)
	}
	if _, err := StackIDFromBytes(make([]byte, 32)); err == nil || !strings.Contains(err.Error(), "all zeroes") {
		t.Errorf("wire zero id: %v", err)
	}
	one := StackID{31: 1}
	if got, err := StackIDFromBytes(one.Bytes()); err != nil || got != one {
		t.Errorf("non-zero id: %v %v", got, err)
	}
}
