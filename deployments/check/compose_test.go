package check

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

const composeFile = "deployments/compose.yaml"

// loadCompose reads the compose file the way docker compose does: the
// compose specification's schema (unknown keys fail), interpolation from
// an empty environment, paths resolved against deployments/.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, composeFile)},
		cli.WithName("mu"), cli.WithWorkingDirectory(filepath.Join(repoRoot, "deployments")), cli.WithEnv(nil), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

var replica = regexp.MustCompile(`-[0-9]+$`)

// muService is the mu service a compose service runs ("" for others:
// TiKV, PD, S3).
func muService(name string, s types.ServiceConfig) string {
	svc := replica.ReplaceAllString(name, "")
	if _, ok := services[svc]; ok {
		return svc
	}
	if s.Build != nil && strings.Contains(s.Build.Dockerfile, "deployments/docker/") {
		return "?" + name
	}
	return ""
}

// TestCompose_EveryServiceConfigPassesTheBinariesOwnCheck loads the
// compose file and runs each mu service's binary with --check-config on
// the command, environment and mounted config files compose gives it.
func TestCompose_EveryServiceConfigPassesTheBinariesOwnCheck(t *testing.T) {
	p := loadCompose(t)
	seen := map[string]bool{}
	names := make([]string, 0, len(p.Services))
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := p.Services[name]
		svc := muService(name, s)
		switch {
		case svc == "":
			continue
		case strings.HasPrefix(svc, "?"):
			t.Errorf("compose service %s builds a mu image but is not named for a mu service", name)
			continue
		}
		seen[svc] = true
		inv := invocation{where: composeFile + " service " + name, service: svc, args: s.Command, env: map[string]string{}, files: map[string]string{}}
		for k, v := range s.Environment {
			if v == nil {
				t.Errorf("%s: environment %s has no value (it would come from the host's environment)", inv.where, k)
				continue
			}
			inv.env[k] = *v
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if !v.ReadOnly {
				t.Errorf("%s: bind mount %s is writable", inv.where, v.Target)
			}
			for p, content := range bindFiles(t, inv.where, svc, v) {
				inv.files[p] = content
			}
		}
		var cfg map[string]any
		for i, a := range inv.args {
			if i > 0 && inv.args[i-1] == "--config" {
				if err := yaml.Unmarshal([]byte(inv.files[a]), &cfg); err != nil {
					t.Errorf("%s: %s: %v", inv.where, a, err)
				}
			}
		}
		for _, p := range transportFileProblems(inv.where, svc, cfg, inv.files, true, true) {
			t.Error(p)
		}
		if err := checkConfig(t, inv); err != nil {
			t.Error(err)
		}
		checkDockerfileOf(t, inv.where, svc, s)
	}
	for _, svc := range []string{"gateway", "runtime", "mudb", "storage", "chain-indexer", "billing"} {
		if !seen[svc] {
			t.Errorf("%s runs no %s", composeFile, svc)
		}
	}
}

// certsDir is where `mu certs region --dir deployments/certs` writes the
// compose region's certificates, one directory per role (not committed).
var certsDir = filepath.Join(repoRoot, "deployments", "certs")

// bindFiles are the files a bind mount shows in the container: a file's
// content, every file of a directory, and, for a certificate directory
// under deployments/certs (made by mu certs region, absent in a clean
// checkout), placeholders of its tls.crt, tls.key and ca.crt. A service
// mounts the certificate directory of its own role.
func bindFiles(t *testing.T, where, svc string, v types.ServiceVolumeConfig) map[string]string {
	t.Helper()
	out := map[string]string{}
	if rel, err := filepath.Rel(certsDir, v.Source); err == nil && !strings.HasPrefix(rel, "..") {
		if rel != svc {
			t.Errorf("%s: mounts the certificates of %q (%s), want its own, certs/%s", where, rel, v.Source, svc)
		}
		if v.Bind == nil || v.Bind.CreateHostPath {
			t.Errorf("%s: certificate directory %s: set bind.create_host_path: false, so that compose refuses to start without it (run mu certs region)", where, v.Source)
		}
		for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
			c, _ := placeholder(t, svc, name)
			out[filepath.ToSlash(filepath.Join(v.Target, name))] = c
		}
		return out
	}
	fi, err := os.Stat(v.Source)
	if err != nil {
		t.Errorf("%s: bind mount %s: %v", where, v.Source, err)
		return out
	}
	if !fi.IsDir() {
		b, err := os.ReadFile(v.Source)
		if err != nil {
			t.Errorf("%s: bind mount %s: %v", where, v.Source, err)
		}
		out[v.Target] = string(b)
		return out
	}
	entries, err := os.ReadDir(v.Source)
	if err != nil {
		t.Errorf("%s: bind mount %s: %v", where, v.Source, err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(v.Source, e.Name()))
			if err != nil {
				t.Errorf("%s: bind mount %s: %v", where, v.Source, err)
			}
			out[filepath.ToSlash(filepath.Join(v.Target, e.Name()))] = string(b)
		}
	}
	return out
}

