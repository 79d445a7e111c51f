package storage

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/service"
)

func TestServer_ServesAdminAndClosesTwice(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr, cfg.AdminAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	s, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ready") {
		t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_InvalidNamesTheField(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "nope"
	cfg.DataDir = ""
	cfg.MaxKeyBytes = 2000
	cfg.S3PartSize = 1
	cfg.URLSigningKey = "abcd"
	_, err := New(cfg, Deps{})
	for _, field := range []string{"grpc_addr", "data_dir", "max_key_bytes: 2000 must be in 1..912", "url_signing_key"} {
		if !errors.Is(err, service.ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("got %v, want it to name %s", err, field)
		}
	}
	// The defaults with only an endpoint given are valid: the default
	// bucket name is one S3 accepts.
	cfg = DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.S3Endpoint = "127.0.0.1:1"
	if err := cfg.Validate(); err != nil {
		t.Errorf("the defaults with s3_endpoint set: %v", err)
	}
	cfg.S3Bucket = "mu"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `s3_bucket: "mu" must be 3..63 characters`) {
		t.Errorf("a 2-character bucket: %v", err)
	}
	cfg = DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.S3Endpoint, cfg.S3PartSize = "127.0.0.1:1", 1<<20
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "s3_part_size") {
		t.Errorf("part size: %v", err)
	}
}
