package keyspace

import (
	"bytes"
	"testing"

	"github.com/muprotocol/mu/libs/ids"
)

func TestTable_PrefixesNeverNest(t *testing.T) {
	s := ids.StackID{1}
	a, ab := Table{s, "a"}, Table{s, "ab"}
	if bytes.HasPrefix(ab.Prefix(), a.Prefix()) || bytes.HasPrefix(a.Prefix(), ab.Prefix()) {
		t.Fatal("table prefixes nest")
	}
	start, end := a.Range(nil)
	if k := ab.Key([]byte("x")); bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0 {
		t.Fatal("table ab's key inside table a's range")
	}
}

func TestCursor_RoundTripAndBinding(t *testing.T) {
	tb := Table{ids.StackID{1}, "t"}
	c := EncodeCursor(tb, []byte("p"), Position{After: []byte("p1"), Started: true})
	pos, err := DecodeCursor(tb, []byte("p"), c, 16)
	if err != nil || string(pos.After) != "p1" || !pos.Started {
		t.Fatalf("round trip: %+v %v", pos, err)
	}
	for name, tc := range map[string]struct {
		t Table
		p string
	}{"stack": {Table{ids.StackID{2}, "t"}, "p"}, "table": {Table{ids.StackID{1}, "u"}, "p"}, "prefix": {tb, ""}} {
		if _, err := DecodeCursor(tc.t, []byte(tc.p), c, 16); err == nil {
			t.Errorf("cursor accepted with another %s", name)
		}
	}
	start, _, _ := ScanRange(tb, []byte("p"), pos)
	if !bytes.Equal(start, append(tb.Key([]byte("p1")), 0)) {
		t.Errorf("resume start %q", start)
	}
}

func TestEnvelope_AndTTLKey(t *testing.T) {
	v, exp, err := Unwrap(Wrap([]byte("v"), 42))
	if err != nil || string(v) != "v" || exp != 42 {
		t.Fatal(v, exp, err)
	}
	e, dk, ok := ParseTTLKey(TTLKey(42, []byte("dk")))
	if !ok || e != 42 || string(dk) != "dk" {
		t.Fatal(e, dk, ok)
	}
	_, end := TTLRangeUntil(42)
	if bytes.Compare(TTLKey(42, []byte("\xff")), end) >= 0 || bytes.Compare(TTLKey(43, nil), end) < 0 {
		t.Fatal("TTL range bounds")
	}
}
