package region

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/service"
	chainindexer "github.com/muprotocol/mu/services/chain-indexer"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/mudb"
	"github.com/muprotocol/mu/services/runtime"
	"github.com/muprotocol/mu/services/storage"
)

// ProcessOptions configure process mode.
type ProcessOptions struct {
	// RepoDir is the root of the mu repository (the directory with
	// go.work). The service commands are built from
	// RepoDir/services/<service>/cmd/mu-<service>. Required.
	RepoDir string
	// BinDir is where the commands are built. go build relinks a command
	// only when its sources changed, so a stable directory makes every
	// start after the first quick. Default: a directory per RepoDir under
	// the user's cache directory.
	BinDir string
	// LogDir, if set, receives each child's output in LogDir/<node>.log;
	// otherwise each line goes to the region's Logger with the node's name.
	LogDir string
	// ReadyTimeout bounds the wait from a child's start until its gRPC
	// health answers SERVING (default 60 s).
	ReadyTimeout time.Duration
	// StopTimeout is how long Process.Stop waits after SIGTERM before it
	// sends SIGKILL (default 10 s).
	StopTimeout time.Duration
	// Detach starts the children in sessions of their own, writing
	// straight to their LogDir files (required), so that they outlive this
	// process: `make cluster` starts a region and exits. Stop them with
	// their pids (Process.Pid) or Region.Close.
	Detach bool
}

// commands are the service commands process mode builds, by service.
var commands = map[string]string{
	"chain-indexer": "mu-chain-indexer",
	"billing":       "mu-billing",
	"mudb":          "mu-mudb",
	"storage":       "mu-storage",
	"runtime":       "mu-runtime",
	"gateway":       "mu-gateway",
	"executor":      "mu-executor",
}

// commandModules are the module directories of commands not under
// services/<service>.
var commandModules = map[string]string{"executor": "region"}

// Readiness polling: how soon the first connection attempt is retried and
// how far apart attempts and health checks may get.
const (
	readyRetryMin = 20 * time.Millisecond
	readyRetryMax = 500 * time.Millisecond
)

// tailLines is how many of a child's last output lines errors quote.
const tailLines = 20

// processStarter starts services as child processes of one region.
type processStarter struct {
	opts ProcessOptions
	log  *slog.Logger
	tls  *service.TLS      // the region's own connections
	bins map[string]string // service → built command
}

func newProcessStarter(ctx context.Context, opts Options, log *slog.Logger) (*processStarter, error) {
	po := opts.Process
	if po.RepoDir == "" {
		return nil, errors.New("region: process mode needs ProcessOptions.RepoDir, the mu repository to build the services from")
	}
	repo, err := filepath.Abs(po.RepoDir)
	if err != nil {
		return nil, err
	}
	po.RepoDir = repo
	if po.BinDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		sum := sha256.Sum256([]byte(repo))
		po.BinDir = filepath.Join(cache, "mu", "region-bin", hex.EncodeToString(sum[:8]))
	}
	if po.ReadyTimeout <= 0 {
		po.ReadyTimeout = defaultReadyTimeout
	}
	if po.StopTimeout <= 0 {
		po.StopTimeout = defaultStopTimeout
	}
	if po.Detach && po.LogDir == "" {
		return nil, errors.New("region: ProcessOptions.Detach needs a LogDir: detached children write their output there")
	}
	if po.LogDir != "" {
		if err := os.MkdirAll(po.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("region: log dir: %w", err)
		}
	}
	s := &processStarter{opts: po, log: log, bins: map[string]string{}}
	var services []string
	if opts.Mudb != nil {
		services = append(services, "mudb")
	}
	if opts.Storage != nil {
		services = append(services, "storage")
	}
	if opts.Ledger != nil && opts.Ledger.IndexerProcess {
		services = append(services, "chain-indexer")
	}
	if opts.Billing != nil {
		services = append(services, "billing")
	}
	if opts.Runtime != nil {
		services = append(services, "runtime")
	}
	if opts.Gateway != nil {
		services = append(services, "gateway")
	}
	if opts.Executors != nil {
		services = append(services, "executor")
	}
	for _, svc := range services {
		bin, err := buildCommand(ctx, po.RepoDir, po.BinDir, svc, log)
		if err != nil {
			return nil, err
		}
		s.bins[svc] = bin
	}
	return s, nil
}

