package index

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"
)

// FuzzDecodeView feeds the view file decoder arbitrary bytes: it must
// never panic, and whatever it accepts must encode back to a file it
// decodes to the same view.
func FuzzDecodeView(f *testing.F) {
	x, _, err := Open(Config{History: 3, MaxSubscribers: 1})
	if err != nil {
		f.Fatal(err)
	}
	us := []Update{{Object: stack(1, 1), Slot: 1}, {Object: provider(2, true), Slot: 1}, {Object: escrow(3, 2, 9), Slot: 2}, {Object: stack(1, 2), Slot: 2}}
	if _, err := x.Apply(us, 2, time.Unix(100, 0)); err != nil {
		f.Fatal(err)
	}
	x.mu.RLock()
	v := x.snapshotLocked(false)
	x.mu.RUnlock()
	v.gaps = []gap{{v.horizon + 1, v.horizon + 1}}
	b, err := encodeView(v)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(viewMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeView(b) // as read, checksum and all
		// With a valid checksum, so mutations reach the fields.
		if len(b) >= 4 {
			b = binary.LittleEndian.AppendUint32(b[:len(b)-4:len(b)-4], crc32.Checksum(b[:len(b)-4], crcTable))
		}
		v, err := decodeView(b)
		if err != nil {
			return
		}
		again, err := encodeView(v)
		if err != nil {
			t.Fatalf("an accepted view does not encode: %v", err)
		}
		w, err := decodeView(again)
		if err != nil {
			t.Fatalf("re-encoded view does not decode: %v", err)
		}
		if len(w.history) != len(v.history) || len(w.current) != len(v.current) || w.lastSeq != v.lastSeq {
			t.Fatalf("round trip changed the view")
		}
		if !bytes.Equal(again, mustEncode(t, w)) {
			t.Fatalf("encoding is not stable")
		}
	})
}

func mustEncode(t *testing.T, v *viewFile) []byte {
	b, err := encodeView(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
