package gateway

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/chainwatch"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// chainFollow is the gateway's follower of the chain indexer (see
// Config.ChainIndexerAddr): the region's stacks, the regions (for the
// region's provider and minimum balance) and, once the provider is known,
// its escrows, so that a disabled stack's 402 says how much to add. The
// three handlers run on their followers' goroutines and share mu.
type chainFollow struct {
	s       *Server
	region  ledger.Pubkey
	cc      grpc.ClientConnInterface
	conn    *grpc.ClientConn // dialled from ChainIndexerAddr; nil with Deps.ChainIndexer
	opts    chainwatch.Options
	stacks  *chainwatch.Follower[*chainindexerv1.Stack]
	regions *chainwatch.Follower[*chainindexerv1.Region]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	escrows  *chainwatch.Follower[*chainindexerv1.Escrow] // nil until the region's provider is known
	escrowed bool                                         // the escrows snapshot is in: no balance means no escrow
	info     *chainindexerv1.Region                       // nil until known
	balances map[string]uint64                            // developer → escrow balance with the region's provider
	owners   map[ids.StackID]stackOwner                   // active stacks from the chain
}

type stackOwner struct {
	owner   []byte
	enabled bool
}

func newChainFollow(s *Server, conn grpc.ClientConnInterface) (*chainFollow, error) {
	region, err := ledger.ParsePubkey(s.cfg.RegionID)
	if err != nil {
		return nil, fmt.Errorf("gateway: region_id: %w", err)
	}
	f := &chainFollow{s: s, region: region, cc: conn, balances: map[string]uint64{}, owners: map[ids.StackID]stackOwner{}}
	if conn == nil {
		c, err := chainwatch.Dial(s.cfg.ChainIndexerAddr, s.cfg.ChainRetry, s.tls.DialOption(certs.RoleChainIndexer),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(s.cfg.MaxMessageBytes)))
		if err != nil {
			return nil, fmt.Errorf("gateway: chain_indexer_addr: %w", err)
		}
		f.conn, f.cc = c, c
	}
	f.opts = chainwatch.Options{Backoff: s.cfg.ChainRetry, Logger: s.log.With("region", region.String())}
	f.stacks = chainwatch.Stacks(f.cc, &chainindexerv1.WatchStacksRequest{RegionId: region.Bytes()}, f.onStack, f.opts)
	// The gateway knows its region's id, not its provider's: it watches
	// every region (a few small objects), keeps its own, and then watches
	// the escrows of that region's provider.
	f.regions = chainwatch.Regions(f.cc, nil, f.onRegion, f.opts)
	return f, nil
}

func (f *chainFollow) start() {
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.run(f.stacks.Run)
	f.run(f.regions.Run)
}

func (f *chainFollow) run(fn func(context.Context)) {
	f.wg.Add(1)
	go func() { defer f.wg.Done(); fn(f.ctx) }()
}

// stop ends the followers and waits for them. Safe before start and twice.
func (f *chainFollow) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn = nil
	}
}

func (f *chainFollow) synced() bool {
	f.mu.Lock()
	esc := f.escrows
	f.mu.Unlock()
	return f.stacks.Synced() && f.regions.Synced() && esc != nil && esc.Synced()
}

