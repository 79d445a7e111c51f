// Package membership is a mu node's view of the other nodes of its
// region, through hashicorp/memberlist gossip (SWIM): runtimes and
// gateways join one list, each advertising its role, region, gRPC address
// and generation (start time in nanoseconds) as node metadata. Consumers
// get the live members (alive or suspect; dead and left ones removed)
// whenever they change, and compute placement (package placement) from
// them.
//
// Every gossip packet and stream carries the region id as memberlist's
// label, so a node pointed at another region's members is refused by them
// instead of joining their list. With a SecretKey, gossip is also
// encrypted and authenticated (AES-GCM, the label as additional data).
package membership

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// Roles of members.
const (
	RoleRuntime = "runtime"
	RoleGateway = "gateway"
)

// Config is a node's membership settings; services embed it as their
// Cluster field, so its settings are cluster_bind_addr and so on.
type Config struct {
	// BindAddr is the gossip address (TCP and UDP) as host:port, the host
	// an IP address (empty, 0.0.0.0 or :: for all interfaces); port 0
	// picks a free one. Empty turns membership off: the node is alone.
	BindAddr string
	// AdvertiseAddr is the gossip address other nodes reach this one at,
	// host:port (host an IP; port 0: the bound port); empty: derived from
	// BindAddr (the first private address when it binds to all
	// interfaces). Its IP is also the IP of the gRPC address the node
	// advertises.
	AdvertiseAddr string
	// Join lists members to join through, host:port each; a host name
	// resolves to all its addresses (a Kubernetes headless Service). The
	// node keeps retrying, every JoinRetry, until it has joined one.
	Join []string
	// JoinRetry spaces join attempts while none has succeeded (a
	// duration).
	JoinRetry time.Duration
	// JoinWait is how long Start waits, with Join set, for the first join
	// to succeed before it returns anyway (the node then starts alone and
	// keeps joining in the background), so that a node joining a running
	// region learns its members before it acts on what it owns (a
	// duration; 0: Start does not wait).
	JoinWait time.Duration
	// SecretKey, if set, encrypts and authenticates gossip: 16, 24 or 32
	// bytes, base64 (standard encoding). Every member needs the same key.
	// Set at most one of SecretKey and SecretKeyFile.
	SecretKey string
	// SecretKeyFile names a file of gossip keys, one base64 key (16, 24 or
	// 32 bytes) per line; blank lines and lines starting with # are
	// skipped. The first key encrypts what this member sends; every key
	// listed decrypts what it receives. The file is read again every
	// KeyReloadInterval and a change takes effect without a restart, which
	// is how keys rotate: add the new key as a second line on every
	// member, then move it first everywhere, then remove the old one. A
	// file that no longer parses keeps the keys in use (logged as an
	// error). Kubernetes Secret volumes update in place, so a mounted
	// Secret works.
	SecretKeyFile string
	// KeyReloadInterval is how often SecretKeyFile is read again for
	// changes (a duration).
	KeyReloadInterval time.Duration
	// Plaintext allows gossip without encryption. With membership on,
	// one of SecretKey, SecretKeyFile or Plaintext is required: gossip
	// carries every member's address and readiness, and an unauthenticated
	// packet could claim to be a runtime. Only regions on one machine (mu
	// run, make cluster, tests) set it.
	Plaintext bool
	// ProbeInterval is how often a member probes a random other member (a
	// duration).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for an ack before asking
	// other members to probe indirectly (a duration, below
	// ProbeInterval).
	ProbeTimeout time.Duration
	// SuspicionMult scales the time a suspected member has to refute it
	// before it is declared dead: SuspicionMult × log10(max(1, members)) ×
	// ProbeInterval.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds how much longer that time may be
	// when no other member confirms the suspicion (1: never longer).
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often a member gossips queued messages (a
	// duration).
	GossipInterval time.Duration
	// GossipNodes is how many members each gossip round reaches.
	GossipNodes int
	// RetransmitMult scales how many times a message is gossiped:
	// RetransmitMult × ceil(log10(members + 1)).
	RetransmitMult int
	// PushPullInterval is how often a member exchanges its whole state
	// with a random other member over TCP (a duration; memberlist
	// lengthens it past 32 members). Gossip reaches most members within a
	// few GossipIntervals but gives up after RetransmitMult rounds, so a
	// member that missed an update (a runtime turning Ready) learns it at
	// the next push-pull: this bounds how stale a view can stay.
	PushPullInterval time.Duration
	// LeaveTimeout bounds a graceful leave's broadcast (a duration).
	LeaveTimeout time.Duration
}

// DefaultConfig returns membership off (no BindAddr) with timings that
// declare a killed member dead within about 2.5–3 s on a LAN: probes every
// 500 ms with a 250 ms timeout, 1.5 s to refute a suspicion.
//
// The budget is the region back to full service within 5 s of a kill,
// noticing included. For a region of up to 9 members (log10 of the count
// is below 1, so memberlist's floor of 1 applies), a kill -9 costs:
//
//   - until someone probes the dead member: every member probes one other
//     each ProbeInterval, round robin over a shuffled list, so with 3–5
//     members the dead one is probed within one or two intervals (≤ 1 s);
//   - the failed probe: no ack within ProbeTimeout (250 ms), then indirect
//     probes through up to 3 other members and a TCP ping, all bounded by
//     the end of that probe interval: 500 ms after the ping, then suspect;
//   - the suspicion: SuspicionMult × max(1, log10 n) × ProbeInterval =
//     3 × 1 × 500 ms = 1.5 s. memberlist starts the timer at
//     SuspicionMaxTimeoutMult times that and shortens it towards 1.5 s as
//     independent confirmations arrive (it expects SuspicionMult − 2 = 1).
//     With 3–5 members confirmations are few and late, so memberlist's LAN
//     default of 6 would mean up to 9 s; 1 makes it 1.5 s whether or not
//     anyone confirms. The suspicion is gossiped, and every member that
//     hears it runs its own timer, so all of them get there at about the
//     same time;
//   - spreading the verdict: the dead message is gossiped every
//     GossipInterval (100 ms) to GossipNodes (3) members, RetransmitMult ×
//     ceil(log10(n + 1)) = 4 times: ≤ 200 ms to reach everyone.
//
// Total about 2.5–3 s (measured on loopback under the race detector, 3
// and 5 members: suspected after 0.9–1.4 s, dropped everywhere after
// 2.4–3.0 s), leaving the rest of the 5 s to the consumers. A
// graceful Leave is gossiped the same way and takes a few gossip
// intervals. The price is a member that stalls for over ~2 s (a long GC
// pause, a starved CPU) being declared dead; it refutes that as soon as
// it runs again and is back in the list within a gossip round. From 10
// members on, log10 stretches the suspicion (100 members: 3 s).
func DefaultConfig() Config {
	return Config{
		BindAddr:                "",                     // off; e.g. "0.0.0.0:7946"
		AdvertiseAddr:           "",                     // derived from BindAddr
		Join:                    nil,                    // first node of the region
		JoinRetry:               1 * time.Second,        // a join attempt every second until one succeeds
		JoinWait:                5 * time.Second,        // Start waits this long for the first join
		SecretKey:               "",                     // no key: set one, a key file, or Plaintext
		SecretKeyFile:           "",                     // no key file
		KeyReloadInterval:       5 * time.Second,        // a rotated key file takes effect within 5 s
		Plaintext:               false,                  // gossip must be encrypted when membership is on
		ProbeInterval:           500 * time.Millisecond, // probe a member twice a second
		ProbeTimeout:            250 * time.Millisecond, // an ack takes well under 1 ms on a LAN
		SuspicionMult:           3,                      // suspect for 3 × max(1, log10 n) × ProbeInterval = 1.5 s
		SuspicionMaxTimeoutMult: 1,                      // never longer when nobody confirms (3–5 members)
		GossipInterval:          100 * time.Millisecond, // gossip ten times a second
		GossipNodes:             3,                      // to 3 members each time
		RetransmitMult:          4,                      // each message 4 × ceil(log10(n + 1)) times
		PushPullInterval:        2 * time.Second,        // a missed update arrives within a few seconds (memberlist's LAN default: 30 s)
		LeaveTimeout:            2 * time.Second,        // a leave goes out within a few gossip intervals
	}
}

// Enabled reports whether BindAddr is set.
func (c Config) Enabled() bool { return c.BindAddr != "" }

// Meta is what a member advertises about itself.
type Meta struct {
	Role   string
	Region string // base58 region id
	// GRPCAddr is the member's gRPC address, ip:port; empty when it
	// advertises none (Options.GRPCPort 0).
	GRPCAddr   string
	Generation int64
	// Ready is false while the member is still preparing (a runtime that
	// is deploying the stacks it will own); placement leaves such runtimes
	// out, so no traffic reaches them before they can serve it.
	Ready bool
}

// Member is one live member.
type Member struct {
	// Name is unique per process lifetime: the node name and generation.
	Name string
	// Addr is the gossip address.
	Addr string
	Meta Meta
	// Suspect is true while the member is suspected of having failed,
	// taken from the state memberlist gives the node. memberlist v0.7.0
	// never updates that state in the nodes it hands out (and has no event
	// for a suspicion), so with it Suspect stays false: a failed member
	// stays in the list, unflagged, until it is declared dead.
	Suspect bool
}

// Options are the local member's identity and the change callback.
type Options struct {
	// NodeName is the service's node name; the member name adds the
	// generation to it.
	NodeName string
	// Role is RoleRuntime or RoleGateway.
	Role   string
	Region string
	// GRPCPort is the port of the gRPC address the member advertises (its
	// IP is the advertised gossip IP); 0 advertises no gRPC address.
	GRPCPort int
	// Generation is the node's start time in nanoseconds; 0 uses now.
	Generation int64
	// Warming starts the member not Ready; SetReady(true) ends it.
	Warming bool
	// Logger receives the List's and memberlist's logs; nil discards them.
	Logger *slog.Logger
	// OnChange receives every live member (this one included) after each
	// change, sorted by name. Calls are serialised and coalesced (a burst
	// of changes may be one call) and come from a goroutine of the List;
	// OnChange must not call Close or Leave.
	OnChange func([]Member)
}

// joinWarnEvery is how many failed join attempts in a row are logged at
// debug level between two warnings (the first failure warns).
const joinWarnEvery = 30

// List is the local member. Its methods are safe for concurrent use.
type List struct {
	cfg      Config
	log      *slog.Logger
	onChange func([]Member)
	localMu  sync.Mutex // guards local's Ready after Start
	local    Member
	addr     string
	dlg      *delegate
	evs      *events

	ml    *memberlist.Memberlist // nil when membership is off
	wake  chan struct{}          // capacity 1: a change is pending
	flush chan chan struct{}     // notifyNow: deliver now, then close the channel
	stop  chan struct{}          // closed by Close: the notifier exits
	done  chan struct{}          // closed when the notifier has exited
	quit  chan struct{}          // closed by Leave or Close: joining stops
	quit1 sync.Once
	// joined is closed once the list holds another member (joinLoop).
	joined     chan struct{}
	joinedOnce sync.Once

	mu        sync.Mutex
	closed    bool
	leaveDone chan struct{} // closed when the one memberlist.Leave returned
	leaveErr  error         // its result, set before leaveDone is closed

	closeOnce sync.Once
	closeErr  error
	state     atomic.Int32 // running, closing or closed: for the memberlist logger

	warnMu sync.Mutex
	warned map[string]bool // members whose meta did not decode, warned about

	// keyring holds the gossip keys (nil: plaintext); memberlist uses it
	// and reloadKeys changes it. keysSeen is the key file's content last
	// applied or refused (reloadKeys' goroutine only).
	keyring  *memberlist.Keyring
	keysSeen []byte
}

// Start creates the local member, binds BindAddr and starts joining Join
// in the background (Start does not wait for a peer). It calls OnChange
// once with the local member alone before returning.
//
// With membership off (no BindAddr) the List holds the local member
// alone, for good: it binds nothing, its Addr is empty and its gRPC
// address has the IP of AdvertiseAddr, or 127.0.0.1.
//
// Start fails on an invalid Config or Options, on metadata over
// memberlist's limit (memberlist.MetaMaxSize) and when it cannot bind.
func Start(cfg Config, opts Options) (*List, error) {
	if err := errors.Join(cfg.Validate(), opts.validate()); err != nil {
		return nil, fmt.Errorf("membership: start: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Generation == 0 {
		opts.Generation = time.Now().UnixNano()
	}
	l := &List{
		cfg:      cfg,
		log:      log,
		onChange: opts.OnChange,
		wake:     make(chan struct{}, 1),
		flush:    make(chan chan struct{}),
		joined:   make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		quit:     make(chan struct{}),
		warned:   make(map[string]bool),
	}
	name := MemberName(opts.NodeName, opts.Generation)
	meta := func(ip netip.Addr) Meta {
		m := Meta{Role: opts.Role, Region: opts.Region, Generation: opts.Generation, Ready: !opts.Warming}
		if opts.GRPCPort != 0 {
			m.GRPCAddr = netip.AddrPortFrom(ip, uint16(opts.GRPCPort)).String()
		}
		return m
	}

	if !cfg.Enabled() {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if cfg.AdvertiseAddr != "" {
			ap, _ := netip.ParseAddrPort(cfg.AdvertiseAddr) // validated
			ip = ap.Addr().Unmap()
		}
		l.local = Member{Name: name, Meta: meta(ip)}
		if _, err := encodeMeta(l.local.Meta); err != nil {
			return nil, fmt.Errorf("membership: start %s: %w", name, err)
		}
		l.notify([]Member{l.local})
		return l, nil
	}

	lg := newStdLogger(log, &l.state)
	bindHost, bindPort := splitAddr(cfg.BindAddr)
	nt, err := bind(bindHost, bindPort, lg)
	if err != nil {
		return nil, fmt.Errorf("membership: start %s: bind %s: %w", name, cfg.BindAddr, err)
	}
	port := nt.GetAutoBindPort()
	l.addr = net.JoinHostPort(bindHost, strconv.Itoa(port))
	advIP, advPort, err := advertise(cfg.AdvertiseAddr, bindHost, port)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("membership: start %s: %w", name, err)
	}
	l.local = Member{
		Name: name,
		Addr: netip.AddrPortFrom(advIP, uint16(advPort)).String(),
		Meta: meta(advIP),
	}
	metaBytes, err := encodeMeta(l.local.Meta)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("membership: start %s: %w", name, err)
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.Transport = nt
	mc.BindAddr = bindHost
	mc.BindPort = port
	mc.AdvertiseAddr = advIP.String()
	mc.AdvertisePort = advPort
	mc.Label = label(opts.Region)
	mc.Logger = lg
	keys, err := cfg.loadKeys()
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("membership: start %s: %w", name, err)
	}
	if len(keys.keys) > 0 {
		kr, err := memberlist.NewKeyring(keys.keys, keys.keys[0])
		if err != nil {
			_ = nt.Shutdown()
			return nil, fmt.Errorf("membership: start %s: gossip keys: %w", name, err)
		}
		mc.Keyring = kr
		l.keyring = kr
		l.keysSeen = keys.raw
	}
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.SuspicionMaxTimeoutMult = cfg.SuspicionMaxTimeoutMult
	mc.GossipInterval = cfg.GossipInterval
	mc.GossipNodes = cfg.GossipNodes
	mc.RetransmitMult = cfg.RetransmitMult
	mc.PushPullInterval = cfg.PushPullInterval
	l.dlg = &delegate{meta: metaBytes, log: log}
	mc.Delegate = l.dlg
	l.evs = &events{wake: l.wake}
	mc.Events = l.evs

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = nt.Shutdown() // safe if memberlist shut it down already
		return nil, fmt.Errorf("membership: start %s: %w", name, err)
	}
	l.ml = ml
	log.Info("membership: started", "name", name, "bind", l.addr, "advertise", l.local.Addr,
		"encrypted", l.keyring != nil, "join", cfg.Join)
	if cfg.SecretKeyFile != "" {
		go l.reloadKeys()
	}

	last := []Member{l.local}
	l.notify(last)
	go l.notifier(last)
	if len(cfg.Join) > 0 {
		go l.joinLoop()
		if cfg.JoinWait > 0 {
			t := time.NewTimer(cfg.JoinWait)
			select {
			case <-l.joined:
				// The join's members reach OnChange before Start returns.
				l.notifyNow()
			case <-t.C:
				log.Warn("membership: no member answered within join_wait; starting alone and joining in the background",
					"join", cfg.Join, "join_wait", cfg.JoinWait)
			}
			t.Stop()
		}
	}
	return l, nil
}

