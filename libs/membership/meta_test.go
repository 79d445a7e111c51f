package membership

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{Role: RoleRuntime, Region: testRegion, GRPCAddr: "10.0.0.1:9000", Generation: 1},
		{Role: RoleGateway, Region: testRegion, GRPCAddr: "[fd00::1]:443", Generation: time.Now().UnixNano()},
		{Role: RoleGateway, Generation: 1 << 62}, // no gRPC address, no region
		{Role: RoleRuntime, Region: testRegion, GRPCAddr: "10.0.0.2:9000", Generation: 2, Ready: true},
	} {
		b, err := encodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMeta(b)
		if err != nil || got != m {
			t.Errorf("decode(encode(%+v)) = %+v, %v", m, got, err)
		}
		t.Logf("%d bytes: %s", len(b), b)
	}
}

func TestDecodeMetaRefuses(t *testing.T) {
	for _, in := range []string{
		``,
		`null`,
		`[]`,
		`{"r":"runtime","g":"x","a":"10.0.0.1:1"}`,                     // no generation
		`{"g":"x","a":"10.0.0.1:1","n":1}`,                             // no role
		`{"r":"runtime","n":-5}`,                                       // negative generation
		`{"r":"runtime","a":"host:1","n":1}`,                           // not an IP
		`{"r":"runtime","a":"10.0.0.1:0","n":1}`,                       // port 0
		`{"r":"runtime","a":"0.0.0.0:1","n":1}`,                        // unspecified
		`{"r":"runtime","a":"[fe80::1%eth0]:1","n":1}`,                 // zone
		`{"r":"runtime","n":1}x`,                                       // trailing bytes
		`{"r":1,"n":1}`,                                                // wrong type
		`{"r":"runtime","n":1e30}`,                                     // overflow
		`{"r":"runtime","n":1,"g":"` + strings.Repeat("x", 600) + `"}`, // over the limit
	} {
		if m, err := decodeMeta([]byte(in)); err == nil {
			t.Errorf("decodeMeta(%.40q) = %+v, want an error", in, m)
		}
	}
	// Unknown keys are ignored, for later versions.
	if m, err := decodeMeta([]byte(`{"r":"runtime","n":3,"z":[1,2]}`)); err != nil || m.Generation != 3 {
		t.Errorf("unknown key: %+v, %v", m, err)
	}
}

// FuzzDecodeMeta feeds outside input to the decoder: it must never panic,
// and what it accepts must encode within memberlist's limit and decode to
// the same Meta.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		{Role: RoleRuntime, Region: testRegion, GRPCAddr: "10.0.0.1:9000", Generation: 1},
		{Role: RoleGateway, Region: testRegion, GRPCAddr: "[fd00::1]:443", Generation: 1 << 62},
	} {
		b, err := encodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("decoded %+v from %q, which does not encode: %v", m, b, err)
		}
		m2, err := decodeMeta(again)
		if err != nil || m2 != m {
			t.Fatalf("decoded %+v from %q; re-encoded %q decodes to %+v, %v", m, b, again, m2, err)
		}
	})
}

// badMeta is a memberlist delegate advertising arbitrary metadata.
type badMeta struct{ meta []byte }

func (d badMeta) NodeMeta(int) []byte           { return d.meta }
func (badMeta) NotifyMsg([]byte)                {}
func (badMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (badMeta) LocalState(bool) []byte          { return nil }
func (badMeta) MergeRemoteState([]byte, bool)   {}

// syncBuffer is a log destination for a handler used from many
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBadMetaSkipped joins a plain memberlist node whose metadata is not
// ours: members leave it out and warn about it once.
func TestBadMetaSkipped(t *testing.T) {
	var logs syncBuffer
	var calls []int
	var mu sync.Mutex
	l, err := Start(testConfig(), Options{
		NodeName: "a", Role: RoleRuntime, Region: testRegion, GRPCPort: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnChange: func(ms []Member) {
			mu.Lock()
			calls = append(calls, len(ms))
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	mc := memberlist.DefaultLANConfig()
	mc.Name = "stranger"
	mc.BindAddr, mc.BindPort = "127.0.0.1", 0
	mc.Label = label(testRegion)
	mc.Delegate = badMeta{meta: []byte(`{"r":"runtime","n":"not a number"}`)}
	mc.LogOutput = &logs
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	if _, err := ml.Join([]string{l.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "the warning", func() bool { return strings.Contains(logs.String(), "invalid metadata") })
	time.Sleep(4 * DefaultConfig().ProbeInterval) // several polls of the list
	for range 10 {
		if ms := l.Members(); len(ms) != 1 || ms[0] != l.Local() {
			t.Fatalf("Members %v, want only the local member", names(ms))
		}
	}
	if n := strings.Count(logs.String(), "invalid metadata"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range calls {
		if n != 1 {
			t.Errorf("OnChange calls with %v members, want only 1", calls)
		}
	}
}
