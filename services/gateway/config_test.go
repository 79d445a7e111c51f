package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/services/gateway"
)

func TestConfig_DefaultsAreValid(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:12080" || cfg.GRPCAddr != "127.0.0.1:12081" || cfg.AdminAddr != "127.0.0.1:12082" ||
		cfg.MaxHeaderBytes != 64<<10 || cfg.MaxQueryParams != 10_000 || cfg.MaxConnections != 10_000 ||
		cfg.OverloadRetryAfter != time.Second {
		t.Fatalf("unexpected defaults %+v", cfg)
	}
	// The runtime's default max_frame_size (services/runtime DefaultConfig:
	// 8 << 20), which a service may not import.
	if cfg.RuntimeMaxFrameSize != 8<<20 {
		t.Errorf("RuntimeMaxFrameSize = %d, want the runtime's default 8 MiB", cfg.RuntimeMaxFrameSize)
	}
	// The number DefaultConfig's comment states: the largest body that fits.
	if cfg.MaxRequestBodyBytes != 8_212_549 || cfg.MaxRequestBodyBytes != cfg.MaxBodyForFrame() {
		t.Errorf("MaxRequestBodyBytes = %d, MaxBodyForFrame = %d, want both 8212549", cfg.MaxRequestBodyBytes, cfg.MaxBodyForFrame())
	}
}

func TestConfig_BodyMustFitTheRuntimeFrame(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.MaxRequestBodyBytes++
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "max_request_body_bytes:") ||
		!strings.Contains(err.Error(), "over runtime_max_frame_size 8388608; the largest body that fits is 8212549") {
		t.Fatalf("one byte over the frame: %v", err)
	}

	// Larger headers leave less room for the body.
	cfg = gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.MaxHeaderBytes = 128 << 10
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_request_body_bytes:") {
		t.Fatalf("default body with 128 KiB headers: %v", err)
	}
	cfg.MaxRequestBodyBytes = cfg.MaxBodyForFrame()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("MaxBodyForFrame with 128 KiB headers: %v", err)
	}

	// A larger runtime frame admits a larger body.
	cfg = gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.RuntimeMaxFrameSize = 16 << 20
	cfg.MaxRequestBodyBytes = 10 << 20
	if err := cfg.Validate(); err != nil {
		t.Fatalf("10 MiB body in 16 MiB frames: %v", err)
	}

	// Headers alone over the frame.
	cfg = gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.RuntimeMaxFrameSize = 4 << 10
	cfg.MaxRequestBodyBytes = 1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "not even an empty body fits") {
		t.Fatalf("64 KiB headers in 4 KiB frames: %v", err)
	}
}