// checkDockerfileOf: the service builds from the service's own Dockerfile.
func checkDockerfileOf(t *testing.T, where, svc string, s types.ServiceConfig) {
	t.Helper()
	if s.Build == nil {
		t.Errorf("%s: no build section", where)
		return
	}
	df := s.Build.Dockerfile
	if !filepath.IsAbs(df) {
		df = filepath.Join(s.Build.Context, df)
	}
	if want := filepath.Join(repoRoot, "deployments", "docker", svc+".Dockerfile"); df != want {
		t.Errorf("%s: builds from %s, want %s", where, df, want)
	}
}

var (
	fromLine       = regexp.MustCompile(`(?mi)^FROM\s+(\S+)`)
	entrypointLine = regexp.MustCompile(`(?mi)^ENTRYPOINT\s+(.+)$`)
	userLine       = regexp.MustCompile(`(?mi)^USER\s+(\S+)`)
)

// TestDockerfiles_OnePerServiceOnDistroless: every binary has a
// multi-stage Dockerfile whose final image is distroless (static where
// the binary builds without cgo, cc for the runtime and the executor,
// which link wasmtime), runs as non-root and starts the binary.
func TestDockerfiles_OnePerServiceOnDistroless(t *testing.T) {
	for svc := range services {
		path := filepath.Join(repoRoot, "deployments", "docker", svc+".Dockerfile")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", svc, err)
			continue
		}
		froms := fromLine.FindAllStringSubmatch(string(b), -1)
		if len(froms) < 2 {
			t.Errorf("%s: %d stages, want a build stage and a final one", path, len(froms))
			continue
		}
		final := froms[len(froms)-1][1]
		want := "gcr.io/distroless/static-debian12:nonroot"
		if svc == "runtime" || svc == "executor" {
			want = "gcr.io/distroless/cc-debian12:nonroot"
		}
		if final != want {
			t.Errorf("%s: final image %s, want %s", path, final, want)
		}
		if m := entrypointLine.FindStringSubmatch(string(b)); m == nil || strings.TrimSpace(m[1]) != `["/mu-`+svc+`"]` {
			t.Errorf("%s: ENTRYPOINT %v, want [\"/mu-%s\"]", path, m, svc)
		}
		if m := userLine.FindAllStringSubmatch(string(b), -1); len(m) == 0 || !strings.HasPrefix(m[len(m)-1][1], "65532") {
			t.Errorf("%s: the final image must run as 65532 (nonroot)", path)
		}
	}
}

// TestExampleConfigs_PassTheBinariesOwnCheck: the example configs for
// providers running the binaries themselves are valid as they stand.
func TestExampleConfigs_PassTheBinariesOwnCheck(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "deployments", "config", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs in deployments/config (%v)", err)
	}
	for _, f := range files {
		svc := strings.TrimSuffix(filepath.Base(f), ".yaml")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inv := invocation{where: "deployments/config/" + filepath.Base(f), service: svc, args: []string{"--config", "/etc/mu/" + svc + ".yaml"},
			files: map[string]string{"/etc/mu/" + svc + ".yaml": string(b)}}
		// The files the config names are the provider's: placeholders.
		var cfg map[string]any
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			t.Fatalf("%s: %v", inv.where, err)
		}
		if cluster, ok := cfg["cluster"].(map[string]any); ok && svc == "executor" {
			cfg[gossipKeyFileSetting] = cluster["secret_key_file"]
		}
		// The executor's parts (its sections) have certificates of their
		// own roles.
		parts := map[string]map[string]any{svc: cfg}
		if svc == "executor" {
			for _, part := range []string{"gateway", "runtime", "mudb", "storage"} {
				if sec, ok := cfg[part].(map[string]any); ok {
					parts[part] = sec
				}
			}
		}
		for part, c := range parts {
			for k, name := range fileOfSetting {
				if p, ok := c[k].(string); ok {
					content, _ := placeholder(t, part, name)
					inv.files[p] = content
				}
			}
		}
		for part, c := range parts {
			// The executor's cluster section keys both its members' gossip
			// (checked as a gateway's); its parts' sections have none.
			gossipSvc := "part " + part
			switch {
			case part == "executor":
				gossipSvc = "gateway"
			case svc != "executor":
				gossipSvc = part
			}
			for _, p := range transportFileProblems(inv.where+" "+part, gossipSvc, c, inv.files, true, true) {
				t.Error(p)
			}
		}
		if err := checkConfig(t, inv); err != nil {
			t.Error(err)
		}
	}
}