func (o Options) validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("node name is empty"))
	}
	if o.Role != RoleRuntime && o.Role != RoleGateway {
		errs = append(errs, fmt.Errorf("role %q is neither %q nor %q", o.Role, RoleRuntime, RoleGateway))
	}
	if o.GRPCPort < 0 || o.GRPCPort > 65535 {
		errs = append(errs, fmt.Errorf("gRPC port %d is out of range 0-65535", o.GRPCPort))
	}
	if o.Generation < 0 {
		errs = append(errs, fmt.Errorf("generation %d is negative", o.Generation))
	}
	return errors.Join(errs...)
}

// label is the memberlist label of a region's gossip: members of other
// regions (or none) drop it.
func label(region string) string { return "mu-region:" + region }

// splitAddr splits a validated host:port.
func splitAddr(hostport string) (string, int) {
	host, p, _ := net.SplitHostPort(hostport)
	port, _ := strconv.Atoi(p)
	return host, port
}

// bindAttempts is how many times bind tries a free port for both TCP and
// UDP: the kernel picks the TCP port, which may be taken for UDP.
const bindAttempts = 10

// bind listens on host:port for TCP and UDP. memberlist's NetTransport
// takes the TCP listener's port for UDP when port is 0, which can collide
// with another UDP socket; bind then tries again with another port.
func bind(host string, port int, lg *log.Logger) (*memberlist.NetTransport, error) {
	attempts := 1
	if port == 0 {
		attempts = bindAttempts
	}
	var err error
	for range attempts {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host},
			BindPort:  port,
			Logger:    lg,
		})
		if err == nil {
			return nt, nil
		}
	}
	return nil, err
}

