package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/chainwatch"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/rpcerr"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
)

// regionLimits are the limits of the node's region on the marketplace that
// the node applies on top of its own settings. Zero means no limit from
// the region.
type regionLimits struct {
	name      string
	maxFuel   uint64 // max_giga_instructions_per_call × 10^9, saturated
	minMemory uint64
	maxMemory uint64
}

// fuelLimit is the fuel budget of one call: MaxFuelPerCall, lowered by the
// region's max_giga_instructions_per_call.
func (s *Server) fuelLimit() uint64 {
	if r := s.region.Load(); r != nil && r.maxFuel > 0 {
		return min(s.cfg.MaxFuelPerCall, r.maxFuel)
	}
	return s.cfg.MaxFuelPerCall
}

// manifestLimits are the memory_limit bounds of a deploy: the node's
// min_memory..max_memory narrowed by the region's bounds, and a note
// naming the region when it narrowed them (for error messages).
func (s *Server) manifestLimits() (manifest.Limits, string) {
	l := manifest.Limits{MinMemory: s.cfg.MinMemory, MaxMemory: s.cfg.MaxMemory}
	r := s.region.Load()
	if r == nil {
		return l, ""
	}
	if r.minMemory > l.MinMemory {
		l.MinMemory = r.minMemory
	}
	if r.maxMemory > 0 && r.maxMemory < l.MaxMemory {
		l.MaxMemory = r.maxMemory
	}
	if l.MinMemory == s.cfg.MinMemory && l.MaxMemory == s.cfg.MaxMemory {
		return l, ""
	}
	return l, fmt.Sprintf("region %s allows memory_limit %s..%s on this node", r.name, manifest.ByteSize(l.MinMemory), manifest.ByteSize(l.MaxMemory))
}

// SetStackEnabled enables or disables a stack on this node. A disabled
// stack's calls are refused with FAILED_PRECONDITION (reason
// STACK_DISABLED, the message naming why) and its instances are dropped,
// idle ones at once and busy ones when their call ends; its compiled
// modules stay, so enabling it again serves at once (instances start on
// the next calls). Stacks are enabled unless disabled here; the state may
// be set before the stack is deployed, survives redeploys and is forgotten
// by Undeploy. Safe for concurrent use; it does not block on calls.
func (s *Server) SetStackEnabled(id ids.StackID, enabled bool, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, off := s.disabled[id]
	if off == !enabled {
		if !enabled {
			s.disabled[id] = reason
		}
		return
	}
	d := s.stacks[id]
	if enabled {
		delete(s.disabled, id)
		if d != nil {
			for _, f := range d.functions {
				_ = s.pool.Add(f.poolKey) // only fails once the pool is closed
			}
		}
	} else {
		s.disabled[id] = reason
		if d != nil {
			for _, f := range d.functions {
				s.pool.Remove(f.poolKey)
			}
		}
	}
	s.log.Info("stack enabled state", "stack", id.String(), "enabled", enabled, "reason", reason)
}

// disabledError is the refusal of a call of a disabled stack.
func disabledError(id ids.StackID, reason string) error {
	if reason == "" {
		reason = "its owner's escrow is under the region's minimum balance"
	}
	return rpcerr.Errorf(codes.FailedPrecondition, rpcerr.StackDisabled, "stack %s is disabled: %s", id, reason)
}

// chainFollow is the node's follower of the chain indexer (see
// Config.ChainIndexerAddr): one Watch of the region's stacks, one of the
// regions, and ChainDeployWorkers workers that bring each stack to the
// state the ledger last gave it. Stack events only record that state and
// queue the stack, so the Watch never waits for a deploy.
type chainFollow struct {
	s       *Server
	region  ledger.Pubkey
	conn    *grpc.ClientConn // dialled from ChainIndexerAddr; nil with Deps.ChainIndexer
	stacks  *chainwatch.Follower[*chainindexerv1.Stack]
	regions *chainwatch.Follower[*chainindexerv1.Region]
	queue   *workQueue
	log     *slog.Logger

	failures prometheus.Counter

	regionReady chan struct{} // closed once the regions snapshot is in
	readyOnce   sync.Once

	ctx    context.Context // ends with stop; bounds on-demand deploys
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// flight runs one on-demand deploy per stack at a time (prepare);
	// flights counts them, so stop waits for them, and onDemand bounds
	// how many run at once.
	flight   singleflight.Group
	flights  sync.WaitGroup
	onDemand *semaphore.Weighted
	// stacksReady is closed once the stacks snapshot is in.
	stacksReady chan struct{}
	stacksOnce  sync.Once
	// standby compiles the binaries of the stacks this node would take
	// over; nil without an artifact cache or with standby_compile off.
	standby *standby

	mu      sync.Mutex
	want    map[ids.StackID]*wanted
	stopped bool // no flight starts once stop has begun
}