// buildMu serialises builds within this process; lockDir serialises them
// across processes sharing a BinDir.
var buildMu sync.Mutex

// buildCommand builds services/<svc>/cmd/mu-<svc> (region/cmd/mu-executor
// for the executor) of repo into binDir and
// returns the binary's path. go build leaves an up-to-date binary alone.
func buildCommand(ctx context.Context, repo, binDir, svc string, log *slog.Logger) (string, error) {
	name := commands[svc]
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("region: bin dir: %w", err)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	unlock, err := lockDir(binDir)
	if err != nil {
		return "", fmt.Errorf("region: lock %s: %w", binDir, err)
	}
	defer unlock()
	out := filepath.Join(binDir, name)
	start := time.Now()
	// Built from the service's own module directory, so that the build
	// works with and without the workspace (every go.mod has replaces).
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = filepath.Join(repo, "services", svc)
	if m, ok := commandModules[svc]; ok {
		cmd.Dir = filepath.Join(repo, m)
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("region: go build %s: %v\n%s", name, err, strings.TrimSpace(stderr.String()))
	}
	log.Debug("built service command", "command", out, "took", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// startChild starts service svc as a child process named name and waits
// until it serves: it gives each of ports a concrete port (all but
// optional ones, which stay off when empty), turns cfg (a pointer to the
// service's Config, so the ports chosen reach it) into flags, adds extra,
// and waits on the gRPC health of *grpcAddr.
//
// A port is free when it is chosen and taken only when the child binds
// it, so another program may take it in between (tests start many
// processes at once). A child that exits before it is ready saying a port
// was in use is started again on fresh ports, up to portAttempts times;
// a gossip address (cluster settings) is chosen afresh the same way.
func (s *processStarter) startChild(ctx context.Context, name, svc string, cfg any, grpcAddr *string, ports, optional []*string, extra ...string) (*Process, error) {
	type spec struct {
		p    *string
		orig string
	}
	var specs []spec
	for _, a := range ports {
		specs = append(specs, spec{a, *a})
	}
	for _, a := range optional {
		if *a != "" {
			specs = append(specs, spec{a, *a})
		}
	}
	// Only ports this process chose may be chosen again; a port the
	// caller fixed stays, and a child that finds it taken fails at once.
	chosen := false
	for _, sp := range specs {
		if _, port, err := net.SplitHostPort(sp.orig); err == nil && port == "0" {
			chosen = true
		}
	}
	gossip := gossipAddrsOf(cfg)
	for attempt := 1; ; attempt++ {
		var err error
		for _, sp := range specs {
			if *sp.p, err = freePort(sp.orig); err != nil {
				return nil, err
			}
		}
		for _, g := range gossip {
			if *g != "" && attempt > 1 {
				if *g, err = freeGossipPort(); err != nil {
					return nil, err
				}
			}
		}
		args, err := config.Args(cfg)
		if err != nil {
			return nil, err
		}
		args = append(args, extra...)
		bin, addr := s.bins[svc], *grpcAddr
		var launch func(ctx context.Context) (*Process, error)
		launch = func(ctx context.Context) (*Process, error) {
			p, err := s.spawn(name, bin, args)
			if err != nil {
				return nil, err
			}
			p.relaunch = launch
			return p, s.waitReady(ctx, p, addr, svc)
		}
		p, err := launch(ctx)
		if err != nil && p != nil && chosen && attempt < portAttempts && exited(p) && strings.Contains(p.output(), "address already in use") {
			s.log.Warn("a port was taken before the child bound it; starting it on other ports", "node", name, "attempt", attempt, "output", p.output())
			continue
		}
		return p, err
	}
}

// portAttempts bounds how often startChild picks fresh ports for a child
// that found one taken.
const portAttempts = 3

// gossipAddrsOf are the gossip bind addresses the region chose for cfg
// (clusterConfig, startExecutor: they are picked like the other ports),
// to pick again when a child found one taken.
func gossipAddrsOf(cfg any) []*string {
	switch c := cfg.(type) {
	case *runtime.Config:
		return []*string{&c.Cluster.BindAddr}
	case *gateway.Config:
		return []*string{&c.Cluster.BindAddr}
	case *ExecutorConfig:
		return []*string{&c.Cluster.BindAddr, &c.Cluster.GatewayBindAddr}
	}
	return nil
}

// mudb starts a muDB node as a child process and waits until it serves.
func (s *processStarter) mudb(ctx context.Context, name string, cfg mudb.Config) (*MudbNode, error) {
	p, err := s.startChild(ctx, name, "mudb", &cfg, &cfg.GRPCAddr, []*string{&cfg.GRPCAddr}, []*string{&cfg.AdminAddr})
	if p == nil {
		return nil, err
	}
	return &MudbNode{name: name, addr: cfg.GRPCAddr, adminAddr: cfg.AdminAddr, process: p}, err
}

// storage starts a storage node as a child process and waits until it serves.
func (s *processStarter) storage(ctx context.Context, name string, cfg storage.Config) (*StorageNode, error) {
	p, err := s.startChild(ctx, name, "storage", &cfg, &cfg.GRPCAddr, []*string{&cfg.GRPCAddr, &cfg.HTTPAddr}, []*string{&cfg.AdminAddr})
	if p == nil {
		return nil, err
	}
	return &StorageNode{name: name, addr: cfg.GRPCAddr, httpAddr: cfg.HTTPAddr, adminAddr: cfg.AdminAddr, process: p}, err
}

// chainIndexer starts the chain-indexer as a child process and waits until
// it serves.
func (s *processStarter) chainIndexer(ctx context.Context, name string, cfg chainindexer.Config) (*ChainIndexerNode, error) {
	p, err := s.startChild(ctx, name, "chain-indexer", &cfg, &cfg.GRPCAddr, []*string{&cfg.GRPCAddr}, []*string{&cfg.AdminAddr})
	if p == nil {
		return nil, err
	}
	return &ChainIndexerNode{name: name, addr: cfg.GRPCAddr, adminAddr: cfg.AdminAddr, process: p}, err
}

// runtime starts a runtime node as a child process and waits until it serves.
func (s *processStarter) runtime(ctx context.Context, name string, cfg runtime.Config) (*RuntimeNode, error) {
	p, err := s.startChild(ctx, name, "runtime", &cfg, &cfg.GRPCAddr, []*string{&cfg.GRPCAddr}, []*string{&cfg.AdminAddr})
	if p == nil {
		return nil, err
	}
	return &RuntimeNode{name: name, addr: cfg.GRPCAddr, adminAddr: cfg.AdminAddr, clusterAddr: cfg.Cluster.BindAddr, process: p}, err
}

// gateway starts a gateway as a child process in front of the runtime at
// runtimeAddr (none: it routes by its cluster) and waits until it serves.
func (s *processStarter) gateway(ctx context.Context, name string, cfg gateway.Config, runtimeAddr string) (*GatewayNode, error) {
	var extra []string
	if runtimeAddr != "" {
		extra = append(extra, "--runtime-addr="+runtimeAddr)
	}
	p, err := s.startChild(ctx, name, "gateway", &cfg, &cfg.GRPCAddr, []*string{&cfg.HTTPAddr, &cfg.GRPCAddr}, []*string{&cfg.AdminAddr}, extra...)
	if p == nil {
		return nil, err
	}
	return &GatewayNode{name: name, addr: cfg.HTTPAddr, grpcAddr: cfg.GRPCAddr, adminAddr: cfg.AdminAddr, clusterAddr: cfg.Cluster.BindAddr, process: p}, err
}

// freePort replaces port 0 in addr with a port that is free right now. A
// child is told its ports up front, so it needs a concrete one; should
// another program take the port in between, the child fails to listen and
// Start reports its output.
func freePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("region: address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("region: free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Process is a service node running as a child process of the region. Its
// methods are safe for concurrent use. A child also dies with the process
// that started it (on Linux, through the parent-death signal).
type Process struct {
	name        string
	cmd         *exec.Cmd
	logFile     string
	stopTimeout time.Duration
	tail        *tail

	// relaunch starts the same command with the same settings again.
	relaunch func(ctx context.Context) (*Process, error)

	done      chan struct{} // closed once the process has exited and been reaped
	waitErr   error         // cmd.Wait's result, set before done closes
	signalled atomic.Bool   // Stop or Kill signalled it
}

func (s *processStarter) spawn(name, bin string, args []string) (*Process, error) {
	p := &Process{name: name, stopTimeout: s.opts.StopTimeout, tail: &tail{}, done: make(chan struct{})}
	var out io.Writer
	var file *os.File
	if s.opts.LogDir != "" {
		p.logFile = filepath.Join(s.opts.LogDir, name+".log")
		f, err := os.Create(p.logFile)
		if err != nil {
			return nil, fmt.Errorf("region: %s: %w", name, err)
		}
		file, out = f, f
	} else {
		out = &lineLogger{log: s.log, node: name}
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = io.MultiWriter(out, p.tail)
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = sysProcAttr()
	if s.opts.Detach {
		// The child writes to its file itself (a pipe would die with this
		// process), in a session of its own, with no parent-death signal.
		cmd.Stdout, cmd.Stderr = file, file
		cmd.SysProcAttr = detachedProcAttr()
	}
	// Wait returns this long after the child exits even if something it
	// started still holds its output open.
	cmd.WaitDelay = s.opts.StopTimeout
	if err := cmd.Start(); err != nil {
		if file != nil {
			file.Close()
		}
		return nil, fmt.Errorf("region: start %s: %w", name, err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		if file != nil {
			file.Close()
		}
		if !p.signalled.Load() {
			s.log.Warn("service process exited", "node", name, "err", p.waitErr)
		}
		close(p.done)
	}()
	s.log.Debug("service process started", "node", name, "pid", cmd.Process.Pid, "command", bin)
	return p, nil
}

// Name is the node's name.
func (p *Process) Name() string { return p.name }

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogFile is the file that receives the child's output, or "" when its
// lines go to the region's Logger.
func (p *Process) LogFile() string { return p.logFile }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait blocks until the process has exited and returns how it ended: nil
// for exit status 0 or an end brought about by Stop or Kill.
func (p *Process) Wait() error {
	<-p.done
	return p.exitErr()
}

func (p *Process) exitErr() error {
	err := p.waitErr
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if p.signalled.Load() && errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && (ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGKILL) {
			return nil
		}
	}
	return fmt.Errorf("region: %s: %w%s", p.name, err, p.tail.quote())
}

// Stop asks the process to shut down with SIGTERM and waits for it to exit;
// after the region's StopTimeout it kills it with SIGKILL and reports that.
// On a process that has already exited it only returns how it ended.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	p.signalled.Store(true)
	p.cmd.Process.Signal(syscall.SIGTERM) // fails only if it has exited meanwhile
	t := time.NewTimer(p.stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-t.C:
	}
	p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("region: %s did not stop within %s of SIGTERM and was killed", p.name, p.stopTimeout)
}

// Kill ends the process at once with SIGKILL (a node crashing, for failover
// tests) and waits until it has exited.
func (p *Process) Kill() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	p.signalled.Store(true)
	p.cmd.Process.Kill()
	return p.Wait()
}

// waitReady waits until the grpc.health.v1 service at addr answers
// SERVING, the process exits, ReadyTimeout passes or ctx ends.
func (s *processStarter) waitReady(ctx context.Context, p *Process, addr, svc string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Health is open to any verified certificate; the server's role is
	// the service's, or any region role for an executor's own listener.
	role := certs.Role(svc)
	if !role.Valid() {
		role = certs.RoleAny
	}
	cc, err := grpc.NewClient(addr, s.tls.DialOption(role), grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: readyRetryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: readyRetryMax},
		MinConnectTimeout: readyRetryMax,
	}))
	if err != nil {
		return fmt.Errorf("region: %s: %w", p.name, err)
	}
	defer cc.Close()
	health := healthpb.NewHealthClient(cc)
	start := time.Now()
	for {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			s.log.Debug("service process ready", "node", p.name, "addr", addr, "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		t := time.NewTimer(readyRetryMax)
		select {
		case <-ctx.Done():
			t.Stop()
			select {
			case <-p.done:
				return fmt.Errorf("region: %s exited before it was ready: %v%s", p.name, p.waitErr, p.output())
			default:
			}
			return fmt.Errorf("region: %s not serving on %s after %s (last answer: %v)%s", p.name, addr, time.Since(start).Round(time.Millisecond), err, p.output())
		case <-t.C:
		}
	}
}

