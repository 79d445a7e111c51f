package region

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/services/storage/upload"
)

// testRegionID is a valid base58 region address for config tests.
const testRegionID = "11111111111111111111111111111111"

func TestExecutorConfig_ValidateNamesEachSettingAsTheFileSpellsIt(t *testing.T) {
	if err := DefaultExecutorConfig().Validate(); err != nil {
		t.Fatalf("the defaults are invalid: %v", err)
	}
	remote := DefaultExecutorConfig()
	remote.MudbAddr, remote.StorageAddr = "mudb.internal:12020", "storage.internal:12030"
	remote.Mudb.MaxTxnRetries = 0 // an invalid section that is not run is not checked, only refused when changed
	if err := remote.Validate(); err == nil || !strings.Contains(err.Error(), "mudb_max_txn_retries: is set, but mudb_addr") {
		t.Errorf("a changed mudb section with mudb_addr: got %v", err)
	}
	remote.Mudb = DefaultExecutorConfig().Mudb
	if err := remote.Validate(); err != nil {
		t.Errorf("muDB and storage elsewhere: %v", err)
	}
	clustered := DefaultExecutorConfig()
	clustered.Cluster.BindAddr, clustered.Cluster.Join = "127.0.0.1:7946", []string{"10.0.0.2:7946"}
	clustered.Cluster.Plaintext = true
	clustered.ChainIndexerAddr, clustered.RegionID = "indexer:12040", testRegionID
	if err := clustered.Validate(); err != nil {
		t.Errorf("a clustered executor following an indexer: %v", err)
	}

	cases := []struct {
		name string
		edit func(c *ExecutorConfig)
		want []string
	}{
		{"a section's own problem", func(c *ExecutorConfig) { c.Runtime.MaxFuelPerCall = 0; c.Gateway.InvokeAttempts = 0 },
			[]string{"runtime_max_fuel_per_call: must be positive", "gateway_invoke_attempts: must be at least 1"}},
		{"the executor's own settings", func(c *ExecutorConfig) { c.NodeName = ""; c.GRPCAddr = "nowhere" },
			[]string{"node_name: is required", "grpc_addr:"}},
		{"what the executor sets, set in a section", func(c *ExecutorConfig) {
			c.Runtime.MudbAddr = "x:1"
			c.Gateway.ChainIndexerAddr = "x:2"
			c.Gateway.Cluster.BindAddr = "127.0.0.1:1"
			c.Storage.NodeName = "s"
		}, []string{"runtime_mudb_addr: is set by the executor; set mudb_addr", "gateway_chain_indexer_addr: is set by the executor; set chain_indexer_addr",
			"gateway_cluster: is set by the executor; set cluster", "storage_node_name: is set by the executor; set node_name"}},
		{"an indexer without a region", func(c *ExecutorConfig) { c.ChainIndexerAddr = "indexer:12040" },
			[]string{"region_id: is required with chain_indexer_addr"}},
		{"a bad region id", func(c *ExecutorConfig) { c.RegionID = "not-base58!" }, []string{"region_id:"}},
		{"a remote part that is not host:port", func(c *ExecutorConfig) { c.MudbAddr = "mudb"; c.StorageAddr = ":1" },
			[]string{`mudb_addr: "mudb" is not host:port`, `storage_addr: ":1" is not host:port`}},
		{"a storage section with storage_addr", func(c *ExecutorConfig) { c.StorageAddr = "s:1"; c.Storage.S3Endpoint = "s3:9000" },
			[]string{"storage_s3_endpoint: is set, but storage_addr s:1"}},
		{"a gateway gossip address without a cluster", func(c *ExecutorConfig) { c.Cluster.GatewayBindAddr = "127.0.0.1:7947" },
			[]string{"cluster_gateway_bind_addr: needs cluster_bind_addr"}},
		{"bad shared cluster settings", func(c *ExecutorConfig) {
			c.Cluster.BindAddr = "127.0.0.1:7946"
			c.Cluster.ProbeInterval = 0
			c.Cluster.GatewayBindAddr = "gw:7947"
		}, []string{"cluster_probe_interval:", `cluster_gateway_bind_addr: "gw:7947" is not ip:port`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultExecutorConfig()
			tc.edit(&c)
			err := c.Validate()
			if !errors.Is(err, service.ErrInvalidConfig) {
				t.Fatalf("got %v, want an invalid config", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			// What a part derives from the executor is reported once, under
			// the executor's name, not again under the part's.
			for _, dup := range []string{"runtime_chain_indexer_addr", "gateway_region_id", "gateway_cluster_", "runtime_cluster_", "runtime_node_name"} {
				if strings.Contains(err.Error(), dup+":") && !strings.Contains(strings.Join(tc.want, " "), dup) {
					t.Errorf("error repeats a derived setting %q:\n%v", dup, err)
				}
			}
		})
	}
}

// testExecutorConfig is an executor on free loopback ports with its data
// under dir.
func testExecutorConfig(dir string) ExecutorConfig {
	c := DefaultExecutorConfig()
	c.NodeName = "executor-test"
	c.GRPCAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Gateway.HTTPAddr, c.Gateway.GRPCAddr, c.Gateway.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	c.Runtime.GRPCAddr, c.Runtime.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Mudb.GRPCAddr, c.Mudb.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Storage.GRPCAddr, c.Storage.HTTPAddr, c.Storage.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	c.Runtime.DataDir = filepath.Join(dir, "runtime")
	c.Mudb.DataDir = filepath.Join(dir, "mudb")
	c.Storage.DataDir = filepath.Join(dir, "storage")
	return c
}

// TestExecutor_ServesALedgerStackWithItsOwnMudbAndStorageAndStopsGracefully
// starts the executor's wiring in this process on the embedded store (muDB
// in process on unistore, storage on a local directory) following a
// chain-indexer on the local ledger, posts the todo example through the
// ledger (binary uploaded to the executor's own storage), serves a POST
// (a table write and a box write) and a GET through its gateway, and
// checks the executor's health, readiness and graceful Close.
func TestExecutor_ServesALedgerStackWithItsOwnMudbAndStorageAndStopsGracefully(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the todo example")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	market, err := Start(ctx, Options{Ledger: &LedgerOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { market.Close() })

	cfg := testExecutorConfig(t.TempDir())
	cfg.ChainIndexerAddr = market.ChainIndexer().Addr()
	cfg.RegionID = market.Market().Region.ID.String()
	e, err := NewExecutor(cfg, ExecutorDeps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}
	parts := e.Parts()
	if parts.Mudb() == nil || parts.Storage() == nil || parts.Runtime() == nil || parts.Gateway() == nil {
		t.Fatal("the executor does not run all four parts")
	}

	todo, bins := stackFromDir(t, "../examples/todo")
	dev := market.Market().Keys.Developer
	for id, wasm := range bins {
		c := upload.Client{BaseURL: parts.Storage().URL()}
		if _, err := c.Upload(ctx, dev.PrivateKey(), wasm); err != nil {
			t.Fatalf("upload %s to the executor's storage: %v", id, err)
		}
	}
	yml, err := todo.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	st, err := market.Ledger().CreateStack(ctx, dev, market.Market().Region.ID, 1, yml)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.StackID(st.ID)
	if err := parts.WaitServed(ctx, id, st.Revision); err != nil {
		t.Fatal(err)
	}
	url := "http://" + parts.Gateway().Addr() + "/" + id.String() + "/todo/"
	if code, body := doAs(t, http.MethodPost, url, "executor", `{"title":"milk","done":false}`); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	if code, body := doAs(t, http.MethodGet, url, "executor", ""); code != http.StatusOK || !strings.Contains(body, `"milk"`) {
		t.Fatalf("GET after the POST: %d %s, want the todo just added", code, body)
	}

	// The executor's gateway calls its own runtime in process, never over
	// gRPC: both calls above went that way.
	if in, remote := gatewayInvokes(t, parts, "in_process"), gatewayInvokes(t, parts, "grpc"); in != 2 || remote != 0 {
		t.Errorf("gateway invokes: %v in process, %v over gRPC; want 2 and 0", in, remote)
	}

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body := doAs(t, http.MethodGet, "http://"+e.AdminAddr()+path, "executor", ""); code != http.StatusOK {
			t.Errorf("executor admin %s: %d %s", path, code, body)
		}
	}
	cc, err := plainRegion().dialService(certs.RoleRuntime, e.Addr(), cfg.MaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("executor health: %v %v, want SERVING", h.GetStatus(), err)
	}

	gatewayAddr := parts.Gateway().Addr()
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if _, err := http.Get("http://" + gatewayAddr + "/"); err == nil {
		t.Error("the gateway still answers after Close")
	}
	select {
	case err := <-e.Err():
		t.Errorf("Err reported %v for a clean Close", err)
	default:
	}
}
