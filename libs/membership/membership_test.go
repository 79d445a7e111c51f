package membership

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/placement"
)

const (
	testRegion = "5ZWj7a1f8tWkjBESHKgrLmXshuXxqeY9SYcfbshpAqPG"
	// converge bounds how long the tests wait for what should take a few
	// gossip rounds; generous so that a loaded CI machine never flakes
	// (10 s once did not suffice for 5 members in CI, 2026-12-03, with no
	// record of who missed whom: cluster now logs that on failure).
	converge = 20 * time.Second
)

// testConfig is DefaultConfig on loopback with a free port; the join
// retry is shortened so that tests joining before their peer is up do not
// wait a second.
func testConfig() Config {
	c := DefaultConfig()
	c.BindAddr = "127.0.0.1:0"
	c.JoinRetry = 100 * time.Millisecond
	c.JoinWait = 0 // TestStartWaitsForTheFirstJoin covers it
	c.Plaintext = true
	return c
}

// encrypted is testConfig with key instead of plaintext.
func encrypted(k string) Config {
	c := testConfig()
	c.Plaintext = false
	c.SecretKey = k
	return c
}

// node is a started List and what its OnChange saw. OnChange fails the
// test when two calls overlap or a call comes after Close returned.
type node struct {
	t    *testing.T
	l    *List
	gen  int64
	port int // gRPC port advertised

	inCall atomic.Int32
	calls  atomic.Int64
	closed atomic.Bool

	mu   sync.Mutex
	last []Member
}

var genSeq atomic.Int64

// start starts a member named name with cfg, closed at the end of the
// test.
func start(t *testing.T, name string, cfg Config) *node {
	t.Helper()
	n, err := tryStart(t, name, cfg, testRegion)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func tryStart(t *testing.T, name string, cfg Config, region string) (*node, error) {
	t.Helper()
	n := &node{t: t, gen: time.Now().UnixNano() + genSeq.Add(1), port: 9000 + int(genSeq.Add(1))}
	l, err := Start(cfg, Options{
		NodeName:   name,
		Role:       RoleRuntime,
		Region:     region,
		GRPCPort:   n.port,
		Generation: n.gen,
		Logger:     testLogger(t),
		OnChange:   n.onChange,
	})
	if err != nil {
		return nil, err
	}
	n.l = l
	t.Cleanup(func() { n.close() })
	return n, nil
}

func (n *node) onChange(ms []Member) {
	if n.inCall.Add(1) != 1 {
		n.t.Errorf("OnChange called concurrently")
	}
	defer n.inCall.Add(-1)
	if n.closed.Load() {
		n.t.Errorf("OnChange called after Close returned")
	}
	if !slices.IsSortedFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) }) {
		n.t.Errorf("OnChange members not sorted by name: %v", names(ms))
	}
	n.calls.Add(1)
	n.mu.Lock()
	n.last = slices.Clone(ms)
	n.mu.Unlock()
}

func (n *node) seen() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last
}

func (n *node) close() {
	if err := n.l.Close(); err != nil {
		n.t.Errorf("Close %s: %v", n.l.Local().Name, err)
	}
	n.closed.Store(true)
}

func (n *node) name() string { return n.l.Local().Name }

func names(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
		if m.Suspect {
			out[i] += "(suspect)"
		}
	}
	return out
}

func find(ms []Member, name string) (Member, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// waitFor polls cond until it holds or within passes, and returns how
// long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for !cond() {
		if time.Since(begin) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(begin)
}

// testLogger writes to the test log at warn and above, or at debug with
// MU_TEST_DEBUG=1.
// It stops at the end of the test: memberlist's goroutines may still log
// for a moment after Close (the List demotes and then drops those, but a
// line already under way may land after Close returned).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(&recorder{out: textHandler(t)})
}

