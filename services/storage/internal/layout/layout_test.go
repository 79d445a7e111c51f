package layout

import (
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/ids"
)

func TestValidateKey_Rules(t *testing.T) {
	for key, want := range map[string]string{
		"a":                      "",
		"photos/2024/cat.jpg":    "",
		"ünïcode/ok":             "",
		"":                       "required",
		"/lead":                  "empty segment",
		"trail/":                 "empty segment",
		"a//b":                   "empty segment",
		"a/../b":                 `".." segment`,
		"./a":                    `"." segment`,
		"nul\x00":                "control character",
		"\xff":                   "UTF-8",
		strings.Repeat("k", 901): "901 bytes is over the limit of 900",
		strings.Repeat("s", 256): "segment 1 is 256 bytes",
	} {
		err := ValidateKey(key, 900)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("ValidateKey(%q) = %v, want %q", key, err, want)
		}
	}
	for _, p := range []string{"", "photos/", "a/.", "a/..", "x"} {
		if err := ValidatePrefix(p, 900); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", p, err)
		}
	}
	if err := ValidatePrefix("a//", 900); err == nil {
		t.Error("prefix a// accepted")
	}
}

func TestValidateBox_Rules(t *testing.T) {
	for box, ok := range map[string]bool{"attachments": true, "a-b_C9": true, "": false, "a/b": false,
		"..": false, strings.Repeat("b", 65): false, "sp ace": false} {
		if (ValidateBox(box) == nil) != ok {
			t.Errorf("ValidateBox(%q) ok=%v", box, !ok)
		}
	}
}

func TestMaxKeyLimit_FitsS3(t *testing.T) {
	var id ids.StackID
	for i := range id {
		id[i] = 0xff
	}
	name := ObjectName(id, strings.Repeat("b", MaxBoxBytes), strings.Repeat("k", MaxKeyLimit))
	if len(name) > MaxS3NameBytes {
		t.Fatalf("longest name is %d bytes", len(name))
	}
}

// FuzzObjectName_StaysInItsStackAndBox checks, for any box and key that
// pass validation, that the object name is inside its own stack's and
// box's prefixes and no other's, and parses back to the same parts.
func FuzzObjectName_StaysInItsStackAndBox(f *testing.F) {
	f.Add([]byte{1}, []byte{2}, "box", "key", "box2")
	f.Add([]byte{1}, []byte{1}, "a", "../b/c", "a-")
	f.Add([]byte{7}, []byte{8}, "x", "x/y/z", "x/y")
	f.Fuzz(func(t *testing.T, a, b []byte, box, key, otherBox string) {
		var sa, sb ids.StackID
		copy(sa[:], a)
		copy(sb[:], b)
		sa[31] |= 1 // never the zero id
		sb[31] |= 1
		if ValidateBox(box) != nil || ValidateKey(key, MaxKeyLimit) != nil {
			return
		}
		name := ObjectName(sa, box, key)
		if !strings.HasPrefix(name, StackPrefix(sa)) || !strings.HasPrefix(name, BoxPrefix(sa, box)) {
			t.Fatalf("%q outside its own prefixes", name)
		}
		if sb != sa && strings.HasPrefix(name, StackPrefix(sb)) {
			t.Fatalf("%q inside another stack's prefix %q", name, StackPrefix(sb))
		}
		if ValidateBox(otherBox) == nil && otherBox != box && strings.HasPrefix(name, BoxPrefix(sa, otherBox)) {
			t.Fatalf("%q inside another box's prefix %q", name, BoxPrefix(sa, otherBox))
		}
		if strings.HasPrefix(name, BoxMarkersPrefix(sa)) || strings.HasPrefix(name, BinariesRoot) {
			t.Fatalf("%q inside the registry or binaries", name)
		}
		st, bx, k, ok := ParseObjectName(name, MaxKeyLimit)
		if !ok || st != sa || bx != box || k != key {
			t.Fatalf("ParseObjectName(%q) = %v %q %q %v", name, st, bx, k, ok)
		}
	})
}
