package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/libs/service"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	"github.com/muprotocol/mu/services/runtime/internal/pool"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// deployment is one revision of a stack on this node. It is immutable once
// published in Server.stacks; a redeploy replaces it whole. Calls hold it
// (enter/leave) so that a redeploy or undeploy retires it only once the
// last call that found it is over: its modules stay open while it runs.
type deployment struct {
	id        ids.StackID
	revision  uint64
	manifest  *manifest.Manifest
	functions map[string]*function // by assembly name
	// db and storage answer its functions' host requests (see callHost),
	// with this deployment's stack id, declared tables and declared boxes.
	db      *stackDB
	storage *stackStorage

	calls    atomic.Int64 // calls that found this deployment and have not left
	retired  atomic.Bool  // no longer in Server.stacks
	finalize sync.Once    // drops its instances and module references
}

// enter records a call of d. The caller holds s.mu (read or write), so d
// cannot be retired between the lookup and enter.
func (d *deployment) enter() { d.calls.Add(1) }

// leave ends a call of d; the last call of a retired deployment finalizes it.
func (s *Server) leave(d *deployment) {
	if d.calls.Add(-1) == 0 && d.retired.Load() {
		s.mu.Lock()
		s.finalizeLocked(d)
		s.mu.Unlock()
	}
}

// function is a Function service of a deployed stack.
type function struct {
	stack    ids.StackID
	assembly string
	binaryID string
	mod      *wasm.Module
	// snap is the pre-initialized mod for this function's env and argv
	// once its background build is done, or nil (snapshot.go); the
	// factory reads it at every start.
	snap        atomic.Pointer[wasm.Module]
	snapKey     string // its key in Server.snapshots, under Server.mu
	memoryLimit uint64
	memoryMiB   uint64 // memory_limit in MiB rounded up: the billing multiplier
	env         map[string]string
	poolKey     string
	invocations atomic.Uint64
	// start makes a new instance of the function (see Server.factory); built
	// once at deploy so the call path allocates nothing for it.
	start pool.Factory
}

// moduleRef counts the deployments using a compiled module, so stacks that
// share a binary share its compiled code.
type moduleRef struct {
	mod  *wasm.Module
	refs int
	// wasm holds the bytes fetched from storage for the deploy that loaded
	// the module, until its snapshots are built (queueSnapshots).
	wasm []byte
}

// Deploy installs (or replaces) a stack revision: it parses the manifest,
// checks every binary against its content id, compiles what is new and
// starts PrewarmInstances of each function before the revision takes
// traffic, so a stack whose functions cannot start is refused, not served.
func (s *Server) Deploy(ctx context.Context, req *runtimev1.DeployRequest) (*runtimev1.DeployResponse, error) {
	return s.deploy(ctx, req, false)
}