// wanted is the state the ledger last gave a stack.
type wanted struct {
	stack    *chainindexerv1.Stack
	gen      uint64 // bumped by every event of the stack
	failures int    // failed attempts at gen in a row
	// releaseAt is when the node drops the stack, which another node
	// owns; zero when no release is pending.
	releaseAt time.Time
	// binaries are the binary ids of stack's manifest (none when it does
	// not parse), for the standby compiles.
	binaries []string
}

// newChainFollow sets up following for s; nothing runs until start.
func newChainFollow(s *Server, conn grpc.ClientConnInterface) (*chainFollow, error) {
	region, err := ledger.ParsePubkey(s.cfg.RegionID)
	if err != nil {
		return nil, fmt.Errorf("runtime: region_id: %w", err)
	}
	f := &chainFollow{s: s, region: region, queue: newWorkQueue(), log: s.log.With("region", region.String()),
		regionReady: make(chan struct{}), stacksReady: make(chan struct{}), want: map[ids.StackID]*wanted{},
		failures: s.metrics.chainDeployFailures, onDemand: semaphore.NewWeighted(int64(s.cfg.OnDemandDeploys))}
	if conn == nil {
		c, err := chainwatch.Dial(s.cfg.ChainIndexerAddr, s.cfg.ChainRetry, s.run.TLS().DialOption(certs.RoleChainIndexer),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(s.cfg.MaxMessageBytes)))
		if err != nil {
			return nil, fmt.Errorf("runtime: chain_indexer_addr: %w", err)
		}
		f.conn, conn = c, c
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if s.cfg.StandbyCompile && s.engine.HasCache() {
		f.standby = newStandby(s)
	}
	s.cluster.setOnMove(func(moved []ids.StackID) {
		for _, id := range moved {
			f.queue.add(id)
		}
	})
	opts := chainwatch.Options{Backoff: s.cfg.ChainRetry, Logger: f.log}
	f.stacks = chainwatch.Stacks(conn, &chainindexerv1.WatchStacksRequest{RegionId: region.Bytes()}, f.onStack, opts)
	// The node knows its region's id, not its provider's, so it watches
	// every region (a few small objects) and keeps its own.
	f.regions = chainwatch.Regions(conn, nil, f.onRegion, opts)
	return f, nil
}

// start runs the followers and the workers until stop.
func (f *chainFollow) start() {
	ctx := f.ctx
	if f.standby != nil {
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.standby.run(ctx) }()
	}
	// The node is ready once it has its first snapshots and has applied
	// every stack in them (a failed deploy is retried later; it does not
	// hold readiness up).
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for _, ready := range []chan struct{}{f.stacksReady, f.regionReady} {
			select {
			case <-ready:
			case <-ctx.Done():
				return
			}
		}
		if f.queue.waitIdle() {
			f.s.cluster.setReady()
		}
	}()
	f.wg.Add(2 + f.s.cfg.ChainDeployWorkers)
	go func() { defer f.wg.Done(); f.regions.Run(ctx) }()
	go func() { defer f.wg.Done(); f.stacks.Run(ctx) }()
	for range f.s.cfg.ChainDeployWorkers {
		go func() { defer f.wg.Done(); f.work(ctx) }()
	}
}

// stop ends the followers and waits for the workers (a deploy in progress
// sees its context cancelled). Safe before start and twice.
func (f *chainFollow) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.queue.close()
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	f.flights.Wait()
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn = nil
	}
}

// synced reports whether both streams have their snapshot.
func (f *chainFollow) synced() bool { return f.stacks.Synced() && f.regions.Synced() }

