package check

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// services maps each service name (a container name in the chart, a
// compose service name without its -N suffix) to its command's package.
var services = map[string]string{
	"gateway":       "github.com/muprotocol/mu/services/gateway/cmd/mu-gateway",
	"runtime":       "github.com/muprotocol/mu/services/runtime/cmd/mu-runtime",
	"mudb":          "github.com/muprotocol/mu/services/mudb/cmd/mu-mudb",
	"storage":       "github.com/muprotocol/mu/services/storage/cmd/mu-storage",
	"chain-indexer": "github.com/muprotocol/mu/services/chain-indexer/cmd/mu-chain-indexer",
	"billing":       "github.com/muprotocol/mu/services/billing/cmd/mu-billing",
	"executor":      "github.com/muprotocol/mu/region/cmd/mu-executor",
}

// repoRoot is the checkout this package sits in.
var repoRoot = func() string {
	abs, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return abs
}()

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds every service binary once per test run, from this
// checkout (the workspace), and returns the directory holding them.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mu-deploy-check-")
		if buildErr != nil {
			return
		}
		pkgs := make([]string, 0, len(services))
		for _, p := range services {
			pkgs = append(pkgs, p)
		}
		sort.Strings(pkgs)
		cmd := exec.Command("go", append([]string{"build", "-o", binDir + "/"}, pkgs...)...)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// invocation is how a deployment starts one service: its arguments, its
// environment (already resolved: no $(VAR) left) and the files it reads,
// by the path it reads them at.
type invocation struct {
	where   string // "chart ci/x.yaml Deployment/mu-gateway" and the like, for errors
	service string // key of services
	args    []string
	env     map[string]string
	files   map[string]string // path in the container → content
}

// checkConfig runs the service's binary with --check-config on what the
// deployment gives it (its files placed under a temporary root and the
// arguments rewritten to point there) and returns the binary's verdict.
func checkConfig(t *testing.T, inv invocation) error {
	t.Helper()
	if _, ok := services[inv.service]; !ok {
		return fmt.Errorf("%s: %q is not a mu service (want one of gateway, runtime, mudb, storage, chain-indexer, billing, executor)", inv.where, inv.service)
	}
	root := t.TempDir()
	rewrite := map[string]string{}
	for path, content := range inv.files {
		local := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		rewrite[path] = local
	}
	// The config files and the environment name the other files (TLS
	// certificates, gossip keys) by their path in the container: point
	// them at the copies, longest path first.
	paths := make([]string, 0, len(rewrite))
	for p := range rewrite {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	var pairs []string
	for _, p := range paths {
		pairs = append(pairs, p, rewrite[p])
	}
	relocate := strings.NewReplacer(pairs...).Replace
	args := []string{"--check-config"}
	for i, a := range inv.args {
		if i > 0 && inv.args[i-1] == "--config" {
			local, ok := rewrite[a]
			if !ok {
				return fmt.Errorf("%s: --config %s: no such file is mounted", inv.where, a)
			}
			b, err := os.ReadFile(local)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(local, []byte(relocate(string(b))), 0o644); err != nil {
				t.Fatal(err)
			}
			a = local
		}
		args = append(args, a)
	}
	cmd := exec.Command(filepath.Join(binaries(t), "mu-"+inv.service), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	for k, v := range inv.env {
		cmd.Env = append(cmd.Env, k+"="+relocate(v))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: mu-%s %s: %v\n%s", inv.where, inv.service, strings.Join(inv.args, " "), err, out)
	}
	if !strings.Contains(string(out), "settings are valid") {
		return fmt.Errorf("%s: mu-%s --check-config said %q", inv.where, inv.service, out)
	}
	return nil
}

// expand resolves $(VAR) references the way the kubelet does: to the
// value of an earlier variable, else left as written; $$ escapes.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
				name := s[i+2 : i+2+end]
				if v, ok := vars[name]; ok {
					b.WriteString(v)
					i += 2 + end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestCheckConfig_CatchesAMisspeltSetting makes sure the check used on the
// chart and compose file can fail: a misspelt key in the file and a
// misspelt environment variable are both refused by the binary.
func TestCheckConfig_CatchesAMisspeltSetting(t *testing.T) {
	base := invocation{where: "test", service: "mudb", args: []string{"--config", "/etc/mu/mudb.yaml"},
		files: map[string]string{"/etc/mu/mudb.yaml": "pd_endpoints: [pd:2379]\nplaintext: true\n"}}
	if err := checkConfig(t, base); err != nil {
		t.Fatalf("a valid config: %v", err)
	}
	bad := base
	bad.files = map[string]string{"/etc/mu/mudb.yaml": "pd_endpoint: [pd:2379]\nplaintext: true\n"}
	if err := checkConfig(t, bad); err == nil || !strings.Contains(err.Error(), `unknown setting "pd_endpoint"`) {
		t.Errorf("misspelt key: %v", err)
	}
	bad = base
	bad.env = map[string]string{"MU_MUDB_BILING_ADDR": "billing:9090"}
	if err := checkConfig(t, bad); err == nil || !strings.Contains(err.Error(), "MU_MUDB_BILING_ADDR names no setting") {
		t.Errorf("misspelt env: %v", err)
	}
	bad = base
	bad.env = map[string]string{"MU_MUDB_MAX_KEY_BYTES": "0"}
	if err := checkConfig(t, bad); err == nil || !strings.Contains(err.Error(), "max_key_bytes") {
		t.Errorf("invalid value: %v", err)
	}
}

func TestExpand_KubeletRules(t *testing.T) {
	vars := map[string]string{"POD_IP": "10.0.0.7"}
	for in, want := range map[string]string{
		"$(POD_IP):7946": "10.0.0.7:7946",
		"$(NOPE):1":      "$(NOPE):1",
		"$$(POD_IP)":     "$(POD_IP)",
		"a$":             "a$",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}
