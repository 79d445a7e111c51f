package mudb

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/service"
)

func TestConfig_DefaultIsValid(t *testing.T) {
	def := DefaultConfig()
	def.Plaintext = true // the defaults but for the TLS files, which have none
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_ReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true                       // tests run on loopback
	cfg.MaxResponseBytes = cfg.MaxMessageBytes // no room for a cursor
	cfg.DefaultScanPage = cfg.MaxScanPage + 1
	cfg.MaxTableNameBytes = 256
	cfg.MaxTxnDuration = 0
	cfg.TTLSweepBatch = 0
	cfg.PDEndpoints = []string{""}
	cfg.Usage.BatchSize = 0
	err := cfg.Validate()
	if !errors.Is(err, service.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	for _, field := range []string{"max_response_bytes", "default_scan_page", "max_table_name_bytes", "max_txn_duration", "ttl_sweep_batch", "pd_endpoints", "usage_batch_size"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	cfg = DefaultConfig()
	cfg.Plaintext = true                     // tests run on loopback
	cfg.MaxValueBytes = cfg.MaxResponseBytes // one entry cannot fit a reply
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "cannot hold one entry") {
		t.Errorf("value above the response limit: %v", err)
	}
}

func TestConfigDocs_DocumentEveryField(t *testing.T) {
	docs := ConfigDocs()
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		if f := ct.Field(i); !f.Anonymous && docs["Config."+f.Name] == "" {
			t.Errorf("Config.%s has no doc comment (--help shows none)", f.Name)
		}
	}
	for _, k := range []string{"Base.GRPCAddr", "BatchConfig.BatchSize"} {
		if docs[k] == "" {
			t.Errorf("%s has no doc", k)
		}
	}
}