// deploy is Deploy; with warmLater the revision takes calls as soon as its
// modules are compiled, and its instances start in the background (a
// function that cannot start then fails its calls instead of the deploy).
// The chain follower uses it for a stack the node does not serve yet, a
// stack taken over from a node that died or left, where every moment
// without the stack is a moment its calls wait. Neither kind waits for a
// snapshot: both queue its build once published (queueSnapshots), so a
// takeover never waits for a compile, and its instances start normally
// until the snapshot is ready.
func (s *Server) deploy(ctx context.Context, req *runtimev1.DeployRequest, warmLater bool) (*runtimev1.DeployResponse, error) {
	st := req.GetStack()
	if st == nil {
		return nil, status.Error(codes.InvalidArgument, "stack is required")
	}
	id, err := ids.StackIDFromBytes(st.GetId())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "stack.id: %v", err)
	}
	limits, note := s.manifestLimits()
	m, err := manifest.ParseWithLimits(st.GetManifest(), limits)
	if err != nil {
		if note != "" {
			return nil, status.Errorf(codes.InvalidArgument, "stack %s: manifest: %v (%s)", id, err, note)
		}
		return nil, status.Errorf(codes.InvalidArgument, "stack %s: manifest: %v", id, err)
	}
	s.mu.RLock()
	old := s.stacks[id]
	s.mu.RUnlock()
	if old != nil && old.revision > st.GetRevision() {
		return nil, status.Errorf(codes.FailedPrecondition, "stack %s is at revision %d; cannot deploy older revision %d", id, old.revision, st.GetRevision())
	}
	// The declared tables exist before the revision serves. Failing here,
	// before anything is compiled, leaves the node as it was.
	if err := s.db.createTables(ctx, id, m); err != nil {
		return nil, err
	}
	if s.db.client == nil && len(m.Tables) > 0 {
		s.log.Warn("stack declares tables but no muDB is configured; its db requests will fail", "stack", id.String(), "tables", len(m.Tables))
	}
	// So do the declared boxes, with their public flag.
	if err := s.storage.createBoxes(ctx, id, m); err != nil {
		return nil, err
	}
	if s.storage.client == nil && len(m.Storages) > 0 {
		s.log.Warn("stack declares storage boxes but no storage service is configured; its storage requests will fail", "stack", id.String(), "boxes", len(m.Storages))
	}
	inline := make(map[string][]byte, len(req.GetBinaries()))
	for i, b := range req.GetBinaries() {
		if got := ids.BinaryID(b.GetWasm()); got != b.GetBinaryId() {
			return nil, status.Errorf(codes.InvalidArgument, "binaries[%d]: binary_id %q does not match the content id %q of its %d bytes", i, b.GetBinaryId(), got, len(b.GetWasm()))
		}
		inline[b.GetBinaryId()] = b.GetWasm()
	}
	// A binary neither inline nor compiled here is fetched from storage
	// by content id below (acquireModule).

	d := &deployment{id: id, revision: st.GetRevision(), manifest: m, functions: make(map[string]*function, len(m.Functions))}
	d.db, d.storage = s.db.forStack(id, m), s.storage.forStack(id, m)
	// Every deploy gets its own pool keys, so instances of a replaced
	// deployment (even of the same revision) are never handed to the new one.
	seq := s.deploySeq.Add(1)
	var acquired []string
	release := func() {
		s.mu.Lock()
		for _, b := range acquired {
			s.releaseModuleLocked(b)
		}
		for _, f := range d.functions {
			s.releaseSnapshotLocked(f)
		}
		s.mu.Unlock()
		for _, f := range d.functions {
			s.pool.Remove(f.poolKey)
		}
	}
	for _, fn := range m.Functions {
		d.functions[fn.Name] = &function{
			stack:       id,
			assembly:    fn.Name,
			binaryID:    fn.Binary,
			memoryLimit: uint64(fn.MemoryLimit),
			memoryMiB:   fn.MemoryLimit.MiBCeil(),
			env:         fn.Env,
			poolKey:     fmt.Sprintf("%s/%d/%s#%d", id, st.GetRevision(), fn.Name, seq),
		}
	}
	// A snapshot that is ready (another deployment holds it, or its
	// artifact is cached and checked) is taken now, beside the module
	// loads (each a mapping of a checked artifact when the node knows the
	// binary), so that the first instances start from it; the others are
	// built after the deploy (queueSnapshots).
	var snaps sync.WaitGroup
	if s.cfg.SnapshotStart {
		for _, f := range d.functions {
			snaps.Add(1)
			go func() {
				defer snaps.Done()
				s.takeReadySnapshot(f)
			}()
		}
	}
	for _, fn := range m.Functions {
		mod, err := s.acquireModule(ctx, fn.Binary, inline)
		if err != nil {
			snaps.Wait()
			release()
			return nil, status.Errorf(codeOf(err), "stack %s: function %q: %v", id, fn.Name, err)
		}
		acquired = append(acquired, fn.Binary)
		d.functions[fn.Name].mod = mod
	}
	snaps.Wait()
	for _, f := range d.functions {
		f.start = s.factory(f)
		if warmLater {
			if err := s.pool.Add(f.poolKey); err != nil {
				release()
				return nil, status.Errorf(codes.Unavailable, "stack %s: %v", id, err)
			}
			continue
		}
		if err := s.pool.Prewarm(ctx, f.poolKey, f.start, s.cfg.PrewarmInstances); err != nil {
			release()
			return nil, status.Errorf(codes.FailedPrecondition, "stack %s: function %q failed to start: %v", id, f.assembly, err)
		}
	}

	s.mu.Lock()
	prev := s.stacks[id]
	if prev != nil && prev.revision > d.revision {
		s.mu.Unlock()
		release()
		return nil, status.Errorf(codes.FailedPrecondition, "stack %s moved to revision %d during this deploy", id, prev.revision)
	}
	s.stacks[id] = d
	if prev != nil {
		s.retireLocked(prev)
	}
	if _, off := s.disabled[id]; off {
		for _, f := range d.functions { // a disabled stack keeps no instances
			s.pool.Remove(f.poolKey)
		}
	}
	s.mu.Unlock()
	s.logs.Publish(logs.Entry{Stack: id, Source: logs.SourceRuntime, Level: levelInfo, Body: fmt.Sprintf("deployed revision %d (%d functions)", d.revision, len(d.functions))})
	s.log.Info("stack deployed", "stack", id.String(), "revision", d.revision, "functions", len(d.functions), "warm_later", warmLater)
	if warmLater {
		s.warmLater(d)
	}
	// Snapshots are built after the deploy, in the background: the deploy
	// and its first calls are those of a node without snapshots.
	s.queueSnapshots(d, inline, acquired)
	return &runtimev1.DeployResponse{Revision: d.revision}, nil
}

