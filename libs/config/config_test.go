package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type sample struct {
	GRPCAddr       string
	MaxFuelPerCall uint64
	CallTimeout    time.Duration
	Budget         int64
	Verbose        bool
	Peers          []string
	Ratio          float64
	Sink           io.Writer // a dependency: ignored
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"GRPCAddr": "grpc_addr", "MaxFuelPerCall": "max_fuel_per_call", "DataDir": "data_dir",
		"NodeID": "node_id", "HTTPAddr": "http_addr", "S3Endpoint": "s3_endpoint", "PDEndpoints": "pd_endpoints",
		"TLSCAFile": "tls_ca_file", "RPCURL": "rpc_url", "WSURL": "ws_url", "OTLPEndpoint": "otlp_endpoint", "BaseURL": "base_url",
		"TLSCertFile": "tls_cert_file", "S3UseSSL": "s3_use_ssl", "GRPCPort": "grpc_port", "X": "x", "A1B": "a1_b", "RegionID": "region_id",
		"DBPerMillionReads": "db_per_million_reads", "FunctionPerTeraMBInstructions": "function_per_tera_mb_instructions",
	} {
		if got := SnakeCase(in); got != want {
			t.Errorf("SnakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoad_LayersFileEnvFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("grpc_addr: 0.0.0.0:1\nmax_fuel_per_call: 7\nbudget: 1GiB\npeers: [a, b]\ncall_timeout: 3s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := sample{GRPCAddr: "default", MaxFuelPerCall: 1, CallTimeout: time.Second, Ratio: 0.5}
	env := []string{"MU_TEST_SVC_MAX_FUEL_PER_CALL=8", "MU_TEST_SVC_CONFIG=" + file, "OTHER=1"}
	err := load("test-svc", &cfg, []string{"--call-timeout=250ms", "--verbose"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := sample{GRPCAddr: "0.0.0.0:1", MaxFuelPerCall: 8, CallTimeout: 250 * time.Millisecond, Budget: 1 << 30, Verbose: true, Peers: []string{"a", "b"}, Ratio: 0.5}
	if cfg.GRPCAddr != want.GRPCAddr || cfg.MaxFuelPerCall != want.MaxFuelPerCall || cfg.CallTimeout != want.CallTimeout ||
		cfg.Budget != want.Budget || !cfg.Verbose || strings.Join(cfg.Peers, ",") != "a,b" || cfg.Ratio != 0.5 {
		t.Fatalf("got %+v", cfg)
	}
}

func TestLoad_ErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("grpc_adr: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--call-timeout=soon"}, nil, "call_timeout (--call-timeout)"},
		{nil, []string{"MU_S_MAX_FUEL_PER_CALL=-1"}, "max_fuel_per_call (MU_S_MAX_FUEL_PER_CALL)"},
		{[]string{"--config", bad}, nil, `unknown setting "grpc_adr"`},
		{[]string{"--nope"}, nil, "not defined"},
		{nil, []string{"MU_S_MAX_FUEL_PER_CAL=1", "MU_S_CONFIG=", "MU_SX_OTHER=1"}, "MU_S_MAX_FUEL_PER_CAL names no setting of s"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "no such file"},
	}
	for _, tc := range cases {
		var cfg sample
		err := load("s", &cfg, tc.args, tc.env, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: got %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
	var cfg sample
	if err := load("s", &cfg, []string{"--check-config", "--call-timeout=3s"}, nil, io.Discard); !errors.Is(err, ErrCheckConfig) || cfg.CallTimeout != 3*time.Second {
		t.Errorf("--check-config: %v, call_timeout %v: want ErrCheckConfig with everything loaded", err, cfg.CallTimeout)
	}
	if err := load("s", &cfg, []string{"--check-config", "--call-timeout=soon"}, nil, io.Discard); err == nil || errors.Is(err, ErrCheckConfig) {
		t.Errorf("--check-config with a bad value: %v", err)
	}
	if err := load("s", sample{}, nil, nil, io.Discard); err == nil {
		t.Error("non-pointer accepted")
	}
}

func TestLoad_EmbeddedStructFieldsAreSettings(t *testing.T) {
	type cmdOptions struct {
		sample
		RuntimeAddr string
	}
	o := cmdOptions{sample: sample{GRPCAddr: "x"}}
	if err := load("gw", &o, []string{"--runtime-addr=a:1", "--grpc-addr=b:2"}, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if o.RuntimeAddr != "a:1" || o.GRPCAddr != "b:2" {
		t.Fatalf("got %+v", o)
	}
}

func TestArgs_LoadReadsBackAnEqualConfig(t *testing.T) {
	in := sample{GRPCAddr: "127.0.0.1:7", MaxFuelPerCall: 1 << 40, CallTimeout: 1500 * time.Millisecond,
		Budget: -3, Verbose: false, Peers: []string{"a:1", "b:2"}, Ratio: 1e-9}
	args, err := Args(&in)
	if err != nil {
		t.Fatal(err)
	}
	if len(args) != 7 || args[0] != "--grpc-addr=127.0.0.1:7" || args[2] != "--call-timeout=1.5s" {
		t.Fatalf("args %q", args)
	}
	// Loaded over different values, so every setting must come from the flags.
	out := sample{GRPCAddr: "other", MaxFuelPerCall: 1, CallTimeout: time.Hour, Budget: 9, Verbose: true, Peers: []string{"z"}, Ratio: 2}
	if err := load("s", &out, args, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.GRPCAddr != in.GRPCAddr || out.MaxFuelPerCall != in.MaxFuelPerCall || out.CallTimeout != in.CallTimeout ||
		out.Budget != in.Budget || out.Verbose || strings.Join(out.Peers, ",") != "a:1,b:2" || out.Ratio != in.Ratio {
		t.Fatalf("read back %+v, want %+v", out, in)
	}

	for _, peer := range []string{"a,b", "", " a"} {
		if _, err := Args(&sample{Peers: []string{peer}}); err == nil || !strings.Contains(err.Error(), "peers") {
			t.Errorf("peer %q: got %v, want an error naming peers", peer, err)
		}
	}
	if _, err := Args(sample{}); err == nil {
		t.Error("non-pointer accepted")
	}
}

func TestLoad_YAMLSectionsAreNamedStructFields(t *testing.T) {
	type node struct {
		NodeName string
		Gateway  sample
		Runtime  sample
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	yml := "node_name: n1\ngateway:\n  grpc_addr: g:1\n  peers: [a]\nruntime_grpc_addr: r:2\nruntime:\n  call_timeout: 2s\n"
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg node
	if err := load("x", &cfg, []string{"--config", file}, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "n1" || cfg.Gateway.GRPCAddr != "g:1" || strings.Join(cfg.Gateway.Peers, ",") != "a" ||
		cfg.Runtime.GRPCAddr != "r:2" || cfg.Runtime.CallTimeout != 2*time.Second {
		t.Fatalf("got %+v", cfg)
	}
	for yml, want := range map[string]string{
		"gateway:\n  grpc_adr: x\n":                        `unknown setting "gateway_grpc_adr"`,
		"billing:\n  grpc_addr: x\n":                       `unknown setting "billing"`,
		"gateway:\n  grpc_addr: x\ngateway_grpc_addr: y\n": `setting "gateway_grpc_addr" given twice`,
		"node_name:\n  grpc_addr: x\n":                     "node_name: want a single value",
	} {
		if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		var cfg node
		if err := load("x", &cfg, []string{"--config", file}, nil, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", yml, err, want)
		}
	}
}
