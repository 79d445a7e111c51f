package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/services/gateway"
)

func TestConfig_DefaultsAreValid(t *testing.T) {
	cfg := gateway.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:12080" || cfg.GRPCAddr != "127.0.0.1:12081" || cfg.AdminAddr != "127.0.0.1:12082" ||
		cfg.MaxRequestBodyBytes != 10<<20 || cfg.MaxHeaderBytes != 64<<10 {
		t.Fatalf("unexpected defaults %+v", cfg)
	}
}

func TestConfig_ValidateNamesEveryBadField(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.HTTPAddr = "nope"
	cfg.PublicURL = "ftp://x"
	cfg.NodeName = ""
	cfg.MaxRequestBodyBytes = 0
	cfg.MaxHeaderBytes = -1
	cfg.MaxResponseBytes = 0
	cfg.InvokeTimeout = 2 * time.Minute // above WriteTimeout
	cfg.ReadTimeout = -time.Second
	cfg.Usage.BatchSize = 0
	cfg.Usage.RetryMax = time.Millisecond // below Usage.RetryMin
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"http_addr", "public_url", "node_name", "max_request_body_bytes", "max_header_bytes",
		"max_response_bytes", "invoke_timeout", "read_timeout", "usage_batch_size", "usage_retry_max"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}

func TestConfig_ZeroReadWriteTimeoutsMeanNoLimit(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.ReadTimeout, cfg.WriteTimeout = 0, 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