func (f *chainFollow) onStack(_ context.Context, ev chainwatch.Event[*chainindexerv1.Stack]) {
	if ev.Type == chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK {
		return
	}
	st := ev.Object
	id, err := ids.StackIDFromBytes(st.GetId())
	if err != nil {
		f.s.log.Warn("ignoring a stack event", "sequence", ev.Sequence, "err", err)
		return
	}
	if string(st.GetRegionId()) != string(f.region[:]) {
		f.s.log.Warn("ignoring a stack of another region", "stack", id, "stack_region", ledger.Pubkey(st.GetRegionId()).String())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Type == chainindexerv1.ChangeType_CHANGE_TYPE_DELETE || st.GetState() != chainindexerv1.StackState_STACK_STATE_ACTIVE {
		delete(f.owners, id)
		f.s.RemoveStack(id)
		return
	}
	f.owners[id] = stackOwner{owner: st.GetOwner(), enabled: st.GetEnabled()}
	// The enabled state first, so a disabled stack is never routed enabled.
	f.applyEnabledLocked(id)
	m, err := manifest.Parse(st.GetManifest())
	if err != nil {
		f.s.log.Warn("stack from the chain has a manifest this gateway refuses; not routed (an earlier revision keeps serving)",
			"stack", id, "revision", st.GetRevision(), "err", err)
		return
	}
	if err := f.s.PutStack(id, m, st.GetRevision()); err != nil {
		f.s.log.Warn("stack from the chain not routed", "stack", id, "revision", st.GetRevision(), "err", err)
	}
}

func (f *chainFollow) onRegion(_ context.Context, ev chainwatch.Event[*chainindexerv1.Region]) {
	if ev.Type != chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT || string(ev.Object.GetId()) != string(f.region[:]) {
		if ev.Type == chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK && ev.Snapshot && f.regionInfo() == nil {
			f.s.log.Warn("the region is not on the marketplace; 402 reasons cannot name its minimum balance", "region", f.region.String())
		}
		return
	}
	r := ev.Object
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.info != nil && string(f.info.GetProviderId()) != string(r.GetProviderId()) {
		f.s.log.Warn("the region changed provider; keeping the escrows of the first", "region", f.region.String())
	}
	f.info = r
	if f.escrows == nil && len(r.GetProviderId()) == 32 {
		f.escrows = chainwatch.Escrows(f.cc, &chainindexerv1.WatchEscrowsRequest{ProviderId: r.GetProviderId()}, f.onEscrow, f.opts)
		f.run(f.escrows.Run)
	}
	f.refreshLocked(nil)
}

func (f *chainFollow) regionInfo() *chainindexerv1.Region {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

func (f *chainFollow) onEscrow(_ context.Context, ev chainwatch.Event[*chainindexerv1.Escrow]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch ev.Type {
	case chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT:
		dev := ev.Object.GetDeveloper()
		f.balances[string(dev)] = ev.Object.GetBalance()
		f.refreshLocked(dev)
	case chainindexerv1.ChangeType_CHANGE_TYPE_DELETE:
		dev := ev.Object.GetDeveloper()
		delete(f.balances, string(dev))
		f.refreshLocked(dev)
	case chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK:
		if ev.Snapshot && !f.escrowed { // a missing balance now means no escrow
			f.escrowed = true
			f.refreshLocked(nil)
		}
	}
}

// refreshLocked rewrites the 402 reasons of the disabled stacks of
// developer (every developer when nil).
func (f *chainFollow) refreshLocked(developer []byte) {
	for id, o := range f.owners {
		if !o.enabled && (developer == nil || string(o.owner) == string(developer)) {
			f.applyEnabledLocked(id)
		}
	}
}

func (f *chainFollow) applyEnabledLocked(id ids.StackID) {
	o := f.owners[id]
	if o.enabled {
		f.s.SetStackEnabled(id, true, "")
		return
	}
	f.s.SetStackEnabled(id, false, f.reasonLocked(o.owner))
}

// reasonLocked says why a stack of owner is disabled and what to do.
func (f *chainFollow) reasonLocked(owner []byte) string {
	dev := ledger.Pubkey(owner).String()
	if len(owner) != 32 {
		dev = fmt.Sprintf("%x", owner)
	}
	r := f.info
	if r == nil {
		return fmt.Sprintf("the escrow of developer %s with this region's provider is under the region's minimum balance; top it up", dev)
	}
	prov := ledger.Pubkey(r.GetProviderId()).String()
	name := r.GetName()
	if name == "" {
		name = f.region.String()
	}
	minimum := r.GetMinEscrowBalance()
	bal, known := f.balances[string(owner)]
	if !known && !f.escrowed {
		return fmt.Sprintf("the escrow of developer %s with provider %s is under region %s's minimum %d; top it up", dev, prov, name, minimum)
	}
	if bal < minimum {
		return fmt.Sprintf("escrow balance %d of developer %s with provider %s is under region %s's minimum %d; add at least %d",
			bal, dev, prov, name, minimum, minimum-bal)
	}
	return fmt.Sprintf("escrow balance %d of developer %s with provider %s is at or over region %s's minimum %d, but the escrow is overdrawn by usage not yet settled; recharge it",
		bal, dev, prov, name, minimum)
}

// registerChainMetrics registers the gateway's chain metrics (zero when it
// does not follow the chain).
func registerChainMetrics(reg prometheus.Registerer, s *Server) error {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "chain_synced",
			Help: "1 once the gateway has the chain indexer's snapshots of its region's stacks, the regions and the provider's escrows (it stays 1 while the indexer is unreachable), else 0.",
		}, func() float64 {
			if s.follow != nil && s.follow.synced() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mu", Subsystem: "gateway", Name: "chain_sequence",
			Help: "The chain indexer sequence the gateway's stacks are current to.",
		}, func() float64 {
			if s.follow == nil {
				return 0
			}
			return float64(s.follow.stacks.Sequence())
		}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return nil
}