// lineLogger writes each line of a child's output to the region's logger.
type lineLogger struct {
	log  *slog.Logger
	node string
	buf  []byte
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.log.Info(string(l.buf[:i]), "node", l.node)
		l.buf = l.buf[i+1:]
	}
	return len(b), nil
}

// tail keeps the last tailLines lines written to it, for error messages.
type tail struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, b...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.partial[:i]))
		if len(t.lines) > tailLines {
			t.lines = t.lines[len(t.lines)-tailLines:]
		}
		t.partial = t.partial[i+1:]
	}
	return len(b), nil
}

// output is the child's last output lines as a suffix for an error
// message: what it wrote through this process, or, for a detached child
// that writes to its log file itself, the end of that file.
func (p *Process) output() string {
	if q := p.tail.quote(); q != "" || p.logFile == "" {
		return q
	}
	b, err := os.ReadFile(p.logFile)
	if err != nil {
		return ""
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	var t tail
	t.Write(b)
	return t.quote()
}

// quote is the kept lines as a suffix for an error message.
func (t *tail) quote() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(t.partial))
	}
	if len(lines) == 0 {
		return ""
	}
	return "; last output:\n\t" + strings.Join(lines, "\n\t")
}

// Restart starts node p again after it exited (killed for a crash test,
// or stopped): the same command with the same settings, ports and data
// directory, and waits until it serves. The region's node now refers to
// the new process, which Restart returns; p itself stays exited.
func (r *Region) Restart(ctx context.Context, p *Process) (*Process, error) {
	select {
	case <-p.done:
	default:
		return nil, fmt.Errorf("region: restart %s: it is still running; Kill or Stop it first", p.name)
	}
	if p.relaunch == nil {
		return nil, fmt.Errorf("region: restart %s: not a process this region started", p.name)
	}
	np, err := p.relaunch(ctx)
	if np == nil {
		return nil, fmt.Errorf("region: restart %s: %w", p.name, err)
	}
	r.mu.Lock()
	swap := func(q **Process) {
		if *q == p {
			*q = np
		}
	}
	for _, n := range r.runtimes {
		swap(&n.process)
	}
	for _, e := range r.executors {
		swap(&e.process)
		if e.runtime != nil {
			swap(&e.runtime.process)
		}
		if e.gateway != nil {
			swap(&e.gateway.process)
		}
	}
	for _, q := range []**Process{nodeProcess(r.gateway), nodeProcess(r.mudb), nodeProcess(r.storage), nodeProcess(r.indexer), nodeProcess(r.billing)} {
		if q != nil {
			swap(q)
		}
	}
	r.mu.Unlock()
	if err != nil {
		return np, fmt.Errorf("region: restart %s: %w", p.name, err)
	}
	return np, nil
}

// nodeProcess is the address of a node's process field, nil for a node
// the region does not have.
func nodeProcess(n any) **Process {
	switch n := n.(type) {
	case *GatewayNode:
		if n != nil {
			return &n.process
		}
	case *MudbNode:
		if n != nil {
			return &n.process
		}
	case *StorageNode:
		if n != nil {
			return &n.process
		}
	case *ChainIndexerNode:
		if n != nil {
			return &n.process
		}
	case *BillingNode:
		if n != nil {
			return &n.process
		}
	}
	return nil
}