// warmLater starts PrewarmInstances of each function of d in the
// background. A key removed meanwhile (the deployment replaced or
// dropped) ends its warming: the pool refuses it.
func (s *Server) warmLater(d *deployment) {
	n := min(s.cfg.PrewarmInstances, s.cfg.MaxIdlePerFunction)
	if n <= 0 {
		return
	}
	// The warming counts as calls of d, so that a redeploy or drop that
	// retires d meanwhile closes its modules only once the instances
	// being started are done with them.
	s.mu.RLock()
	if d.retired.Load() {
		s.mu.RUnlock()
		return
	}
	for range d.functions {
		d.enter()
	}
	s.mu.RUnlock()
	for _, f := range d.functions {
		s.warming.Add(1)
		go func() {
			defer s.warming.Done()
			defer s.leave(d)
			var insts []*wasm.Instance
			defer func() {
				for _, inst := range insts {
					s.pool.Put(f.poolKey, inst)
				}
			}()
			for range n {
				inst, err := s.pool.Get(s.bg, f.poolKey, f.start)
				if err != nil {
					if s.bg.Err() == nil && !errors.Is(err, pool.ErrRemoved) {
						s.log.Warn("function failed to start", "stack", d.id.String(), "function", f.assembly, "err", err)
						s.logs.Publish(logs.Entry{Stack: d.id, Function: f.assembly, Source: logs.SourceRuntime, Level: fnproto.LogLevelWarn,
							Body: fmt.Sprintf("revision %d: function %s failed to start: %v", d.revision, f.assembly, err)})
					}
					return
				}
				insts = append(insts, inst)
			}
		}()
	}
}

// errNoBinary is returned when a binary is neither sent inline nor
// compiled already, and no storage service is configured to fetch it from.
var errNoBinary = errors.New("binary not available")

// binaryError is a failure to get a binary from storage, with its code.
type binaryError struct {
	code codes.Code
	msg  string
}

func (e *binaryError) Error() string { return e.msg }

