package billing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/service"
)

func TestConfig_DefaultsAreValid(t *testing.T) {
	def := DefaultConfig()
	def.Plaintext = true // the defaults but for the TLS files, which have none
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_ValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.RegionID = "not-base58-0OIl"
	cfg.MaxBatchRecords = 999
	cfg.MaxCommitRecords = 10
	cfg.SettleInterval = 0
	cfg.BucketSize = -time.Second
	cfg.DefaultPageSize, cfg.MaxPageSize = 500, 100
	cfg.PDEndpoints = []string{"pd:2379", " "}
	err := cfg.Validate()
	if !errors.Is(err, service.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{
		"region_id: public key",
		"max_batch_records: 999 is below the senders' default usage_batch_size 1000",
		"max_commit_records: 10 is below max_batch_records 999",
		"settle_interval: must be positive",
		"bucket_size: must be positive",
		"default_page_size: 500 is above max_page_size 100",
		"pd_endpoints: entry 1 is empty",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %q", err, want)
		}
	}
	cfg = DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.MaxMessageBytes = 1 << 20
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_batch_records: 10000 records of up to 256 bytes do not fit max_message_bytes 1048576") {
		t.Errorf("message size check: %v", err)
	}
}

func TestNew_BadSignerKeyFileNamesTheSettingAndLedgerAddrDialsLazily(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SignerKeyFile = t.TempDir() + "/missing.json"
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "signer_key_file") {
		t.Errorf("missing key file: %v", err)
	}
	cfg.SignerKeyFile = ""
	// Nothing listens on port 1: New must still succeed (an unreachable
	// ledger keeps settlements pending, it does not stop billing from
	// taking usage), and the ledger client is released on Close.
	cfg.LedgerAddr = "127.0.0.1:1"
	s, err := New(cfg, Deps{})
	if err != nil {
		t.Fatalf("ledger_addr to a down ledger: %v", err)
	}
	if s.ledger == nil {
		t.Fatal("ledger_addr set but no ledger client")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A ledger in Deps takes precedence over ledger_addr.
	fl := &flakyLedger{}
	s, err = New(cfg, Deps{Ledger: fl})
	if err != nil {
		t.Fatal(err)
	}
	if s.ledger != ledger.UsageUpdater(fl) {
		t.Errorf("ledger is %T, want the one from Deps", s.ledger)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_LedgerBackendSolanaIsCheckedUnderItsSettings(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.LedgerBackend = LedgerSolana
	cfg.LedgerAddr = "chain-indexer:9090"
	err := cfg.Validate()
	for _, want := range []string{"ledger_solana_", "fee_payer_keypair", "ledger_addr"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("solana without a fee payer, with ledger_addr: %v, want %q named", err, want)
		}
	}
	cfg.LedgerAddr, cfg.LedgerSolana.FeePayerKeypair = "", "/var/run/mu/fee-payer/payer.json"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("solana with its defaults and a fee payer: %v", err)
	}
	cfg.LedgerBackend = "ethereum"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ledger_backend") {
		t.Fatalf("unknown backend: %v", err)
	}
}

func TestConfigDocs_DocumentTheLedgerSettings(t *testing.T) {
	docs := ConfigDocs()
	for _, k := range []string{"Config.LedgerBackend", "Config.LedgerSolana", "Solana.RPCURL", "Solana.FeePayerKeypair", "Solana.ResyncInterval"} {
		if docs[k] == "" {
			t.Errorf("%s has no doc comment", k)
		}
	}
}
