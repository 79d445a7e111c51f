// Package membership is a mu node's view of the other nodes of its
// region, through hashicorp/memberlist gossip (SWIM): runtimes and
// gateways join one list, each advertising its role, region, gRPC address
// and generation (start time in nanoseconds) as node metadata. Consumers
// get the live members (alive or suspect; dead and left ones removed)
// whenever they change, and compute placement (package placement) from
// them.
package membership

import (
	"context"
	"log/slog"
	"time"
)

// Roles of members.
const (
	RoleRuntime = "runtime"
	RoleGateway = "gateway"
)

// Config is a node's membership settings; services embed it as their
// Cluster field, so its settings are cluster_bind_addr and so on.
type Config struct {
	// BindAddr is the gossip address (TCP and UDP) as host:port; port 0
	// picks a free one. Empty turns membership off: the node is alone.
	BindAddr string
	// AdvertiseAddr is the gossip address other nodes reach this one at,
	// host:port (host an IP); empty: derived from BindAddr (the first
	// private address when it binds to all interfaces). Its IP is also the
	// IP of the gRPC address the node advertises.
	AdvertiseAddr string
	// Join lists members to join through, host:port each; a host name
	// resolves to all its addresses (a Kubernetes headless Service). The
	// node keeps retrying, every JoinRetry, until it has joined one.
	Join []string
	// JoinRetry spaces join attempts while none has succeeded.
	JoinRetry time.Duration
	// SecretKey, if set, encrypts and authenticates gossip: 16, 24 or 32
	// bytes, base64 (standard encoding). Every member needs the same key.
	SecretKey string
	// ProbeInterval is how often a member probes a random other member.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for an ack before asking
	// other members to probe indirectly.
	ProbeTimeout time.Duration
	// SuspicionMult scales the time a suspected member has to refute it
	// before it is declared dead: SuspicionMult × log10(max(1, members)) ×
	// ProbeInterval.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds how much longer that time may be
	// when no other member confirms the suspicion (1: never longer).
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often a member gossips queued messages.
	GossipInterval time.Duration
	// GossipNodes is how many members each gossip round reaches.
	GossipNodes int
	// RetransmitMult scales how many times a message is gossiped.
	RetransmitMult int
	// LeaveTimeout bounds a graceful leave's broadcast.
	LeaveTimeout time.Duration
}

// DefaultConfig returns membership off (no BindAddr) with timings that
// declare a killed member dead within about 2.5 s on a LAN: probes every
// 500 ms with a 250 ms timeout, 1.5 s to refute a suspicion.
func DefaultConfig() Config { panic("TODO") }

// Enabled reports whether BindAddr is set.
func (c Config) Enabled() bool { return c.BindAddr != "" }

// Validate reports every invalid field, named cluster_<field>.
func (c Config) Validate() error { panic("TODO") }

// Meta is what a member advertises about itself.
type Meta struct {
	Role   string
	Region string // base58 region id
	// GRPCAddr is the member's gRPC address, ip:port.
	GRPCAddr   string
	Generation int64
}

// Member is one live member.
type Member struct {
	// Name is unique per process lifetime: the node name and generation.
	Name string
	// Addr is the gossip address.
	Addr string
	Meta Meta
	// Suspect is true while the member is suspected of having failed.
	Suspect bool
}

// Options are the local member's identity and the change callback.
type Options struct {
	// NodeName is the service's node name; the member name adds the
	// generation to it.
	NodeName string
	Role     string
	Region   string
	// GRPCPort is the port of the gRPC address the member advertises (its
	// IP is the advertised gossip IP).
	GRPCPort int
	// Generation is the node's start time in nanoseconds; 0 uses now.
	Generation int64
	Logger     *slog.Logger
	// OnChange receives every live member (this one included) after each
	// change, sorted by name. Calls are serialised and coalesced (a burst
	// of changes may be one call) and come from a goroutine of the List;
	// OnChange must not call Close or Leave.
	OnChange func([]Member)
}

// List is the local member. Its methods are safe for concurrent use.
type List struct{}

// Start creates the local member, binds BindAddr and starts joining Join
// in the background (Start does not wait for a peer). It calls OnChange
// once with the local member alone before returning.
func Start(cfg Config, opts Options) (*List, error) { panic("TODO") }

// Local is the local member.
func (l *List) Local() Member { panic("TODO") }

// Members returns the live members, sorted by name.
func (l *List) Members() []Member { panic("TODO") }

// Addr is the bound gossip address.
func (l *List) Addr() string { panic("TODO") }

// Leave tells the other members that this one is leaving and waits (up
// to LeaveTimeout or ctx) for the broadcast to go out; afterwards the
// member is out of their lists. Safe to call twice.
func (l *List) Leave(ctx context.Context) error { panic("TODO") }

// Close stops gossiping and closes the listeners without a leave (to the
// others it looks like a failure unless Leave came first). Safe twice.
func (l *List) Close() error { panic("TODO") }