// advertise is the address to advertise: AdvertiseAddr if set (its port 0
// is the bound port), else the bound IP, or the first private IP when
// bound to all interfaces.
func advertise(adv, bindHost string, boundPort int) (netip.Addr, int, error) {
	if adv != "" {
		ap, err := netip.ParseAddrPort(adv)
		if err != nil {
			return netip.Addr{}, 0, fmt.Errorf("cluster_advertise_addr %q: %w", adv, err)
		}
		port := int(ap.Port())
		if port == 0 {
			port = boundPort
		}
		return ap.Addr().Unmap(), port, nil
	}
	if bindHost != "" {
		ip, err := netip.ParseAddr(bindHost)
		if err != nil {
			return netip.Addr{}, 0, fmt.Errorf("cluster_bind_addr host %q: %w", bindHost, err)
		}
		if !ip.IsUnspecified() {
			return ip.Unmap(), boundPort, nil
		}
	}
	s, err := sockaddr.GetPrivateIP()
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bound to all interfaces, looking for a private IP to advertise: %w", err)
	}
	if s == "" {
		return netip.Addr{}, 0, errors.New("bound to all interfaces and no private IP to advertise: set cluster_advertise_addr")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("private IP %q: %w", s, err)
	}
	return ip.Unmap(), boundPort, nil
}