func (f *chainFollow) onRegion(_ context.Context, ev chainwatch.Event[*chainindexerv1.Region]) {
	switch ev.Type {
	case chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT:
		r := ev.Object
		if string(r.GetId()) != string(f.region[:]) {
			return
		}
		lim := &regionLimits{name: fmt.Sprintf("%q (%s)", r.GetName(), f.region), minMemory: r.GetMinMemoryLimitBytes(), maxMemory: r.GetMaxMemoryLimitBytes()}
		if g := r.GetMaxGigaInstructionsPerCall(); g > 0 {
			lim.maxFuel = mulSat(g, 1_000_000_000)
		}
		f.s.region.Store(lim)
		f.log.Info("region limits", "max_giga_instructions_per_call", r.GetMaxGigaInstructionsPerCall(),
			"min_memory_limit_bytes", lim.minMemory, "max_memory_limit_bytes", lim.maxMemory, "fuel_per_call", f.s.fuelLimit())
	case chainindexerv1.ChangeType_CHANGE_TYPE_DELETE:
		if string(ev.Object.GetId()) == string(f.region[:]) {
			f.log.Warn("the region was closed on the ledger; keeping its last limits and stacks")
		}
	case chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK:
		if ev.Snapshot {
			f.readyOnce.Do(func() {
				if f.s.region.Load() == nil {
					f.log.Warn("the region is not on the marketplace; no region limits apply")
				}
				close(f.regionReady)
			})
		}
	}
}

func (f *chainFollow) onStack(_ context.Context, ev chainwatch.Event[*chainindexerv1.Stack]) {
	if ev.Type == chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK {
		if ev.Snapshot {
			f.stacksOnce.Do(func() { close(f.stacksReady) })
		}
		return
	}
	st := ev.Object
	id, err := ids.StackIDFromBytes(st.GetId())
	if err != nil {
		f.log.Warn("ignoring a stack event", "sequence", ev.Sequence, "err", err)
		return
	}
	if string(st.GetRegionId()) != string(f.region[:]) {
		f.log.Warn("ignoring a stack of another region", "stack", id.String(), "stack_region", ledger.Pubkey(st.GetRegionId()).String())
		return
	}
	if ev.Type == chainindexerv1.ChangeType_CHANGE_TYPE_DELETE {
		// The account is gone (or, Missed, the stack was deleted while
		// the node could not see it): the same as deleted by its owner.
		st = proto.CloneOf(st)
		st.State, st.Enabled = chainindexerv1.StackState_STACK_STATE_DELETED, false
	}
	active := st.GetState() == chainindexerv1.StackState_STACK_STATE_ACTIVE
	if active {
		// The enabled state at once (no I/O), so that no path serves a
		// disabled stack while its turn in the queue is still to come,
		// and before the wanted state is published: a call that finds
		// the stack wanted (and would deploy it on demand) must already
		// find it disabled.
		f.s.SetStackEnabled(id, st.GetEnabled(), disabledReason(st))
	}
	f.mu.Lock()
	w := f.want[id]
	if w == nil {
		w = &wanted{}
		f.want[id] = w
	}
	w.stack, w.failures = st, 0
	w.gen++
	w.binaries = manifestBinaries(st.GetManifest())
	f.mu.Unlock()
	if active {
		f.s.cluster.place(id)
		if f.standby != nil {
			f.standby.poke()
		}
	} else {
		f.s.cluster.unplace(id)
	}
	f.queue.add(id)
}

// work applies queued stacks until ctx ends.
func (f *chainFollow) work(ctx context.Context) {
	select {
	case <-f.regionReady: // deploys are checked against the region's limits
	case <-ctx.Done():
		return
	}
	for {
		id, ok := f.queue.get()
		if !ok {
			return
		}
		f.process(ctx, id)
		f.queue.done(id)
	}
}

// process brings stack id to the state the ledger last gave it; a failure
// queues it again after a backoff, unless a newer state came meanwhile
// (which is queued already).
func (f *chainFollow) process(ctx context.Context, id ids.StackID) {
	f.mu.Lock()
	w := f.want[id]
	if w == nil {
		f.mu.Unlock()
		return
	}
	st, gen := w.stack, w.gen
	f.mu.Unlock()

	err := f.apply(ctx, id, st)
	if ctx.Err() != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.gen != gen || f.want[id] != w {
		return
	}
	if err == nil {
		w.failures = 0
		if st.GetState() == chainindexerv1.StackState_STACK_STATE_DELETED {
			delete(f.want, id)
		}
		return
	}
	w.failures++
	d := f.s.cfg.ChainRetry.Delay(w.failures)
	f.log.Warn("stack from the chain not applied; retrying", "stack", id.String(), "revision", st.GetRevision(),
		"state", st.GetState().String(), "failures", w.failures, "retry_in", d, "err", err)
	time.AfterFunc(d, func() { f.queue.add(id) })
}

