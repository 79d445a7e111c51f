package chainindexer

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/ledger/backend"
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
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "nope"
	cfg.Ledger.Backend = "ethereum"
	cfg.HistoryEvents = 0
	cfg.PersistInterval = 0
	cfg.PollInterval = -1
	cfg.ChangesBatch = 0
	cfg.LedgerTimeout = 0
	cfg.RetryMin, cfg.RetryMax = 2e9, 1e9
	cfg.WatchBuffer = 0
	cfg.MaxWatchers = 0
	cfg.BookmarkInterval = 0
	cfg.MaxFilterIDs = 0
	err := cfg.Validate()
	if !errors.Is(err, service.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	for _, field := range []string{"grpc_addr", "ledger_backend", "history_events", "persist_interval", "poll_interval",
		"changes_batch", "ledger_timeout", "retry_max", "watch_buffer", "max_watchers", "bookmark_interval", "max_filter_ids"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	cfg = DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.Ledger.PDEndpoints = []string{"pd:2379", " "}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ledger_pd_endpoints") {
		t.Errorf("empty pd endpoint: %v", err)
	}
}

func TestConfigDocs_DocumentEveryField(t *testing.T) {
	docs := ConfigDocs()
	for _, typ := range []reflect.Type{reflect.TypeFor[Config](), reflect.TypeFor[LedgerConfig](), reflect.TypeFor[backend.Solana]()} {
		for i := range typ.NumField() {
			if f := typ.Field(i); !f.Anonymous && docs[typ.Name()+"."+f.Name] == "" {
				t.Errorf("%s.%s has no doc comment (--help shows none)", typ.Name(), f.Name)
			}
		}
	}
	if docs["Base.GRPCAddr"] == "" {
		t.Error("Base.GRPCAddr has no doc")
	}
}

func TestConfig_SolanaBackendIsCheckedUnderLedgerSolana(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.Ledger.Backend = BackendSolana
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "ledger_solana_") || !strings.Contains(err.Error(), "fee_payer_keypair") {
		t.Fatalf("solana without a fee payer: %v, want ledger_solana_* fee_payer_keypair named", err)
	}
	cfg.Ledger.Solana.FeePayerKeypair = "/var/run/mu/fee-payer/payer.json"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("solana with its defaults and a fee payer: %v", err)
	}
}

func TestConfig_SolanaSettingsLoadFromTheirNames(t *testing.T) {
	cfg := DefaultConfig()
	args := []string{"--ledger-backend", "solana", "--ledger-solana-rpc-url", "http://127.0.0.1:18899",
		"--ledger-solana-ws-url", "ws://127.0.0.1:18900", "--ledger-solana-fee-payer-keypair", "payer.json",
		"--ledger-solana-program-id", "11111111111111111111111111111111", "--ledger-solana-resync-interval", "5s"}
	if err := config.LoadWithDocs("chain-indexer", &cfg, args, ConfigDocs()); err != nil {
		t.Fatal(err)
	}
	s := cfg.Ledger.Solana
	if cfg.Ledger.Backend != BackendSolana || s.RPCURL != "http://127.0.0.1:18899" || s.WSURL != "ws://127.0.0.1:18900" ||
		s.FeePayerKeypair != "payer.json" || s.ProgramID != "11111111111111111111111111111111" || s.ResyncInterval.String() != "5s" {
		t.Fatalf("loaded %+v", cfg.Ledger)
	}
	if s.Commitment != "confirmed" {
		t.Fatalf("commitment %q: the default was lost", s.Commitment)
	}
}