// notify hands members to OnChange, if any.
func (l *List) notify(members []Member) {
	if l.onChange != nil {
		l.onChange(members)
	}
}

// notifier calls OnChange, one call at a time, whenever memberlist
// reports a change (join, leave, metadata update) and the live members
// differ from last. It returns when stop is closed.
func (l *List) notifier(last []Member) {
	defer close(l.done)
	for {
		var ack chan struct{}
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case ack = <-l.flush:
		}
		select {
		case <-l.stop: // Close won the race: no call after it
			return
		default:
		}
		members := l.Members()
		if !slices.Equal(members, last) {
			last = members
			l.notify(members)
		}
		if ack != nil {
			close(ack)
		}
	}
}

// notifyNow has the notifier deliver the current members (if they
// changed) and waits until it has.
func (l *List) notifyNow() {
	ack := make(chan struct{})
	select {
	case l.flush <- ack:
		<-ack
	case <-l.done:
	}
}

// joinLoop joins cfg.Join, every JoinRetry, until the list holds another
// member: one that answered, or one that joined this node meanwhile. A
// join that reached only this node (the first node of a region lists
// itself) does not count, so two first nodes starting together still end
// up in one list. It stops on Leave or Close.
func (l *List) joinLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-l.quit:
			return
		case <-retry.C:
		}
		if l.ml.NumMembers() > 1 {
			l.log.Info("membership: joined", "members", l.ml.NumMembers(), "attempts", attempt-1)
			l.joinedOnce.Do(func() { close(l.joined) })
			return
		}
		addrs, err := l.resolvable(ctx)
		n := 0
		if len(addrs) > 0 {
			var jerr error
			n, jerr = l.ml.Join(addrs)
			err = errors.Join(err, jerr)
		}
		select {
		case <-l.quit: // left or closed meanwhile: the failure is ours
			return
		default:
		}
		if l.ml.NumMembers() > 1 {
			l.log.Info("membership: joined", "via", addrs, "answered", n, "members", l.ml.NumMembers(), "attempts", attempt)
			l.joinedOnce.Do(func() { close(l.joined) })
			return
		}
		level := slog.LevelDebug
		if err != nil && (attempt == 1 || attempt%joinWarnEvery == 0) {
			level = slog.LevelWarn
		}
		if err == nil {
			err = errors.New("only this node answered")
		}
		// memberlist's errors span lines ("1 error occurred:\n\t* ..."): one line
		msg := strings.Join(strings.Fields(err.Error()), " ")
		l.log.Log(ctx, level, "membership: join failed, retrying", "join", l.cfg.Join,
			"attempt", attempt, "retry", l.cfg.JoinRetry, "err", msg)
		retry.Reset(l.cfg.JoinRetry)
	}
}

