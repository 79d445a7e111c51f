package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/project"
	"github.com/muprotocol/mu/region"
)

func newClusterCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Start or stop a region of separate processes on this machine",
		Long: `Cluster starts a whole region on 127.0.0.1 as separate processes, the way a
provider runs one: a gateway, several runtimes that share the region's
stacks by XOR placement over memberlist gossip, muDB on the embedded TiKV
store, storage on a local directory, and the chain-indexer hosting a local
marketplace ledger (the split topology). With --executors it starts
mu-executor nodes instead of the gateway and the runtimes: each runs a
gateway and a runtime in one process, calls its own runtime in process and
the owners of other stacks over gRPC. It deploys the given projects through
the ledger and leaves the processes running; 'mu cluster down' stops them.`,
	}
	cmd.AddCommand(newClusterUpCommand(), newClusterDownCommand())
	return cmd
}

// clusterFile describes a running cluster (DIR/cluster.json).
type clusterFile struct {
	Gateway      string            `json:"gateway"`             // public HTTP base URL (the first gateway's)
	GatewayAdmin string            `json:"gateway_admin"`       // gRPC admin address (the first gateway's)
	Gateways     map[string]string `json:"gateways"`            // name → public HTTP base URL, every gateway
	Executors    map[string]string `json:"executors,omitempty"` // name → gRPC health address, with --executors
	Storage      string            `json:"storage"`             // storage HTTP base URL
	ChainIndexer string            `json:"chain_indexer"`       // gRPC address
	Billing      string            `json:"billing"`             // gRPC address
	Runtimes     map[string]string `json:"runtimes"`            // name → gRPC address
	Region       string            `json:"region"`              // region id on the ledger
	Stacks       map[string]string `json:"stacks"`              // project dir → stack id
}