// TestConfig_FrameBoundCoversWorstRequests builds, for small limits where
// every query key can be one byte, the request that spends the whole
// MaxHeaderBytes budget on query parameters and header fields the way the
// bound assumes is worst, and checks its encoded frame against the bound:
// never above it, and short of it by nothing but the reserve for endpoint
// names: the bound is exact. (Real requests also spend wire bytes on the
// stack id and gateway name, which the bound does not count on.)
func TestConfig_FrameBoundCoversWorstRequests(t *testing.T) {
	const keys = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
	for _, c := range []struct{ headerBytes, queryParams int }{
		{1024, 10}, {2048, len(keys)}, {200, 40}, {4096, 1},
	} {
		t.Run(fmt.Sprint(c.headerBytes, "/", c.queryParams), func(t *testing.T) {
			cfg := gateway.DefaultConfig()
			cfg.Plaintext = true // tests run on loopback
			cfg.MaxHeaderBytes, cfg.MaxQueryParams = c.headerBytes, c.queryParams
			cfg.RuntimeMaxFrameSize = 1 << 20
			bound := int64(cfg.RuntimeMaxFrameSize) - cfg.MaxBodyForFrame() // the frame of an empty body

			// Method "X", target "/?a&b&…" (the fewest wire bytes per query
			// parameter), then "N: " fields (5 counted bytes each), the last
			// one padded so the request line and headers take exactly
			// MaxHeaderBytes as the gateway counts them.
			n := min(c.queryParams, (c.headerBytes-gateway.MinRequestHead-1)/2)
			target := "/"
			query := map[string]string{}
			for i := range n {
				target += map[bool]string{true: "?", false: "&"}[i == 0] + keys[i:i+1]
				query[keys[i:i+1]] = ""
			}
			used := len("X") + 1 + len(target) + 1 + len("HTTP/1.1") + 2 + 2
			var headers []fnproto.Header
			for left := c.headerBytes - used; left >= 5; left = c.headerBytes - used {
				pad := ""
				if left < 10 {
					pad = strings.Repeat("p", left-5)
				}
				headers = append(headers, fnproto.Header{Name: "N", Value: pad})
				used += 1 + 2 + len(pad) + 2
			}
			m := &fnproto.ExecuteFunction{Function: "", Request: fnproto.Request{Method: "X", QueryParams: query, Headers: headers}}
			frame, err := fnproto.AppendFrame(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			real := int64(len(frame) - 4)
			if real > bound-gateway.EndpointNameReserve {
				t.Fatalf("a %d-byte request head makes a %d-byte frame, over the bound %d (without the name reserve)",
					c.headerBytes, real, bound-gateway.EndpointNameReserve)
			}
			if slack := bound - gateway.EndpointNameReserve - real; slack != 0 {
				t.Errorf("the bound %d is %d bytes above the worst request's frame %d", bound-gateway.EndpointNameReserve, slack, real)
			}
		})
	}
}

func TestConfig_ValidateNamesEveryBadField(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.HTTPAddr = "nope"
	cfg.PublicURL = "ftp://x"
	cfg.NodeName = ""
	cfg.MaxRequestBodyBytes = 0
	cfg.MaxHeaderBytes = -1
	cfg.MaxResponseBytes = 0
	cfg.InvokeTimeout = 2 * time.Minute // above WriteTimeout
	cfg.ReadTimeout = -time.Second
	cfg.MaxQueryParams = 0
	cfg.RuntimeMaxFrameSize = 100
	cfg.MaxConnections = -1
	cfg.OverloadRetryAfter = 0
	cfg.Usage.BatchSize = 0
	cfg.Usage.RetryMax = time.Millisecond // below Usage.RetryMin
	cfg.InvokeAttempts = 0
	cfg.Cluster.BindAddr = "no-port"
	cfg.Cluster.SecretKey = "not base64!"
	cfg.Cluster.ProbeInterval = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"http_addr", "public_url", "node_name", "max_request_body_bytes", "max_header_bytes",
		"max_response_bytes", "invoke_timeout", "read_timeout", "usage_batch_size", "usage_retry_max",
		"max_query_params", "runtime_max_frame_size", "max_connections", "overload_retry_after",
		"invoke_attempts", "cluster_bind_addr", "cluster_secret_key", "cluster_probe_interval"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}

func TestConfig_ClusterAndRetryDefaults(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	if cfg.InvokeAttempts != 3 {
		t.Errorf("InvokeAttempts = %d, want 3", cfg.InvokeAttempts)
	}
	if cfg.Cluster.Enabled() {
		t.Errorf("the default config is clustered: %+v", cfg.Cluster)
	}
	cfg.InvokeAttempts = 1 // no retries: valid
	cfg.Cluster.BindAddr = "127.0.0.1:7946"
	cfg.Cluster.Plaintext = true
	cfg.Cluster.Join = []string{"127.0.0.1:7947"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.InvokeAttempts = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "invoke_attempts: must be at least 1") {
		t.Errorf("invoke_attempts -1: %v", err)
	}
}

func TestConfig_ZeroReadWriteTimeoutsMeanNoLimit(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.ReadTimeout, cfg.WriteTimeout = 0, 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