// apply makes the node match st.
func (f *chainFollow) apply(ctx context.Context, id ids.StackID, st *chainindexerv1.Stack) error {
	s := f.s
	switch st.GetState() {
	case chainindexerv1.StackState_STACK_STATE_DELETED:
		if _, err := s.Undeploy(ctx, &runtimev1.UndeployRequest{StackId: id.Bytes()}); err != nil {
			return err
		}
		return f.deleteData(ctx, id)
	case chainindexerv1.StackState_STACK_STATE_ACTIVE:
	default:
		f.log.Warn("ignoring a stack in an unknown state", "stack", id.String(), "state", st.GetState().String())
		return nil
	}
	// The enabled state first: a disabled stack's new revision never takes
	// calls, an enabled one's old revision serves while the new deploys.
	s.SetStackEnabled(id, st.GetEnabled(), disabledReason(st))
	if owned, _ := s.cluster.owns(id); !owned {
		s.mu.RLock()
		d := s.stacks[id]
		s.mu.RUnlock()
		if d != nil && d.revision < st.GetRevision() && s.drop(id) {
			// Calls that still reach this node deploy the new revision on
			// demand; the old one must not answer them.
			f.log.Info("stack dropped: a newer revision is out and another node owns it", "stack", id.String(), "revision", d.revision)
		}
		return f.release(id)
	}
	f.mu.Lock()
	if w := f.want[id]; w != nil {
		w.releaseAt = time.Time{} // owned again: nothing to release
	}
	f.mu.Unlock()
	s.mu.RLock()
	var installed uint64
	d := s.stacks[id]
	if d != nil {
		installed = d.revision
	}
	s.mu.RUnlock()
	if d != nil && installed >= st.GetRevision() {
		return nil // there already, or newer (deployed directly)
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.ChainDeployTimeout)
	defer cancel()
	// A new revision of a stack the node serves starts its instances
	// before it takes calls (the old one serves meanwhile); a stack new to
	// the node, one it takes over, takes calls once compiled.
	_, err := s.deploy(dctx, &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Revision: st.GetRevision(), Manifest: st.GetManifest()}}, d == nil)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.mu.RLock()
		d := s.stacks[id]
		s.mu.RUnlock()
		if d != nil && d.revision >= st.GetRevision() {
			return nil // a newer revision won meanwhile
		}
		f.failures.Inc()
		f.log.Error("deploying a stack from the chain failed", "stack", id.String(), "revision", st.GetRevision(),
			"code", status.Code(err).String(), "err", status.Convert(err).Message())
		return err
	}
	return nil
}

// disabledReason is why a disabled stack's calls are refused ("" for an
// enabled one).
func disabledReason(st *chainindexerv1.Stack) string {
	if st.GetEnabled() {
		return ""
	}
	return "its owner's escrow with the provider is under the region's minimum balance (min_escrow_balance); calls are refused until it is topped up"
}

// manifestBinaries lists the binary ids of a manifest; none when it does
// not parse (its deploy reports why).
func manifestBinaries(yml []byte) []string {
	m, err := manifest.Parse(yml)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(m.Functions))
	for _, fn := range m.Functions {
		out = append(out, fn.Binary)
	}
	return out
}

// release drops stack id, which another node owns, from this node once
// it has been unowned for ReleaseGrace; until then calls that reach the
// node are still served. It schedules itself: the first call starts the
// grace period and queues the stack again when it ends.
func (f *chainFollow) release(id ids.StackID) error {
	s := f.s
	s.mu.RLock()
	d := s.stacks[id]
	s.mu.RUnlock()
	f.mu.Lock()
	w := f.want[id]
	if w == nil {
		f.mu.Unlock()
		return nil
	}
	if d == nil {
		w.releaseAt = time.Time{} // nothing to release; a later deploy starts its own grace
		f.mu.Unlock()
		return nil
	}
	now := time.Now()
	if w.releaseAt.IsZero() {
		w.releaseAt = now.Add(s.cfg.ReleaseGrace)
		f.mu.Unlock()
		f.log.Info("stack owned by another node; releasing it after the grace period", "stack", id.String(), "release_grace", s.cfg.ReleaseGrace)
		time.AfterFunc(s.cfg.ReleaseGrace, func() { f.queue.add(id) })
		return nil
	}
	if now.Before(w.releaseAt) {
		f.mu.Unlock()
		return nil // its timer queues it again
	}
	w.releaseAt = time.Time{}
	f.mu.Unlock()
	if owned, _ := s.cluster.owns(id); owned {
		return nil // owned again meanwhile
	}
	if s.drop(id) {
		s.metrics.releases.Inc()
		f.log.Info("stack released: another node owns it", "stack", id.String())
	}
	return nil
}

