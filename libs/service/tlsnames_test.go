package service

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/config"
)

// TestBase_TLSSettingsHaveTheirFixedNames: the chart, the compose file and
// the example configs write tls_cert_file, tls_key_file, tls_ca_file,
// tls_reload_interval and plaintext; a field whose snake_case differs
// (TLSCAFile relies on config.SnakeCase splitting "TLSCA") would make every
// one of them an unknown setting.
func TestBase_TLSSettingsHaveTheirFixedNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.yaml")
	yaml := "tls_cert_file: /c/tls.crt\ntls_key_file: /c/tls.key\ntls_ca_file: /c/ca.crt\ntls_reload_interval: 7s\nplaintext: true\n"
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg struct{ Base }
	if err := config.Load("svc", &cfg, []string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	if cfg.TLSCertFile != "/c/tls.crt" || cfg.TLSKeyFile != "/c/tls.key" || cfg.TLSCAFile != "/c/ca.crt" || cfg.TLSReloadInterval != 7*time.Second || !cfg.Plaintext {
		t.Errorf("loaded %+v", cfg.Base)
	}
}
