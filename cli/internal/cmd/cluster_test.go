package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterUpDown_SeparateProcessesServeTheExamplesAndStop runs `mu
// cluster up` as `make cluster` does, in both topologies (two runtimes and
// a gateway; two executors), calls both examples through the printed
// URLs, checks the pid files, cluster.json and that a second up is
// refused, stops it with `mu cluster down`, and starts it again over the
// same directory: the stacks keep their ids (split only: the data lives
// in the muDB, storage and chain-indexer processes, the same in both, and
// a second start would add half a minute of CI).
func TestClusterUpDown_SeparateProcessesServeTheExamplesAndStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the service commands and starts a region of processes")
	}
	t.Run("split", func(t *testing.T) {
		clusterUpDown(t, []string{"--runtimes", "2"}, []string{"gateway", "runtime-1", "runtime-2"}, 1, true)
	})
	t.Run("executors", func(t *testing.T) {
		clusterUpDown(t, []string{"--executors", "2"}, []string{"executor-1", "executor-2"}, 2, false)
	})
}

// clusterUpDown is the cluster up/down scenario with nodeFlags, whose
// node processes are named nodes and serve through gateways gateways;
// restart starts it again over the same directory after down.
func clusterUpDown(t *testing.T, nodeFlags, nodes []string, gateways int, restart bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	down := func() {
		var out, errb bytes.Buffer
		if code := Run(ctx, []string{"cluster", "down", "--dir", dir}, nil, &out, &errb); code != ExitOK {
			t.Errorf("cluster down: exit %d\n%s", code, errb.String())
		}
	}
	up := func() []string {
		t.Helper()
		var out, errb bytes.Buffer
		code := Run(ctx, append([]string{"cluster", "up", "--repo", repo, "--dir", dir}, nodeFlags...), nil, &out, &errb)
		if code != ExitOK {
			t.Fatalf("cluster up: exit %d\n%s", code, errb.String())
		}
		var urls []string
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if !strings.HasPrefix(line, "http://") {
				t.Fatalf("cluster up printed %q on stdout; want only URLs", line)
			}
			urls = append(urls, line)
		}
		return urls
	}
	t.Cleanup(down)
	urls := up()
	if len(urls) != 3 || !strings.HasSuffix(urls[0], "/greeting/greet/{name}") || !strings.HasSuffix(urls[1], "/todo/") || !strings.HasSuffix(urls[2], "/todo/{title}") {
		t.Fatalf("URLs %q, want hello's endpoint then todo's two", urls)
	}

	if body := call(t, http.MethodGet, strings.Replace(urls[0], "{name}", "cluster", 1), ""); body != "Hello, cluster!" {
		t.Fatalf("hello answered %q", body)
	}
	call(t, http.MethodPost, urls[1], `{"title":"milk","done":false}`)
	if body := call(t, http.MethodGet, urls[1], ""); !strings.Contains(body, `"milk"`) {
		t.Fatalf("todo list %q, want the todo just added", body)
	}

	for _, name := range append(nodes, "mudb", "storage", "chain-indexer") {
		b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if !alive(pid) {
			t.Fatalf("%s (pid %d) is not running", name, pid)
		}
	}
	var info clusterFile
	if b, err := os.ReadFile(filepath.Join(dir, "cluster.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Gateways) != gateways {
		t.Fatalf("cluster.json lists gateways %v, want %d", info.Gateways, gateways)
	}
	for name, base := range info.Gateways {
		// Every gateway serves every stack, whichever node owns it.
		u := base + strings.TrimPrefix(strings.Replace(urls[0], "{name}", "cluster", 1), info.Gateway)
		if body := call(t, http.MethodGet, u, ""); body != "Hello, cluster!" {
			t.Fatalf("hello through %s answered %q", name, body)
		}
	}
	rec, recPath, err := readRegionFile()
	if err != nil {
		t.Fatalf("cluster up recorded no region: %v", err)
	}
	if rec.StartedBy != "mu cluster up" || rec.ClusterDir != dir || rec.Gateway != info.Gateway || rec.ChainIndexer != info.ChainIndexer ||
		rec.StorageHTTP != info.Storage || rec.StorageGRPC == "" || rec.Mudb == "" || rec.Region != info.Region || len(rec.Stacks) != 2 {
		t.Fatalf("recorded region %+v does not match cluster.json %+v", rec, info)
	}
	var out, errb bytes.Buffer
	if code := Run(ctx, []string{"cluster", "up", "--repo", repo, "--dir", dir}, nil, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "already running") {
		t.Fatalf("a second up over a running cluster: exit %d\n%s", code, errb.String())
	}

	procs, err := readPids(dir)
	if err != nil {
		t.Fatal(err)
	}
	down()
	for _, p := range procs {
		if alive(p.pid) {
			t.Errorf("%s (pid %d) still runs after down", p.name, p.pid)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.pid")); len(left) > 0 {
		t.Errorf("pid files left after down: %v", left)
	}
	if _, err := os.Stat(recPath); !os.IsNotExist(err) {
		t.Errorf("cluster down left the region file %s: %v", recPath, err)
	}

	if !restart {
		return
	}
	// Up again over the same directory: the ledger and the data are kept.
	again := up()
	if !sameStacks(again, urls) {
		t.Fatalf("URLs after a restart %q, want the same stacks as %q", again, urls)
	}
	if body := call(t, http.MethodGet, again[1], ""); !strings.Contains(body, `"milk"`) {
		t.Fatalf("todo list after a restart %q, want the todo added before", body)
	}
}

// sameStacks reports whether two URL lists name the same stacks and paths
// (the gateway's port may differ between runs).
func sameStacks(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		ua, errA := url.Parse(a[i])
		ub, errB := url.Parse(b[i])
		if errA != nil || errB != nil || ua.Path != ub.Path {
			return false
		}
	}
	return true
}

// call makes one request as user x-user-id "cluster" and returns the body,
// failing the test on a status of 300 or more.
func call(t *testing.T, method, url, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-user-id", "cluster")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return string(b)
}