// prepare deploys stack id on this node now, for a call that reached it
// before it had the stack (see Invoke). It returns nil when the stack is
// not active in the region (the caller answers NotFound), and Unavailable
// (reason NOT_READY) when the node has not caught up with the chain
// within ChainSyncWait or the deploy failed for a reason that may pass,
// so that a gateway tries another node; a stack that cannot be deployed
// at all is FailedPrecondition (a gateway answers 502 and does not
// retry). Concurrent calls for one stack share one deploy, which runs in
// the stack's turn of the work queue (so it never races the worker that
// applies a delete or an update) and under OnDemandDeploys; a caller
// whose ctx ends stops waiting, not the deploy. A stack deployed here
// that another node owns is released after ReleaseGrace.
func (f *chainFollow) prepare(ctx context.Context, id ids.StackID) error {
	if err := f.waitSynced(ctx, id); err != nil {
		return err
	}
	f.mu.Lock()
	stopped := f.stopped
	var st *chainindexerv1.Stack
	if w := f.want[id]; w != nil {
		st = w.stack
	}
	f.mu.Unlock()
	if stopped {
		return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "the node is shutting down")
	}
	if st == nil || st.GetState() != chainindexerv1.StackState_STACK_STATE_ACTIVE {
		return nil
	}
	if !st.GetEnabled() {
		// Disabled since the caller looked (its second lookup says so):
		// a call never deploys a disabled stack.
		return nil
	}
	ch := f.flight.DoChan(id.String(), func() (any, error) { return nil, f.deployOnDemand(id) })
	select {
	case r := <-ch:
		if r.Err == nil {
			return nil
		}
		switch status.Code(r.Err) {
		case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound:
			return rpcerr.Errorf(codes.FailedPrecondition, rpcerr.NotDeployable, "stack %s cannot be deployed: %s", id, status.Convert(r.Err).Message())
		}
		if rpcerr.ReasonOf(r.Err) == rpcerr.ShuttingDown {
			return r.Err
		}
		return rpcerr.Errorf(codes.Unavailable, rpcerr.NotReady, "this node could not prepare stack %s: %s", id, status.Convert(r.Err).Message())
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// waitSynced waits, up to ChainSyncWait, for the node to have the
// snapshots of the region and of its stacks: before that it cannot tell
// an unknown stack from one it has not heard of, nor apply the region's
// limits.
func (f *chainFollow) waitSynced(ctx context.Context, id ids.StackID) error {
	if f.synced() {
		return nil
	}
	t := time.NewTimer(f.s.cfg.ChainSyncWait)
	defer t.Stop()
	for _, ready := range []chan struct{}{f.regionReady, f.stacksReady} {
		select {
		case <-ready:
		case <-t.C:
			return rpcerr.Errorf(codes.Unavailable, rpcerr.NotReady, "this node has not caught up with the chain yet and does not know stack %s", id)
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return nil
}

// deployOnDemand is the shared deploy of prepare. It reads the stack's
// wanted state afresh in the stack's turn: a delete or an update that
// came meanwhile wins.
func (f *chainFollow) deployOnDemand(id ids.StackID) error {
	s := f.s
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "the node is shutting down")
	}
	f.flights.Add(1)
	f.mu.Unlock()
	defer f.flights.Done()
	if err := f.onDemand.Acquire(f.ctx, 1); err != nil {
		return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "the node is shutting down")
	}
	defer f.onDemand.Release(1)
	if !f.queue.lock(id) {
		return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "the node is shutting down")
	}
	defer f.queue.done(id)
	f.mu.Lock()
	var st *chainindexerv1.Stack
	if w := f.want[id]; w != nil {
		st = w.stack
	}
	f.mu.Unlock()
	if st == nil || st.GetState() != chainindexerv1.StackState_STACK_STATE_ACTIVE {
		return nil // deleted meanwhile: the call finds no stack
	}
	s.mu.RLock()
	d := s.stacks[id]
	s.mu.RUnlock()
	if d != nil && d.revision >= st.GetRevision() {
		return nil
	}
	dctx, cancel := context.WithTimeout(f.ctx, s.cfg.ChainDeployTimeout)
	defer cancel()
	start := time.Now()
	_, err := s.deploy(dctx, &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Revision: st.GetRevision(), Manifest: st.GetManifest()}}, d == nil)
	if err != nil {
		return err
	}
	s.metrics.onDemandDeploys.Inc()
	f.log.Info("stack deployed on demand for a call", "stack", id.String(), "revision", st.GetRevision(), "took", time.Since(start))
	f.queue.add(id) // its turn, once this one ends, releases it unless this node owns it
	return nil
}

