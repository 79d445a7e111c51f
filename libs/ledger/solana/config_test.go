package solana

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/service"
)

func TestConfig_DefaultsValidOnceTheFeePayerIsNamed(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "fee_payer_keypair") {
		t.Fatalf("defaults without a fee payer: %v, want fee_payer_keypair named", err)
	}
	cfg.FeePayerKeypair = "/etc/mu/fee-payer.json"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_ValidateNamesEveryBadSetting(t *testing.T) {
	cfg := Config{ProgramID: "not-base58-0OIl", RPCURL: "ftp://x", WSURL: "http://x", MintDecimals: 19, Commitment: "max",
		RetryInitial: 2, RetryMax: 1, MaxRetries: -1}
	err := cfg.Validate()
	if !errors.Is(err, service.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	for _, field := range []string{"program_id", "rpc_url", "ws_url", "fee_payer_keypair", "mint_decimals", "commitment",
		"request_timeout", "confirm_timeout", "confirm_poll", "retry_max", "max_retries", "resync_interval",
		"change_retention", "max_changes_page", "max_name_bytes", "max_url_bytes"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}

func TestConfigDocs_DocumentEveryField(t *testing.T) {
	docs := ConfigDocs()
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		if f := typ.Field(i); docs["Config."+f.Name] == "" {
			t.Errorf("Config.%s has no doc comment", f.Name)
		}
	}
}

func TestDeriveWSURL_IsThePortAboveInTheWSScheme(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8899":           "ws://127.0.0.1:8900",
		"https://api.devnet.solana.com":   "wss://api.devnet.solana.com",
		"http://[::1]:8899/":              "ws://[::1]:8900/",
		"https://rpc.example.net:443/key": "wss://rpc.example.net:444/key",
	} {
		got, err := DeriveWSURL(in)
		if err != nil || got != want {
			t.Errorf("DeriveWSURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := DeriveWSURL("ftp://x"); err == nil {
		t.Error("an ftp URL derived a websocket URL")
	}
}
