package placement

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// randKey is a uniformly random key from rng.
func randKey(rng *rand.Rand) Key {
	var k Key
	for i := 0; i < len(k); i += 8 {
		binary.BigEndian.PutUint64(k[i:], rng.Uint64())
	}
	return k
}

// prefixKey is the key whose first byte is b and the rest zero.
func prefixKey(b byte) Key { return Key{b} }

func xorLess(target, a, b Key) bool {
	for i := range target {
		da, db := a[i]^target[i], b[i]^target[i]
		if da != db {
			return da < db
		}
	}
	return false
}

func TestNewNodeID_IsSHA256OfIPPortAndGeneration(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		port uint16
		gen  int64
	}{
		{"10.1.2.3", 7070, 1_700_000_000_123_456_789},
		{"2001:db8::42", 443, 0},
		{"::1", 65535, -1},
	} {
		ip := netip.MustParseAddr(tc.ip)
		var b []byte
		a16 := ip.As16()
		b = append(b, a16[:]...)
		b = binary.BigEndian.AppendUint16(b, tc.port)
		b = binary.BigEndian.AppendUint64(b, uint64(tc.gen))
		if len(b) != 26 {
			t.Fatalf("test builds %d bytes, want 26", len(b))
		}
		want := Key(sha256.Sum256(b))
		if got := NewNodeID(ip, tc.port, tc.gen); got != want {
			t.Errorf("NewNodeID(%s, %d, %d) = %s, want %s", tc.ip, tc.port, tc.gen, got, want)
		}
	}
}

func TestNewNodeID_IPv4AndIPv4MappedAreTheSameNode(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.7")
	mapped := netip.MustParseAddr("::ffff:192.0.2.7")
	if v4 == mapped {
		t.Fatal("test needs distinct netip.Addr values")
	}
	if a, b := NewNodeID(v4, 9000, 42), NewNodeID(mapped, 9000, 42); a != b {
		t.Errorf("IPv4 id %s != IPv4-mapped id %s", a, b)
	}
}

func TestNewNodeID_DiffersByPortAndGeneration(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	base := NewNodeID(ip, 1, 1)
	if NewNodeID(ip, 2, 1) == base || NewNodeID(ip, 1, 2) == base || NewNodeID(netip.MustParseAddr("10.0.0.2"), 1, 1) == base {
		t.Error("changing the IP, port or generation kept the id")
	}
}

func TestNodeIDOf_MatchesNewNodeIDOfTheParsedAddress(t *testing.T) {
	for _, addr := range []string{"10.1.2.3:7070", "[2001:db8::1]:50051", "[::ffff:10.1.2.3]:7070"} {
		got, err := NodeIDOf(addr, 99)
		if err != nil {
			t.Fatalf("NodeIDOf(%q): %v", addr, err)
		}
		ap := netip.MustParseAddrPort(addr)
		if want := NewNodeID(ap.Addr(), ap.Port(), 99); got != want {
			t.Errorf("NodeIDOf(%q) = %s, want %s", addr, got, want)
		}
	}
	a, _ := NodeIDOf("10.1.2.3:7070", 5)
	b, _ := NodeIDOf("[::ffff:10.1.2.3]:7070", 5)
	if a != b {
		t.Error("IPv4 and IPv4-mapped gRPC addresses give different ids")
	}
}

func TestNodeIDOf_RefusesWhatIsNotALiteralIPAndPort(t *testing.T) {
	for _, addr := range []string{"", "localhost:7070", "10.1.2.3", "10.1.2.3:", "10.1.2.3:70000", "2001:db8::1:80", "runtime-0.mu:7070", ":7070"} {
		_, err := NodeIDOf(addr, 1)
		if err == nil {
			t.Errorf("NodeIDOf(%q) succeeded", addr)
			continue
		}
		if !strings.Contains(err.Error(), "placement:") || !strings.Contains(err.Error(), "\""+addr+"\"") {
			t.Errorf("NodeIDOf(%q) error %q does not name the package and the address", addr, err)
		}
	}
}

func FuzzNodeIDOf(f *testing.F) {
	for _, s := range []string{"10.1.2.3:7070", "[::1]:1", "[fe80::1%eth0]:80", "x:1", ""} {
		f.Add(s, int64(1))
	}
	f.Fuzz(func(t *testing.T, addr string, gen int64) {
		id, err := NodeIDOf(addr, gen)
		if err != nil {
			return
		}
		ap := netip.MustParseAddrPort(addr)
		if id != NewNodeID(ap.Addr(), ap.Port(), gen) {
			t.Fatalf("NodeIDOf(%q) disagrees with NewNodeID", addr)
		}
	})
}

func TestKey_StringIsLowerCaseHex(t *testing.T) {
	k := Key{0xAB, 0x01}
	want := "ab01" + strings.Repeat("00", 30)
	if got := k.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestCloser_ComparesXORDistanceBigEndian(t *testing.T) {
	target := prefixKey(0b1010_0000)
	near := prefixKey(0b1010_0001) // distance 0000_0001
	far := prefixKey(0b0010_0000)  // distance 1000_0000
	if !Closer(target, near, far) || Closer(target, far, near) {
		t.Error("Closer does not rank by XOR distance")
	}
	if Closer(target, near, near) {
		t.Error("Closer(a, a) is true")
	}
	if !Closer(target, target, near) {
		t.Error("the target itself is not the closest key")
	}
	// The first byte outweighs every later one.
	a, b := Key{0: 1}, Key{31: 0xff}
	if !Closer(Key{}, b, a) {
		t.Error("a difference in the last byte outweighed one in the first")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		tg, x, y := randKey(rng), randKey(rng), randKey(rng)
		if rng.IntN(4) == 0 { // share a long prefix
			copy(y[:20], x[:20])
		}
		if Closer(tg, x, y) != xorLess(tg, x, y) {
			t.Fatalf("Closer(%s, %s, %s) disagrees with a byte-wise XOR comparison", tg, x, y)
		}
	}
}