func codeOf(err error) codes.Code {
	var be *binaryError
	switch {
	case errors.As(err, &be):
		return be.code
	case errors.Is(err, wasm.ErrInvalidModule):
		return codes.InvalidArgument
	case errors.Is(err, errNoBinary):
		return codes.FailedPrecondition
	}
	return codes.Internal
}

// acquireModule returns the compiled module of binaryID and takes a
// reference. In order it uses: the module this node has loaded already;
// the inline bytes of the deploy (checked against their id by Deploy); a
// compiled artifact in the cache under DataDir; the binary fetched from the
// storage service by content id (its SHA-256 checked against the id).
func (s *Server) acquireModule(ctx context.Context, binaryID string, inline map[string][]byte) (*wasm.Module, error) {
	for {
		s.mu.Lock()
		if ref := s.modules[binaryID]; ref != nil {
			ref.refs++
			s.mu.Unlock()
			return ref.mod, nil
		}
		s.mu.Unlock()
		// One load per binary at a time: deploys of many stacks sharing a
		// binary (a region's first sync, a takeover) compile it once. The
		// load runs to its own deadline, so a caller that gives up (its
		// ctx) neither waits for it nor fails the others.
		ch := s.loading.DoChan(binaryID, func() (any, error) {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ChainDeployTimeout)
			defer cancel()
			return nil, s.loadModule(lctx, binaryID, inline)
		})
		select {
		case r := <-ch:
			if r.Err != nil {
				return nil, r.Err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// loadModule compiles binary id (from inline, the artifact cache or
// storage) into s.modules with no references; acquireModule takes them.
func (s *Server) loadModule(ctx context.Context, binaryID string, inline map[string][]byte) error {
	s.mu.Lock()
	loaded := s.modules[binaryID] != nil
	s.mu.Unlock()
	if loaded {
		return nil
	}
	var mod *wasm.Module
	var fetched []byte
	if bin, ok := inline[binaryID]; ok {
		var err error
		if mod, err = s.engine.CompileWithID(bin, binaryID); err != nil { // Deploy checked binaryID against bin
			return err
		}
	} else if cached, ok := s.engine.LoadCached(binaryID); ok {
		mod = cached
		s.metrics.binaries.WithLabelValues("cache").Inc()
	} else {
		bin, err := s.fetchBinary(ctx, binaryID)
		if err != nil {
			return err
		}
		if mod, err = s.engine.CompileWithID(bin, binaryID); err != nil { // fetchBinary checked binaryID against bin
			return err
		}
		s.metrics.binaries.WithLabelValues("storage").Inc()
		if s.cfg.SnapshotStart && mod.Reactor() {
			fetched = bin
		}
	}
	if cerr := mod.CacheError(); cerr != nil {
		s.log.Warn("artifact cache write failed", "binary", binaryID, "err", cerr)
	}
	s.metrics.compileSeconds.WithLabelValues(fmt.Sprint(mod.FromCache)).Observe(mod.LoadTime.Seconds())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.modules[binaryID] != nil { // loaded by a caller that did not share this load
		mod.Close()
		return nil
	}
	s.modules[binaryID] = &moduleRef{mod: mod, wasm: fetched}
	return nil
}

// fetchBinary reads binary id from the storage service (GetBinary) and
// checks that its bytes have that content id (base58 SHA-256). It holds at
// most max_message_bytes, the bound of an inline binary.
func (s *Server) fetchBinary(ctx context.Context, id string) ([]byte, error) {
	if s.storage.client == nil {
		return nil, fmt.Errorf("%w: binary %q was not sent with the deploy and this node has no storage service to fetch it from", errNoBinary, id)
	}
	fail := func(err error) error {
		if ctx.Err() != nil {
			return &binaryError{status.FromContextError(ctx.Err()).Code(), fmt.Sprintf("fetching binary %q from storage: %v", id, ctx.Err())}
		}
		st := status.Convert(err)
		if st.Code() == codes.NotFound {
			return &binaryError{codes.NotFound, fmt.Sprintf("binary %q is not in storage (upload it before deploying)", id)}
		}
		return &binaryError{codes.Unavailable, fmt.Sprintf("storage could not serve binary %q: %s: %s", id, st.Code(), st.Message())}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.storage.client.GetBinary(sctx, &storagev1.GetBinaryRequest{BinaryId: id})
	if err != nil {
		return nil, fail(err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, fail(err)
	}
	info := first.GetInfo()
	if info == nil {
		return nil, &binaryError{codes.Unavailable, fmt.Sprintf("storage answered GetBinary %q without the binary's info", id)}
	}
	limit := uint64(s.cfg.MaxMessageBytes)
	if info.GetSize() > limit {
		return nil, &binaryError{codes.FailedPrecondition, fmt.Sprintf("binary %q of %d bytes exceeds this node's limit of %d bytes (max_message_bytes)", id, info.GetSize(), limit)}
	}
	buf := make([]byte, 0, info.GetSize())
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fail(err)
		}
		if uint64(len(buf))+uint64(len(msg.GetChunk())) > limit {
			return nil, &binaryError{codes.FailedPrecondition, fmt.Sprintf("binary %q from storage exceeds this node's limit of %d bytes (max_message_bytes)", id, limit)}
		}
		buf = append(buf, msg.GetChunk()...)
	}
	if got := ids.BinaryID(buf); got != id {
		return nil, &binaryError{codes.DataLoss, fmt.Sprintf("binary %q fetched from storage is corrupt: its %d bytes have content id %q; refused", id, len(buf), got)}
	}
	return buf, nil
}

func (s *Server) releaseModuleLocked(binaryID string) {
	ref := s.modules[binaryID]
	if ref == nil {
		return
	}
	ref.refs--
	if ref.refs <= 0 {
		delete(s.modules, binaryID)
		ref.mod.Close()
	}
}

// retireLocked takes a replaced or removed deployment out of service (the
// caller has removed it from s.stacks): once no call holds it, its
// instances close and its module references go. Calls that found it before
// keep its instances (and may start more) until they end, so they finish on
// the revision they started on.
func (s *Server) retireLocked(d *deployment) {
	d.retired.Store(true)
	if d.calls.Load() == 0 {
		s.finalizeLocked(d)
	}
}

// finalizeLocked drops d's instances and module references, once.
func (s *Server) finalizeLocked(d *deployment) {
	d.finalize.Do(func() {
		for _, f := range d.functions {
			s.pool.Remove(f.poolKey)
			s.releaseModuleLocked(f.binaryID)
			s.releaseSnapshotLocked(f)
		}
	})
}

// factory starts instances of f; their logs go to the hub tagged with the stack and assembly.
func (s *Server) factory(f *function) pool.Factory {
	cfg := s.instanceConfig(f, nil)
	normal, fromSnap := s.metrics.instanceStart.WithLabelValues("false"), s.metrics.instanceStart.WithLabelValues("true")
	return func(ctx context.Context) (*wasm.Instance, error) {
		// f's snapshot may become ready while the deployment serves
		// (queueSnapshots): instances started from then on use it.
		mod, started := f.mod, normal
		if snap := f.snap.Load(); snap != nil {
			mod, started = snap, fromSnap
		}
		t0 := time.Now()
		inst, err := s.engine.NewInstance(ctx, mod, cfg)
		if err != nil {
			return nil, err
		}
		started.Observe(time.Since(t0).Seconds())
		s.metrics.instancesStarted.Inc()
		s.metrics.startupFuel.Add(float64(inst.StartupFuel))
		return inst, nil
	}
}

// instanceConfig is how instances of f start: its memory limit, its env
// (with the frame limit), its logs to the hub; tape, if not nil, records or
// replays its clock and random reads (sampled calls, audits).
func (s *Server) instanceConfig(f *function, tape *wasm.Tape) wasm.InstanceConfig {
	return wasm.InstanceConfig{
		MemoryLimit: f.memoryLimit,
		CallTimeout: s.cfg.CallTimeout,
		Env:         instanceEnv(f.env, s.cfg.MaxFrameSize),
		Args:        []string{f.assembly},
		Tape:        tape,
		Log: func(l wasm.Log) {
			src := logs.SourceLog
			if l.Source == wasm.SourceStderr {
				src = logs.SourceStderr
			}
			s.logs.Publish(logs.Entry{Stack: f.stack, Function: f.assembly, Level: l.Level, Body: l.Body, Source: src,
				TraceID: service.TraceID(l.Context)})
		},
	}
}

// instanceEnv is the WASI environment of a function with env: the guest
// learns the frame limit from it (the SDK reads it), so both sides bound
// frames alike.
func instanceEnv(env map[string]string, maxFrame int) map[string]string {
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out[fnproto.FrameSizeEnv] = strconv.Itoa(maxFrame)
	return out
}

// Undeploy removes a stack from this node; its idle instances are closed
// and calls in progress finish on the revision they started on. Its
// enabled state (SetStackEnabled) is forgotten. Undeploying a stack the
// node does not have succeeds (idempotent).
func (s *Server) Undeploy(ctx context.Context, req *runtimev1.UndeployRequest) (*runtimev1.UndeployResponse, error) {
	id, err := ids.StackIDFromBytes(req.GetStackId())
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, "stack_id: %v", err)
	}
	s.mu.Lock()
	delete(s.disabled, id)
	s.mu.Unlock()
	if s.drop(id) {
		s.log.Info("stack undeployed", "stack", id.String())
	}
	return &runtimev1.UndeployResponse{}, nil
}

// drop removes stack id from this node, keeping its enabled state: its
// idle instances are closed, calls in progress finish on the revision
// they started on, and its kept log lines are forgotten. It reports
// whether the stack was deployed.
func (s *Server) drop(id ids.StackID) bool {
	s.mu.Lock()
	d := s.stacks[id]
	if d != nil {
		delete(s.stacks, id)
		s.retireLocked(d)
	}
	s.mu.Unlock()
	if d != nil {
		s.logs.Forget(id)
	}
	return d != nil
}

// Status reports deployed stacks (one, or all when stack_id is empty; an
// unknown one is NotFound), the node's identity and its view of the
// region's members and of the stacks it owns.
func (s *Server) Status(ctx context.Context, req *runtimev1.StatusRequest) (*runtimev1.StatusResponse, error) {
	var only *ids.StackID
	if len(req.GetStackId()) > 0 {
		id, err := ids.StackIDFromBytes(req.GetStackId())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "stack_id: %v", err)
		}
		only = &id
	}
	s.mu.RLock()
	var ds []*deployment
	for id, d := range s.stacks {
		if only == nil || *only == id {
			ds = append(ds, d)
		}
	}
	s.mu.RUnlock()
	if only != nil && len(ds) == 0 {
		return nil, status.Errorf(codes.NotFound, "stack %s is not deployed on this node", *only)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].id.String() < ds[j].id.String() })
	resp := &runtimev1.StatusResponse{}
	s.cluster.status(resp, only)
	for _, d := range ds {
		ss := &runtimev1.StackStatus{StackId: d.id.Bytes(), Revision: d.revision}
		if s.follow != nil {
			ss.Owned, ss.Owner = s.cluster.owns(d.id)
		}
		for _, mf := range d.manifest.Functions {
			f := d.functions[mf.Name]
			idle, _ := s.pool.Stats(f.poolKey)
			ss.Functions = append(ss.Functions, &runtimev1.FunctionStatus{
				Name: f.assembly, BinaryId: f.binaryID, WarmInstances: uint32(idle), Invocations: f.invocations.Load(),
			})
		}
		resp.Stacks = append(resp.Stacks, ss)
	}
	return resp, nil
}

// Stacks is the number of stacks deployed on this node.
func (s *Server) Stacks() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.stacks)
}