func newClusterUpCommand() *cobra.Command {
	var dir, repo, gatewayAddr string
	var runtimes, executors int
	cmd := &cobra.Command{
		Use:   "up [PROJECT_DIR...]",
		Short: "Start the region's processes and deploy projects through its ledger",
		Long: `Up builds the service commands from the mu repository (--repo), starts the
region's processes detached from this command — storage, muDB, the
chain-indexer (hosting the local ledger with a dev market: an authorized
provider, its region and a funded escrow of the developer), --runtimes
runtimes named runtime-1, runtime-2, … and a gateway — and deploys each
PROJECT_DIR (default: the repository's examples/hello and examples/todo)
through the ledger, then prints every endpoint URL on a line of its own.
The region's addresses are also recorded in region.json under the user's
state directory (as 'mu run' does), where 'mu usage' finds them, until
'mu cluster down' removes it.

With --executors N it starts N mu-executor processes named executor-1,
executor-2, … instead of the runtimes and the gateway: each runs a gateway
(on a port of its own; cluster.json lists them all, the URLs printed go
through executor-1's) and a runtime, joined in one member list. The
embedded TiKV store lives inside one process and cannot be shared, so here
the one muDB process on it stands in for the TiKV cluster and the executors
use it through mudb_addr; likewise storage's local directory backend keeps
its index in memory and cannot be shared by several processes, so the
executors use the one storage process through storage_addr. In production
each executor runs muDB in process against the TiKV cluster's PD endpoints
and storage in process against the S3 bucket.

Everything lives under --dir: each process's pid in NAME.pid, its output in
logs/NAME.log, its data under data/, the market's keys under keys/, and the
addresses in cluster.json. Running up again over the same --dir keeps the
data and the ledger: the stacks keep their ids.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if executors > 0 && cmd.Flags().Changed("runtimes") {
				return &exitError{code: ExitUsage, err: errors.New("--runtimes and --executors exclude each other: executors run the runtimes")}
			}
			return clusterUp(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dir, repo, gatewayAddr, runtimes, executors, args)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", filepath.Join(".mu", "cluster"), "directory for the cluster's pids, logs, data and keys")
	cmd.Flags().StringVar(&repo, "repo", ".", "the mu repository to build the service commands from")
	cmd.Flags().StringVar(&gatewayAddr, "gateway-addr", "127.0.0.1:0", "address of the gateway's public HTTP listener (with --executors, executor-1's)")
	cmd.Flags().IntVar(&runtimes, "runtimes", 3, "how many runtime processes to start (the split topology)")
	cmd.Flags().IntVar(&executors, "executors", 0, "start this many mu-executor processes (gateway and runtime in one process each) instead of the runtimes and the gateway")
	return cmd
}

func newClusterDownCommand() *cobra.Command {
	var dir string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the processes of a cluster started with 'mu cluster up'",
		Long: `Down sends SIGTERM to every process whose pid file is in --dir (the gateway
and the executors first — an executor stops its own gateway before its
runtime — then the runtimes, then the rest), waits for each to exit, sends
SIGKILL to one that is still running after --timeout, and removes the pid
files and the recorded addresses (region.json in the user's state
directory) when they name this cluster. Data, logs and keys stay.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return clusterDown(cmd.ErrOrStderr(), dir, timeout)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", filepath.Join(".mu", "cluster"), "the cluster's directory")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "how long each process may take to stop after SIGTERM")
	return cmd
}

// clusterStackSeed is the ledger seed of the i-th project's stack.
func clusterStackSeed(i int) uint64 { return uint64(i) + 1 }

func clusterUp(ctx context.Context, stdout, stderr io.Writer, dir, repo, gatewayAddr string, runtimes, executors int, projects []string) error {
	if runtimes < 1 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("--runtimes must be at least 1, got %d", runtimes)}
	}
	if executors < 0 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("--executors must not be negative, got %d", executors)}
	}
	repo, err := filepath.Abs(repo)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if _, err := os.Stat(filepath.Join(repo, "go.work")); err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("--repo %s is not the mu repository (no go.work): %w", repo, err)}
	}
	if running := runningPids(dir); len(running) > 0 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("a cluster is already running from %s (%s); stop it with 'mu cluster down --dir %s' first", dir, strings.Join(running, ", "), dir)}
	}
	if len(projects) == 0 {
		projects = []string{filepath.Join(repo, "examples", "hello"), filepath.Join(repo, "examples", "todo")}
	}
	type built struct {
		dir string
		b   *project.Build
	}
	var builds []built
	for _, pd := range projects {
		p, err := loadProject(stderr, pd)
		if err != nil {
			return err
		}
		b, err := buildProject(ctx, stderr, p)
		if err != nil {
			return err
		}
		builds = append(builds, built{dir: pd, b: b})
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	var keys region.MarketKeys
	for name, k := range map[string]**ledger.Keypair{"authority": &keys.Authority, "provider": &keys.Provider, "developer": &keys.Developer} {
		if *k, err = ledger.LoadOrCreateKeypair(filepath.Join(dir, "keys", name+".json")); err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
	}
	stacks := make([]ledger.Stack, len(builds))
	start := time.Now()
	fmt.Fprintf(stderr, "starting the cluster's processes (building the service commands first)\n")
	opts := region.Options{
		Mode:        region.Processes,
		DataDir:     filepath.Join(dir, "data"),
		UploaderKey: keys.Developer.PrivateKey(),
		Mudb:        &region.MudbOptions{},
		Storage:     &region.StorageOptions{},
		Ledger: &region.LedgerOptions{
			Keys:           keys,
			IndexerProcess: true,
			Prepare: func(ctx context.Context, r *region.Region) error {
				for i, b := range builds {
					st, err := r.Post(ctx, keys.Developer, clusterStackSeed(i), b.b.Manifest, b.b.Binaries)
					if err != nil {
						return fmt.Errorf("post %s on the ledger: %w", b.dir, err)
					}
					stacks[i] = st
				}
				return nil
			},
		},
		Billing: &region.BillingOptions{},
		Cluster: &region.ClusterOptions{},
		Process: region.ProcessOptions{RepoDir: repo, LogDir: filepath.Join(dir, "logs"), Detach: true},
	}
	nodes := fmt.Sprintf("%d runtimes", runtimes)
	if executors > 0 {
		nodes = fmt.Sprintf("%d executors", executors)
		opts.Executors = &region.ExecutorOptions{Nodes: executors, Config: func(i int, c *region.ExecutorConfig) {
			if i == 0 {
				c.Gateway.HTTPAddr = gatewayAddr
			}
		}}
	} else {
		opts.Runtime = &region.RuntimeOptions{Nodes: runtimes, Name: func(i int) string { return fmt.Sprintf("runtime-%d", i+1) }}
		opts.Gateway = &region.GatewayOptions{HTTPAddr: gatewayAddr}
	}
	r, err := region.Start(ctx, opts)
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("start the cluster: %w (logs in %s)", err, filepath.Join(dir, "logs"))}
	}
	if err := writePids(dir, r.Processes()); err != nil {
		r.Close()
		return &exitError{code: ExitUsage, err: err}
	}
	info := clusterFile{
		Gateway: "http://" + r.Gateway().Addr(), GatewayAdmin: r.Gateway().GRPCAddr(), Storage: r.Storage().URL(),
		ChainIndexer: r.ChainIndexer().Addr(), Billing: r.Billing().Addr(), Runtimes: map[string]string{}, Region: r.Market().Region.ID.String(), Stacks: map[string]string{},
		Gateways: map[string]string{},
	}
	for _, g := range r.Gateways() {
		info.Gateways[g.Name()] = "http://" + g.Addr()
	}
	for _, e := range r.Executors() {
		if info.Executors == nil {
			info.Executors = map[string]string{}
		}
		info.Executors[e.Name()] = e.Addr()
	}
	for _, n := range r.Runtimes() {
		info.Runtimes[n.Name()] = n.Addr()
	}
	for i, st := range stacks {
		id := ids.StackID(st.ID)
		info.Stacks[builds[i].dir] = id.String()
		if err := r.WaitServed(ctx, id, st.Revision); err != nil {
			r.Close()
			return &exitError{code: ExitInvalid, err: fmt.Errorf("stack %s (%s) revision %d was posted but is not served: %w", id, builds[i].dir, st.Revision, err)}
		}
	}
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		err = os.WriteFile(filepath.Join(dir, "cluster.json"), append(b, '\n'), 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "warning: %v\n", err)
		}
	}
	stackIDs := []string{}
	for _, st := range stacks {
		stackIDs = append(stackIDs, ids.StackID(st.ID).String())
	}
	rec := describeRegion(r, "mu cluster up", stackIDs)
	if rec.ClusterDir, err = filepath.Abs(dir); err == nil {
		if path, err := writeRegionFile(rec); err != nil {
			fmt.Fprintf(stderr, "warning: %v (mu usage will need --billing)\n", err)
		} else {
			fmt.Fprintf(stderr, "addresses recorded in %s (removed by mu cluster down)\n", path)
		}
	}
	fmt.Fprintf(stderr, "cluster up in %s: %s, gateway %s, storage %s, chain-indexer %s (pids, logs and data in %s)\n",
		time.Since(start).Round(time.Millisecond), nodes, info.Gateway, info.Storage, info.ChainIndexer, dir)
	for i, st := range stacks {
		id := ids.StackID(st.ID)
		fmt.Fprintf(stderr, "stack %s %q revision %d from %s\n", id, builds[i].b.Manifest.Name, st.Revision, builds[i].dir)
		printed := map[string]bool{}
		for _, e := range r.URLs(id, builds[i].b.Manifest) {
			if !printed[e.URL] {
				printed[e.URL] = true
				fmt.Fprintf(stdout, "%s\n", e.URL)
			}
			fmt.Fprintf(stderr, "  %s %s → %s\n", e.Method, e.URL, e.Function)
		}
	}
	fmt.Fprintf(stderr, "stop it with: mu cluster down --dir %s\n", dir)
	return r.Release()
}