// resolvable returns the Join entries whose host is an IP or a name that
// resolves now. memberlist resolves the names again itself (all their
// addresses); this keeps it from warning about each unresolvable name on
// every attempt (a headless Service has no addresses until pods are
// ready). The error lists the names that did not resolve.
func (l *List) resolvable(ctx context.Context) ([]string, error) {
	var out []string
	var errs []error
	for _, a := range l.cfg.Join {
		host, _, _ := net.SplitHostPort(a) // validated
		if _, err := netip.ParseAddr(host); err == nil {
			out = append(out, a)
			continue
		}
		if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", host, err))
			continue
		}
		out = append(out, a)
	}
	return out, errors.Join(errs...)
}

// MemberName is the member name of a node: its node name and generation,
// unique per process lifetime, so a restarted node never fights its dead
// predecessor's name.
func MemberName(nodeName string, generation int64) string {
	return nodeName + "@" + strconv.FormatInt(generation, 10)
}

// Local is the local member.
func (l *List) Local() Member {
	l.localMu.Lock()
	defer l.localMu.Unlock()
	return l.local
}

// SetReady changes whether the local member is Ready and tells the other
// members (a metadata update, gossiped within LeaveTimeout); OnChange sees
// the change before SetReady returns. Safe for concurrent use; not after
// Close.
func (l *List) SetReady(ready bool) error {
	l.localMu.Lock()
	if l.local.Meta.Ready == ready {
		l.localMu.Unlock()
		return nil
	}
	l.local.Meta.Ready = ready
	b, err := encodeMeta(l.local.Meta)
	l.localMu.Unlock()
	if err != nil {
		return fmt.Errorf("membership: set ready: %w", err)
	}
	if l.ml == nil {
		l.notify([]Member{l.Local()})
		return nil
	}
	l.dlg.setMeta(b)
	if err := l.ml.UpdateNode(l.cfg.LeaveTimeout); err != nil {
		return fmt.Errorf("membership: set ready: %w", err)
	}
	l.notifyNow()
	return nil
}