// deleteData deletes a deleted stack's tables and boxes. Both calls are
// idempotent, so repeating them after a failure (or on every node of the
// region) is safe.
func (f *chainFollow) deleteData(ctx context.Context, id ids.StackID) error {
	s := f.s
	dctx, cancel := context.WithTimeout(ctx, s.cfg.ChainDeployTimeout)
	defer cancel()
	if s.db.client != nil {
		if _, err := s.db.client.DeleteStackData(dctx, &mudbv1.DeleteStackDataRequest{StackId: id.Bytes()}); err != nil {
			return fmt.Errorf("deleting the tables of stack %s: %w", id, err)
		}
	}
	if s.storage.client != nil {
		if _, err := s.storage.client.DeleteStackData(dctx, &storagev1.DeleteStackDataRequest{StackId: id.Bytes()}); err != nil {
			return fmt.Errorf("deleting the boxes of stack %s: %w", id, err)
		}
	}
	f.log.Info("deleted stack's data removed", "stack", id.String(), "mudb", s.db.client != nil, "storage", s.storage.client != nil)
	return nil
}

// workQueue hands out stack ids to workers: each id at most once at a
// time, in the order they were queued; an id queued again while a worker
// has it is handed out again once that worker is done. Safe for
// concurrent use.
type workQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	order   []ids.StackID
	pending map[ids.StackID]bool // in order, or to be once its worker is done
	busy    map[ids.StackID]bool
	closed  bool
}

func newWorkQueue() *workQueue {
	q := &workQueue{pending: map[ids.StackID]bool{}, busy: map[ids.StackID]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues id unless it is queued already. After close it does nothing.
func (q *workQueue) add(id ids.StackID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.pending[id] {
		return
	}
	q.pending[id] = true
	if !q.busy[id] {
		q.order = append(q.order, id)
		q.cond.Signal()
	}
}

// get blocks until an id is ready or the queue is closed (false).
func (q *workQueue) get() (ids.StackID, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.order) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			return ids.StackID{}, false
		}
		id := q.order[0]
		q.order = q.order[1:]
		if q.busy[id] {
			continue // taken by lock; still pending, so done queues it again
		}
		delete(q.pending, id)
		q.busy[id] = true
		return id, true
	}
}

// lock waits until no worker has id and takes it as get does, so that the
// caller applies id alone; false once the queue is closed. done ends the
// turn.
func (q *workQueue) lock(id ids.StackID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.busy[id] && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return false
	}
	q.busy[id] = true
	return true
}

// done ends a worker's turn with id.
func (q *workQueue) done(id ids.StackID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.busy, id)
	if q.pending[id] && !q.closed {
		q.order = append(q.order, id)
	}
	q.cond.Broadcast() // a get, or a lock waiting for id
}

// waitIdle blocks until no id is queued or being worked on (true), or the
// queue is closed (false).
func (q *workQueue) waitIdle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for (len(q.order) > 0 || len(q.busy) > 0) && !q.closed {
		q.cond.Wait()
	}
	return !q.closed
}

// close wakes every get, which then returns false.
func (q *workQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// registerChainMetrics registers the chain metrics of s (zero when s does
// not follow the chain).
func registerChainMetrics(reg prometheus.Registerer, s *Server) error {
	synced := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mu_runtime_chain_synced", Help: "1 once the node has the chain indexer's snapshot of its region's stacks and of the regions (it stays 1 while the indexer is unreachable), else 0.",
	}, func() float64 {
		if s.follow != nil && s.follow.synced() {
			return 1
		}
		return 0
	})
	seq := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mu_runtime_chain_sequence", Help: "The chain indexer sequence the node's stacks are current to.",
	}, func() float64 {
		if s.follow == nil {
			return 0
		}
		return float64(s.follow.stacks.Sequence())
	})
	owned := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mu_runtime_owned_stacks", Help: "Stacks of the region (from the chain) that this node owns by placement.",
	}, func() float64 { return float64(s.cluster.ownedCount()) })
	members := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mu_runtime_members", Help: "Runtime nodes of the region this node sees (itself included).",
	}, func() float64 { return float64(s.cluster.memberCount()) })
	for _, c := range []prometheus.Collector{synced, seq, owned, members, s.metrics.chainDeployFailures} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("runtime: register metrics: %w", err)
		}
	}
	return nil
}