// pidFile is where process name's pid is kept.
func pidFile(dir, name string) string { return filepath.Join(dir, name+".pid") }

func writePids(dir string, procs []*region.Process) error {
	for _, p := range procs {
		if err := os.WriteFile(pidFile(dir, p.Name()), []byte(strconv.Itoa(p.Pid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("write pid of %s: %w", p.Name(), err)
		}
	}
	return nil
}

// clusterProc is a process of a cluster named by its pid file.
type clusterProc struct {
	name string
	pid  int
}

// readPids lists the pid files of dir, the gateway and the executors
// first, then the runtimes, then the rest, each group by name.
func readPids(dir string) ([]clusterProc, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return nil, err
	}
	var out []clusterProc
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("%s: not a pid: %q", m, strings.TrimSpace(string(b)))
		}
		out = append(out, clusterProc{name: strings.TrimSuffix(filepath.Base(m), ".pid"), pid: pid})
	}
	rank := func(name string) int {
		switch {
		case name == "gateway", strings.HasPrefix(name, "executor"):
			return 0
		case strings.HasPrefix(name, "runtime"):
			return 1
		}
		return 2
	}
	slices.SortFunc(out, func(a, b clusterProc) int {
		if d := rank(a.name) - rank(b.name); d != 0 {
			return d
		}
		return strings.Compare(a.name, b.name)
	})
	return out, nil
}

// alive reports whether pid is a running mu service command (so that a
// stale pid file never names an unrelated process that got the pid).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return true // no /proc: trust the signal check
	}
	if stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); err == nil {
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return false // exited, not yet reaped
		}
	}
	return strings.Contains(string(cmdline), "mu-")
}

// runningPids names the live processes of the cluster in dir.
func runningPids(dir string) []string {
	procs, err := readPids(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range procs {
		if alive(p.pid) {
			out = append(out, fmt.Sprintf("%s pid %d", p.name, p.pid))
		}
	}
	return out
}

func clusterDown(stderr io.Writer, dir string, timeout time.Duration) error {
	procs, err := readPids(dir)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if len(procs) == 0 {
		fmt.Fprintf(stderr, "no cluster in %s (no pid files)\n", dir)
		return nil
	}
	var errs []error
	for _, p := range procs {
		if !alive(p.pid) {
			fmt.Fprintf(stderr, "%s (pid %d) is not running\n", p.name, p.pid)
			os.Remove(pidFile(dir, p.name))
			continue
		}
		if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
			errs = append(errs, fmt.Errorf("stop %s (pid %d): %w", p.name, p.pid, err))
			continue
		}
		deadline := time.Now().Add(timeout)
		for alive(p.pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(p.pid) {
			syscall.Kill(p.pid, syscall.SIGKILL)
			fmt.Fprintf(stderr, "%s (pid %d) did not stop within %s of SIGTERM: killed\n", p.name, p.pid, timeout)
		} else {
			fmt.Fprintf(stderr, "stopped %s (pid %d)\n", p.name, p.pid)
		}
		os.Remove(pidFile(dir, p.name))
	}
	if abs, err := filepath.Abs(dir); err == nil {
		removeRegionFile(func(f regionFile) bool { return f.ClusterDir == abs })
	}
	if len(errs) > 0 {
		return &exitError{code: ExitUsage, err: errors.Join(errs...)}
	}
	return nil
}