// Members returns the live members, sorted by name: alive and suspect
// ones, this one included. A member whose metadata does not decode is
// left out (and warned about once). After Close it is the last view.
func (l *List) Members() []Member {
	if l.ml == nil {
		return []Member{l.Local()}
	}
	nodes := l.evs.snapshot()
	out := make([]Member, 0, len(nodes))
	var bad []string
	for i := range nodes {
		n := &nodes[i]
		meta, err := decodeMeta(n.Meta)
		if err != nil {
			bad = append(bad, n.Name)
			l.warnBadMeta(n, err)
			continue
		}
		out = append(out, Member{
			Name:    n.Name,
			Addr:    n.Address(),
			Meta:    meta,
			Suspect: n.State == memberlist.StateSuspect,
		})
	}
	l.forgetBadMeta(bad)
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// warnBadMeta warns once per member about metadata that does not decode.
func (l *List) warnBadMeta(n *memberlist.Node, err error) {
	l.warnMu.Lock()
	defer l.warnMu.Unlock()
	if l.warned[n.Name] {
		return
	}
	l.warned[n.Name] = true
	l.log.Warn("membership: ignoring member with invalid metadata", "member", n.Name, "addr", n.Address(), "err", err)
}

// forgetBadMeta keeps only the members in bad among the warned ones, so
// the set does not grow with members long gone.
func (l *List) forgetBadMeta(bad []string) {
	l.warnMu.Lock()
	defer l.warnMu.Unlock()
	for name := range l.warned {
		if !slices.Contains(bad, name) {
			delete(l.warned, name)
		}
	}
}

// Addr is the bound gossip address, with the real port when BindAddr's
// is 0; empty when membership is off.
func (l *List) Addr() string { return l.addr }

// Leave tells the other members that this one is leaving and waits (up
// to LeaveTimeout or ctx) for the broadcast to go out; afterwards the
// member is out of their lists. Safe to call twice: the leave goes out
// once, and a second call waits for the same result. It also stops
// joining. The List keeps gossiping until Close. Leave after Close
// returns an error; with membership off it does nothing.
func (l *List) Leave(ctx context.Context) error {
	l.stopJoining()
	if l.ml == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("membership: leave: the list is closed")
	}
	done := l.leaveDone
	if done == nil {
		done = make(chan struct{})
		l.leaveDone = done
		go func() {
			err := l.ml.Leave(l.cfg.LeaveTimeout)
			if err != nil {
				err = fmt.Errorf("membership: leave %s: %w", l.local.Name, err)
			}
			l.leaveErr = err
			close(done)
		}()
	}
	l.mu.Unlock()
	select {
	case <-done:
		return l.leaveErr
	case <-ctx.Done():
		return fmt.Errorf("membership: leave %s: %w", l.local.Name, ctx.Err())
	}
}

func (l *List) stopJoining() { l.quit1.Do(func() { close(l.quit) }) }

// Close stops gossiping and closes the listeners without a leave (to the
// others it looks like a failure unless Leave came first). Safe twice,
// and after Leave; if a Leave is still in flight, Close first waits for it
// (at most LeaveTimeout). When Close returns, OnChange is not running and
// will not be called again.
func (l *List) Close() error {
	l.closeOnce.Do(func() {
		l.stopJoining()
		if l.ml == nil {
			return
		}
		l.mu.Lock()
		l.closed = true
		leaving := l.leaveDone
		l.mu.Unlock()
		if leaving != nil {
			<-leaving // memberlist panics on a Leave that starts after Shutdown
		}
		l.state.Store(closing)
		if err := l.ml.Shutdown(); err != nil {
			l.closeErr = fmt.Errorf("membership: close %s: %w", l.local.Name, err)
		}
		close(l.stop)
		<-l.done
		l.state.Store(closed)
		l.log.Info("membership: closed", "name", l.local.Name, "left", leaving != nil)
	})
	return l.closeErr
}