func textHandler(t *testing.T) slog.Handler {
	level := slog.LevelWarn
	if os.Getenv("MU_TEST_DEBUG") == "1" {
		level = slog.LevelDebug
	}
	w := &tWriter{t: t}
	t.Cleanup(func() { // registered before the Lists' Close: runs after them
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
}

type tWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// recorder is a slog handler that keeps every message, at every level,
// with its time, and passes records on to out.
type recorder struct {
	out   slog.Handler
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	at  time.Time
	msg string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.lines = append(r.lines, logLine{rec.Time, rec.Message})
	r.mu.Unlock()
	if r.out.Enabled(ctx, rec.Level) {
		return r.out.Handle(ctx, rec)
	}
	return nil
}

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { panic("not used") }
func (r *recorder) WithGroup(string) slog.Handler      { panic("not used") }

// logged is when the first message containing s was logged.
func (n *node) logged(s string) (time.Time, bool) {
	r := n.l.log.Handler().(*recorder)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.Contains(l.msg, s) {
			return l.at, true
		}
	}
	return time.Time{}, false
}

// cluster starts n members, all joining through the first, and waits
// until each one's OnChange has shown all of them.
func cluster(t *testing.T, n int, cfg Config) []*node {
	t.Helper()
	first := start(t, "n0", cfg)
	nodes := []*node{first}
	join := cfg
	join.Join = []string{first.l.Addr()}
	for i := 1; i < n; i++ {
		nodes = append(nodes, start(t, fmt.Sprintf("n%d", i), join))
	}
	all := func() bool {
		for _, x := range nodes {
			if len(x.seen()) != n {
				return false
			}
		}
		return true
	}
	begin := time.Now()
	for !all() && time.Since(begin) < converge {
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(begin)
	if !all() {
		// Say who misses whom, and what memberlist itself holds, so a
		// failure here tells a lost OnChange from a member that gossip
		// did not carry.
		for _, x := range nodes {
			var held []string
			for _, m := range x.l.ml.Members() {
				held = append(held, fmt.Sprintf("%s(state %d)", m.Name, m.State))
			}
			t.Errorf("%s: OnChange last showed %v; memberlist holds %v; OnChange calls %d", x.name(), names(x.seen()), held, x.calls.Load())
		}
		t.Fatalf("not within %v: all members see all", converge)
	}
	t.Logf("%d members converged %v after the last Start", n, took)
	return nodes
}

func TestJoin(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			nodes := cluster(t, n, testConfig())
			for _, x := range nodes {
				got := x.seen()
				for _, y := range nodes {
					m, ok := find(got, y.name())
					if !ok {
						t.Fatalf("%s does not see %s: %v", x.name(), y.name(), names(got))
					}
					want := Member{
						Name: y.name(),
						Addr: y.l.Addr(),
						Meta: Meta{
							Role:       RoleRuntime,
							Region:     testRegion,
							GRPCAddr:   "127.0.0.1:" + strconv.Itoa(y.port),
							Generation: y.gen,
							Ready:      true,
						},
					}
					if m != want {
						t.Errorf("%s sees\n%+v\nwant\n%+v", x.name(), m, want)
					}
					if m != y.l.Local() {
						t.Errorf("%s sees %+v, but its Local is %+v", x.name(), m, y.l.Local())
					}
				}
				if ms := x.l.Members(); !slices.Equal(ms, got) {
					t.Errorf("%s: Members %v differ from the last OnChange %v", x.name(), names(ms), names(got))
				}
			}
		})
	}
}

