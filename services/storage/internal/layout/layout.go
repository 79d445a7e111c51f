// Package layout maps stacks, boxes, keys and binaries to object names in the
// one bucket the storage service uses (design section 6), and validates the
// names that come from outside before any of them is built.
//
// Object names:
//
//	s/<base58 stack id>/<box>/<key>   an object of a box
//	boxes/<base58 stack id>/<box>     the box's registry marker (JSON, see BoxMarker)
//	bin/<binary id>                   a function binary (base58 SHA-256)
//
// Guarantee: for a valid box and key, ObjectName(stack, box, key) starts with
// StackPrefix(stack) and BoxPrefix(stack, box) and with no other stack's or
// box's prefix, so no operation built from these functions reaches another
// stack's objects (tested and fuzzed).
package layout

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mr-tron/base58"

	"github.com/muprotocol/mu/libs/ids"
)

const (
	// ObjectsRoot prefixes every object of every box.
	ObjectsRoot = "s/"
	// BoxesRoot prefixes every box registry marker.
	BoxesRoot = "boxes/"
	// BinariesRoot prefixes every function binary.
	BinariesRoot = "bin/"

	// MaxBoxBytes is the longest box name (as the manifest's service names).
	MaxBoxBytes = 64
	// MaxSegmentBytes is the longest "/"-separated segment of a key: the
	// NAME_MAX of the file systems under posix-backed S3 servers.
	MaxSegmentBytes = 255
	// MaxS3NameBytes is S3's limit on a whole object name.
	MaxS3NameBytes = 1024
	// maxStackText is the longest base58 form of a 32-byte id.
	maxStackText = 44
	// MaxKeyLimit is the largest key limit that keeps every object name
	// within MaxS3NameBytes: "s/" + stack + "/" + box + "/" + key.
	MaxKeyLimit = MaxS3NameBytes - len(ObjectsRoot) - maxStackText - 1 - MaxBoxBytes - 1
)

// ValidateBox reports why box is not a valid box name, or nil: 1..64 ASCII
// letters, digits, '_' and '-' (the manifest's rule for service names).
func ValidateBox(box string) error {
	switch {
	case box == "":
		return fmt.Errorf("box: is required")
	case len(box) > MaxBoxBytes:
		return fmt.Errorf("box: %d bytes is over the limit of %d", len(box), MaxBoxBytes)
	}
	for i := 0; i < len(box); i++ {
		c := box[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("box: %q must contain only ASCII letters, digits, '_' and '-'", box)
		}
	}
	return nil
}

// ValidateKey reports why key is not a valid object key under a limit of
// maxBytes, or nil. A key is 1..maxBytes bytes of UTF-8 without control
// characters; it may contain "/", but every "/"-separated segment is
// non-empty, is not "." or "..", and is at most 255 bytes (names every S3
// server, including posix-backed ones, stores as given).
func ValidateKey(key string, maxBytes int) error {
	switch {
	case key == "":
		return fmt.Errorf("key: is required")
	case len(key) > maxBytes:
		return fmt.Errorf("key: %d bytes is over the limit of %d", len(key), maxBytes)
	case !utf8.ValidString(key):
		return fmt.Errorf("key: must be valid UTF-8")
	}
	if err := validateChars("key", key); err != nil {
		return err
	}
	return validateSegments("key", key, false)
}

// ValidatePrefix reports why prefix is not a valid list prefix, or nil. A
// prefix is empty or any beginning of a valid key: the same characters,
// and a last segment that may be "", "." or ".." (a prefix such as
// "photos/").
func ValidatePrefix(prefix string, maxBytes int) error {
	if prefix == "" {
		return nil
	}
	switch {
	case len(prefix) > maxBytes:
		return fmt.Errorf("prefix: %d bytes is over the limit of %d", len(prefix), maxBytes)
	case !utf8.ValidString(prefix):
		return fmt.Errorf("prefix: must be valid UTF-8")
	}
	if err := validateChars("prefix", prefix); err != nil {
		return err
	}
	return validateSegments("prefix", prefix, true)
}

func validateChars(field, s string) error {
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%s: control character %U at byte %d", field, r, i)
		}
	}
	return nil
}

// validateSegments checks the "/"-separated segments; with open, the last
// segment may be "", "." or ".." (the beginning of a longer one).
func validateSegments(field, s string, open bool) error {
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		last := i == len(segs)-1
		switch {
		case len(seg) > MaxSegmentBytes:
			return fmt.Errorf("%s: segment %d is %d bytes, over the limit of %d", field, i+1, len(seg), MaxSegmentBytes)
		case seg == "" && !(open && last):
			return fmt.Errorf("%s: must not contain an empty segment (leading, trailing or double '/')", field)
		case (seg == "." || seg == "..") && !(open && last):
			return fmt.Errorf("%s: must not contain a %q segment", field, seg)
		}
	}
	return nil
}

// ValidateBinaryID reports why id is not a binary content id (base58 of 32
// bytes), or nil.
func ValidateBinaryID(id string) error {
	if id == "" {
		return fmt.Errorf("binary_id: is required")
	}
	if len(id) > maxStackText {
		return fmt.Errorf("binary_id: %d characters, more than a base58 SHA-256 can be", len(id))
	}
	b, err := base58.Decode(id)
	if err != nil || len(b) != 32 || base58.Encode(b) != id {
		return fmt.Errorf("binary_id: %q is not the base58 form of a SHA-256", id)
	}
	return nil
}

// StackPrefix is the prefix of every object of stack.
func StackPrefix(stack ids.StackID) string { return ObjectsRoot + stack.String() + "/" }

// BoxPrefix is the prefix of every object of one box; box must be valid.
func BoxPrefix(stack ids.StackID, box string) string { return StackPrefix(stack) + box + "/" }

// ObjectName is the object name of key in box; box and key must be valid.
func ObjectName(stack ids.StackID, box, key string) string { return BoxPrefix(stack, box) + key }

// BoxMarkersPrefix is the prefix of the box markers of stack.
func BoxMarkersPrefix(stack ids.StackID) string { return BoxesRoot + stack.String() + "/" }

// BoxMarker is the object name of a box's registry marker; box must be
// valid. The marker holds the box's settings as JSON (see the storage
// package); the box exists exactly when its marker does.
func BoxMarker(stack ids.StackID, box string) string { return BoxMarkersPrefix(stack) + box }

// BinaryName is the object name of a binary; id must be valid.
func BinaryName(id string) string { return BinariesRoot + id }

// ParseObjectName splits an object name of a box into its stack, box and
// key; ok is false for any name ObjectName cannot produce.
func ParseObjectName(name string, maxKeyBytes int) (stack ids.StackID, box, key string, ok bool) {
	rest, found := strings.CutPrefix(name, ObjectsRoot)
	if !found {
		return stack, "", "", false
	}
	st, rest, found := strings.Cut(rest, "/")
	if !found {
		return stack, "", "", false
	}
	box, key, found = strings.Cut(rest, "/")
	if !found {
		return stack, "", "", false
	}
	id, err := ids.ParseStackID(st)
	if err != nil || id.String() != st || ValidateBox(box) != nil || ValidateKey(key, maxKeyBytes) != nil {
		return stack, "", "", false
	}
	return id, box, key, true
}