func TestStartLocal(t *testing.T) {
	var (
		mu    sync.Mutex
		calls [][]Member
	)
	gen := time.Now().UnixNano()
	l, err := Start(testConfig(), Options{
		NodeName: "solo", Role: RoleGateway, Region: testRegion, GRPCPort: 7000, Generation: gen,
		OnChange: func(ms []Member) { mu.Lock(); calls = append(calls, ms); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || len(calls[0]) != 1 || calls[0][0] != l.Local() {
		t.Fatalf("OnChange before Start returned: %+v, want once with %+v", calls, l.Local())
	}
	local := l.Local()
	if want := "solo@" + strconv.FormatInt(gen, 10); local.Name != want {
		t.Errorf("Name = %q, want %q", local.Name, want)
	}
	ap, err := netip.ParseAddrPort(l.Addr())
	if err != nil || ap.Port() == 0 || ap.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("Addr() = %q (%v), want 127.0.0.1 with the bound port", l.Addr(), err)
	}
	if local.Addr != l.Addr() {
		t.Errorf("advertised %q, bound %q", local.Addr, l.Addr())
	}
	if local.Meta != (Meta{Role: RoleGateway, Region: testRegion, GRPCAddr: "127.0.0.1:7000", Generation: gen, Ready: true}) {
		t.Errorf("Meta = %+v", local.Meta)
	}
	// The port really is bound, for TCP and UDP.
	if c, err := net.Dial("tcp", l.Addr()); err != nil {
		t.Errorf("TCP %s: %v", l.Addr(), err)
	} else {
		c.Close()
	}
	if _, err := net.ListenPacket("udp", l.Addr()); err == nil {
		t.Errorf("UDP %s is free, want it bound", l.Addr())
	}
}

func TestGenerationDefaultsToNow(t *testing.T) {
	before := time.Now().UnixNano()
	l, err := Start(testConfig(), Options{NodeName: "g", Role: RoleRuntime, Region: testRegion, GRPCPort: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	g := l.Local().Meta.Generation
	if g < before || g > time.Now().UnixNano() {
		t.Errorf("generation %d not between %d and now", g, before)
	}
	if !strings.HasSuffix(l.Local().Name, "@"+strconv.FormatInt(g, 10)) {
		t.Errorf("name %q does not end with the generation %d", l.Local().Name, g)
	}
}

func TestAdvertiseAddr(t *testing.T) {
	cfg := testConfig()
	cfg.BindAddr = "0.0.0.0:0"
	cfg.AdvertiseAddr = "127.0.0.1:0" // port 0: the bound port
	a := start(t, "a", cfg)
	_, port, _ := net.SplitHostPort(a.l.Addr())
	if want := "0.0.0.0:" + port; a.l.Addr() != want {
		t.Errorf("Addr() = %q, want %q", a.l.Addr(), want)
	}
	if want := "127.0.0.1:" + port; a.l.Local().Addr != want {
		t.Errorf("advertised %q, want %q", a.l.Local().Addr, want)
	}
	if want := "127.0.0.1:" + strconv.Itoa(a.port); a.l.Local().Meta.GRPCAddr != want {
		t.Errorf("gRPC address %q, want %q", a.l.Local().Meta.GRPCAddr, want)
	}
	// Another member reaches it at the advertised address.
	j := testConfig()
	j.Join = []string{a.l.Local().Addr}
	b := start(t, "b", j)
	waitFor(t, converge, "a and b see each other", func() bool {
		return len(a.seen()) == 2 && len(b.seen()) == 2
	})
}

func TestLeave(t *testing.T) {
	nodes := cluster(t, 3, testConfig())
	leaver := nodes[2]
	begin := time.Now()
	if err := leaver.l.Leave(context.Background()); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	leaveReturned := time.Since(begin)
	waitFor(t, converge, "the others drop the leaver", func() bool {
		for _, x := range nodes[:2] {
			if _, ok := find(x.seen(), leaver.name()); ok || len(x.seen()) != 2 {
				return false
			}
		}
		return true
	})
	t.Logf("leave: Leave returned after %v; the others dropped the member %v after Leave was called", leaveReturned, time.Since(begin))
	// Leave again, then Close, then Leave and Close once more.
	if err := leaver.l.Leave(context.Background()); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	leaver.close()
	if err := leaver.l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := leaver.l.Leave(context.Background()); err == nil {
		t.Errorf("Leave after Close: no error")
	}
}

func TestLeaveContext(t *testing.T) {
	nodes := cluster(t, 2, testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled context may return before the broadcast has gone out,
	// but the leave still happens, and Close after it is safe.
	_ = nodes[1].l.Leave(ctx)
	nodes[1].close()
	waitFor(t, converge, "n0 drops n1", func() bool { return len(nodes[0].seen()) == 1 })
}

// TestCrash closes a member without a leave, as a kill -9 looks to the
// others, and measures with DefaultConfig's timings how long the others
// take to suspect it (memberlist's log; it does not expose suspicion
// otherwise), to declare it dead and to drop it from OnChange.
func TestCrash(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			nodes := cluster(t, n, testConfig())
			victim := nodes[n-1]
			others := nodes[:n-1]
			begin := time.Now()
			victim.close()
			removed := waitFor(t, converge, "all others drop the victim", func() bool {
				for _, x := range others {
					if _, ok := find(x.seen(), victim.name()); ok {
						return false
					}
				}
				return true
			})
			first := func(msg string) time.Duration {
				var at time.Time
				for _, x := range others {
					if a, ok := x.logged(msg); ok && (at.IsZero() || a.Before(at)) {
						at = a
					}
				}
				if at.IsZero() {
					t.Errorf("no member logged %q", msg)
					return 0
				}
				return at.Sub(begin)
			}
			suspected := first("Suspect " + victim.name() + " has failed")
			dead := first("Marking " + victim.name() + " as failed")
			if suspected > dead {
				t.Errorf("declared dead (%v) before suspected (%v)", dead, suspected)
			}
			t.Logf("crash with %d members: first suspected after %v, first declared dead after %v, dropped by all others after %v",
				n, suspected, dead, removed)
			for _, x := range others {
				if got := len(x.seen()); got != n-1 {
					t.Errorf("%s sees %d members, want %d", x.name(), got, n-1)
				}
			}
		})
	}
}

func TestJoinByHostName(t *testing.T) {
	a := start(t, "a", testConfig())
	_, port, _ := net.SplitHostPort(a.l.Addr())
	cfg := testConfig()
	cfg.Join = []string{"localhost:" + port}
	begin := time.Now()
	b := start(t, "b", cfg)
	waitFor(t, converge, "b joins a by name", func() bool {
		return len(a.seen()) == 2 && len(b.seen()) == 2
	})
	t.Logf("joined through localhost:%s in %v (Start included)", port, time.Since(begin))
}

// TestJoinRetry starts the joiner before the member it joins through is
// up (a fixed port it will bind later).
// TestStartWaitsForTheFirstJoin: with join_wait, Start returns once the
// node has joined, and OnChange has had the other member by then; with
// nobody answering it returns after join_wait, alone.
func TestStartWaitsForTheFirstJoin(t *testing.T) {
	a := start(t, "a", testConfig())
	j := testConfig()
	j.Join = []string{a.l.Addr()}
	j.JoinWait = time.Minute
	b := start(t, "b", j)
	if got := len(b.seen()); got != 2 {
		t.Fatalf("OnChange had %d members when Start returned, want 2", got)
	}
	lone := testConfig()
	lone.Join = []string{freePort(t)}
	lone.JoinWait = 300 * time.Millisecond
	begin := time.Now()
	c := start(t, "c", lone)
	if took := time.Since(begin); took < lone.JoinWait {
		t.Fatalf("Start returned after %v, before join_wait %v with nobody to join", took, lone.JoinWait)
	}
	if got := len(c.seen()); got != 1 {
		t.Fatalf("a node with nobody to join sees %d members", got)
	}
}

func TestJoinRetry(t *testing.T) {
	addr := freePort(t)
	j := testConfig()
	j.Join = []string{addr}
	b := start(t, "b", j)
	time.Sleep(3 * j.JoinRetry) // a few failed attempts
	if got := len(b.seen()); got != 1 {
		t.Fatalf("b sees %d members before anyone is up", got)
	}
	cfg := testConfig()
	cfg.BindAddr = addr
	a, err := tryStart(t, "a", cfg, testRegion)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	took := waitFor(t, converge, "b joins a once it is up", func() bool {
		return len(a.seen()) == 2 && len(b.seen()) == 2
	})
	t.Logf("joined %v after the peer started", took)
}

// TestFirstNodesTogether starts two nodes that each list both addresses
// and must end up in one list, though each one may answer its own join.
func TestFirstNodesTogether(t *testing.T) {
	addrA, addrB := freePort(t), freePort(t)
	cfg := testConfig()
	cfg.Join = []string{addrA, addrB}
	ca, cb := cfg, cfg
	ca.BindAddr, cb.BindAddr = addrA, addrB
	a, errA := tryStart(t, "a", ca, testRegion)
	b, errB := tryStart(t, "b", cb, testRegion)
	if errA != nil || errB != nil {
		t.Skipf("ports taken meanwhile: %v %v", errA, errB)
	}
	waitFor(t, converge, "a and b in one list", func() bool {
		return len(a.seen()) == 2 && len(b.seen()) == 2
	})
}

// TestJoinSelfOnly is the first node of a region listing itself.
func TestJoinSelfOnly(t *testing.T) {
	addr := freePort(t)
	cfg := testConfig()
	cfg.BindAddr, cfg.Join = addr, []string{addr}
	a, err := tryStart(t, "a", cfg, testRegion)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	time.Sleep(3 * cfg.JoinRetry)
	if got := a.l.Members(); len(got) != 1 {
		t.Fatalf("members %v, want itself alone", names(got))
	}
	j := testConfig()
	j.Join = []string{addr}
	b := start(t, "b", j)
	waitFor(t, converge, "b joins the first node", func() bool {
		return len(a.seen()) == 2 && len(b.seen()) == 2
	})
}

// freePort is a loopback address whose TCP and UDP ports were free a
// moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
}

func key(b byte, n int) string {
	k := make([]byte, n)
	for i := range k {
		k[i] = b + byte(i)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// refused starts a member that joins through addr and checks that, over
// a few join attempts, it never shares a list with the members.
func refused(t *testing.T, members []*node, name string, cfg Config, region string) {
	t.Helper()
	cfg.Join = []string{members[0].l.Addr()}
	x, err := tryStart(t, name, cfg, region)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second) // 20 join attempts
	for time.Now().Before(deadline) {
		if got := x.l.Members(); len(got) != 1 {
			t.Fatalf("%s joined: %v", name, names(got))
		}
		for _, m := range members {
			if _, ok := find(m.l.Members(), x.name()); ok {
				t.Fatalf("%s is in %s's list", name, m.name())
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEncryption(t *testing.T) {
	t.Run("same key", func(t *testing.T) {
		for _, n := range []int{16, 24, 32} {
			cluster(t, 3, encrypted(key(1, n)))
		}
	})
	t.Run("other key", func(t *testing.T) {
		nodes := cluster(t, 2, encrypted(key(1, 32)))
		refused(t, nodes, "intruder", encrypted(key(2, 32)), testRegion)
	})
	t.Run("plaintext joins encrypted", func(t *testing.T) {
		nodes := cluster(t, 2, encrypted(key(1, 16)))
		refused(t, nodes, "plain", testConfig(), testRegion)
	})
	t.Run("encrypted joins plaintext", func(t *testing.T) {
		nodes := cluster(t, 2, testConfig())
		refused(t, nodes, "secret", encrypted(key(1, 16)), testRegion)
	})
}

func TestOtherRegionRefused(t *testing.T) {
	nodes := cluster(t, 2, testConfig())
	refused(t, nodes, "foreign", testConfig(), "otherRegion")
}

func TestStartRefuses(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		opts Options
		want []string
	}{
		{"invalid config", Config{BindAddr: "nope"}, Options{NodeName: "a", Role: RoleRuntime}, []string{"cluster_bind_addr", "cluster_probe_interval"}},
		{"bad options", testConfig(), Options{Role: "worker", GRPCPort: 70000}, []string{"node name", "role", "gRPC port"}},
		{"oversized meta", testConfig(), Options{NodeName: "a", Role: RoleRuntime, Region: strings.Repeat("x", 600)}, []string{"node meta", "limit of 512"}},
		{"oversized meta, off", DefaultConfig(), Options{NodeName: "a", Role: RoleRuntime, Region: strings.Repeat("x", 600)}, []string{"node meta", "limit of 512"}},
		{"port taken", Config{}, Options{NodeName: "a", Role: RoleRuntime}, []string{"bind"}},
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cases[4].cfg = testConfig()
	cases[4].cfg.BindAddr = taken.Addr().String()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			called := false
			c.opts.OnChange = func([]Member) { called = true }
			l, err := Start(c.cfg, c.opts)
			if err == nil {
				l.Close()
				t.Fatal("Start succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if called {
				t.Error("OnChange called by a failed Start")
			}
			t.Log(err)
		})
	}
}

func TestOff(t *testing.T) {
	var calls atomic.Int32
	cfg := DefaultConfig()
	l, err := Start(cfg, Options{NodeName: "alone", Role: RoleRuntime, Region: testRegion, GRPCPort: 7001, Generation: 42,
		OnChange: func(ms []Member) {
			calls.Add(1)
			if len(ms) != 1 || ms[0].Name != "alone@42" {
				t.Errorf("OnChange %v", names(ms))
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("OnChange called %d times, want 1", calls.Load())
	}
	want := Member{Name: "alone@42", Meta: Meta{Role: RoleRuntime, Region: testRegion, GRPCAddr: "127.0.0.1:7001", Generation: 42, Ready: true}}
	if l.Local() != want || !slices.Equal(l.Members(), []Member{want}) || l.Addr() != "" {
		t.Errorf("Local %+v, Members %+v, Addr %q", l.Local(), l.Members(), l.Addr())
	}
	if err := l.Leave(context.Background()); err != nil {
		t.Errorf("Leave: %v", err)
	}
	if err := errors2(l.Close(), l.Close()); err != nil {
		t.Errorf("Close: %v", err)
	}

	cfg.AdvertiseAddr = "10.1.2.3:7946"
	l, err = Start(cfg, Options{NodeName: "alone", Role: RoleRuntime, GRPCPort: 7001, Generation: 42})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Local().Meta.GRPCAddr; got != "10.1.2.3:7001" {
		t.Errorf("gRPC address %q, want the advertised IP", got)
	}
	l.Close()
}

func errors2(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// TestNoGRPCPort: GRPCPort 0 advertises no gRPC address, and others
// accept that.
func TestNoGRPCPort(t *testing.T) {
	a := start(t, "a", testConfig())
	l, err := Start(func() Config { c := testConfig(); c.Join = []string{a.l.Addr()}; return c }(),
		Options{NodeName: "gw", Role: RoleGateway, Region: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	waitFor(t, converge, "a sees the gateway", func() bool {
		m, ok := find(a.seen(), l.Local().Name)
		return ok && m.Meta.Role == RoleGateway && m.Meta.GRPCAddr == ""
	})
}

// TestOnChangeChurn joins and crashes members while every member's
// OnChange checks (node.onChange) that calls never overlap and never come
// after Close; run it under -race.
func TestOnChangeChurn(t *testing.T) {
	cfg := testConfig()
	nodes := cluster(t, 3, cfg)
	join := cfg
	join.Join = []string{nodes[0].l.Addr()}
	var extra []*node
	for i := range 4 {
		extra = append(extra, start(t, fmt.Sprintf("churn%d", i), join))
		if i%2 == 1 {
			extra[i-1].close()
		}
	}
	_ = nodes[1].l.Leave(context.Background())
	nodes[1].close()
	waitFor(t, converge, "the churn settles", func() bool {
		for _, x := range []*node{nodes[0], nodes[2], extra[1], extra[3]} {
			if len(x.seen()) != 4 {
				return false
			}
		}
		return true
	})
	for _, x := range append(nodes, extra...) {
		if x.calls.Load() == 0 {
			t.Errorf("%s: no OnChange", x.name())
		}
	}
	// Close the rest while changes are still being gossiped.
	for _, x := range []*node{nodes[0], nodes[2], extra[1], extra[3]} {
		x.close()
	}
	time.Sleep(2 * cfg.ProbeInterval) // a late call would be caught here
}

// TestCloseWhileLeaving closes while a Leave with a cancelled context may
// still be in flight: no panic, no call after Close.
func TestCloseWhileLeaving(t *testing.T) {
	nodes := cluster(t, 2, testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { _ = nodes[1].l.Leave(ctx) })
		wg.Go(func() { _ = nodes[1].l.Close() })
	}
	wg.Wait()
	nodes[1].closed.Store(true)
}

// TestSetReady: a member that starts Warming is seen not Ready by the
// others until SetReady(true), and its own OnChange sees the change before
// SetReady returns.
func TestSetReady(t *testing.T) {
	a := start(t, "a", testConfig())
	n := &node{t: t, gen: time.Now().UnixNano() + genSeq.Add(1), port: 9000 + int(genSeq.Add(1))}
	cfg := testConfig()
	cfg.Join = []string{a.l.Addr()}
	l, err := Start(cfg, Options{NodeName: "b", Role: RoleRuntime, Region: testRegion, GRPCPort: n.port,
		Generation: n.gen, Warming: true, Logger: testLogger(t), OnChange: n.onChange})
	if err != nil {
		t.Fatal(err)
	}
	n.l = l
	t.Cleanup(func() { n.close() })
	ready := func(on *node, name string) (bool, bool) {
		m, ok := find(on.seen(), name)
		return m.Meta.Ready, ok
	}
	waitFor(t, converge, "a sees b, not ready", func() bool {
		r, ok := ready(a, n.name())
		return ok && !r
	})
	if err := l.SetReady(true); err != nil {
		t.Fatal(err)
	}
	if r, _ := ready(n, n.name()); !r {
		t.Fatal("b's own OnChange has not seen it ready when SetReady returned")
	}
	waitFor(t, converge, "a sees b ready", func() bool {
		r, ok := ready(a, n.name())
		return ok && r
	})
}

func TestRuntimes_PicksTheReadyRuntimesOfTheRegionAndSelf(t *testing.T) {
	m := func(name, role, region, addr string, gen int64, ready bool) Member {
		return Member{Name: name, Meta: Meta{Role: role, Region: region, GRPCAddr: addr, Generation: gen, Ready: ready}}
	}
	members := []Member{
		m("a", RoleRuntime, testRegion, "10.0.0.1:9000", 1, true),
		m("b", RoleRuntime, testRegion, "10.0.0.2:9000", 2, false), // warming
		m("c", RoleRuntime, testRegion, "10.0.0.3:9000", 3, false), // warming, but self
		m("d", RoleGateway, testRegion, "10.0.0.4:9000", 4, true),
		m("e", RoleRuntime, "other", "10.0.0.5:9000", 5, true),
		m("f", RoleRuntime, testRegion, "host:9000", 6, true),     // not a literal ip
		m("g", RoleRuntime, testRegion, "10.0.0.1:9000", 1, true), // a's id again
	}
	got, bad := Runtimes(members, testRegion, "c")
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "c" {
		t.Fatalf("runtimes %v, want a and c", got)
	}
	want, _ := placement.NodeIDOf("10.0.0.1:9000", 1)
	if got[0].ID != want {
		t.Fatalf("a's id %s, want %s", got[0].ID, want)
	}
	if len(bad) != 1 || bad["f"] == nil {
		t.Fatalf("bad %v, want f", bad)
	}
}

// TestGossipKeysRotateWithoutARestart rotates the key of a running
// region through its key files (add the new key second, make it first,
// drop the old one) and checks that the members stay one list, that a
// newcomer with the new key alone joins and one with the old key alone is
// refused, and that a key file that no longer parses keeps the keys in use.
func TestGossipKeysRotateWithoutARestart(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := key(1, 32), key(2, 32)
	files := []string{filepath.Join(dir, "n0.keys"), filepath.Join(dir, "n1.keys")}
	write := func(lines ...string) {
		for _, f := range files {
			if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("# the region's gossip keys", oldKey)
	cfg := testConfig()
	cfg.Plaintext = false
	cfg.KeyReloadInterval = 20 * time.Millisecond
	cfg.SecretKeyFile = files[0]
	first := start(t, "n0", cfg)
	cfg.SecretKeyFile = files[1]
	cfg.Join = []string{first.l.Addr()}
	second := start(t, "n1", cfg)
	nodes := []*node{first, second}
	waitFor(t, converge, "the two members see each other", func() bool {
		return len(first.seen()) == 2 && len(second.seen()) == 2
	})
	decoded := func(k string) []byte {
		b, err := decodeKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	keysAre := func(primary string, n int) func() bool {
		return func() bool {
			for _, x := range nodes {
				if len(x.l.keyring.GetKeys()) != n || !bytes.Equal(x.l.keyring.GetPrimaryKey(), decoded(primary)) {
					return false
				}
			}
			return true
		}
	}

	write(oldKey, newKey)
	waitFor(t, 5*time.Second, "both members hold the new key beside the old", keysAre(oldKey, 2))
	write(newKey, oldKey)
	waitFor(t, 5*time.Second, "both members encrypt with the new key", keysAre(newKey, 2))
	write(newKey)
	waitFor(t, 5*time.Second, "both members dropped the old key", keysAre(newKey, 1))

	write("not a key")
	time.Sleep(10 * cfg.KeyReloadInterval) // several reloads of the broken file
	if !keysAre(newKey, 1)() {
		t.Fatal("a key file that does not parse changed the keys in use")
	}

	refused(t, nodes, "old-key", encrypted(oldKey), testRegion)
	late := encrypted(newKey)
	late.Join = []string{first.l.Addr()}
	x := start(t, "new-key", late)
	waitFor(t, converge, "a newcomer with the new key alone joins both members", func() bool {
		return len(x.seen()) == 3 && len(first.seen()) == 3 && len(second.seen()) == 3
	})
}

func TestStartRefusesABadKeyFile(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ content, want string }{
		"empty":     {"# nothing yet\n\n", "holds no key"},
		"short key": {key(1, 16) + "\n" + key(1, 20) + "\n", "line 2: decodes to 20 bytes"},
		"twice":     {key(1, 16) + "\n" + key(1, 16) + "\n", "line 2: the same key is listed twice"},
		"missing":   {"", "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if name != "missing" {
				if err := os.WriteFile(f, []byte(c.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig()
			cfg.Plaintext = false
			cfg.SecretKeyFile = f
			l, err := Start(cfg, Options{NodeName: "a", Role: RoleRuntime, Region: testRegion})
			if err == nil {
				l.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), "cluster_secret_key_file") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q: want cluster_secret_key_file and %q", err, c.want)
			}
		})
	}
}
