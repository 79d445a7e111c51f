package backend

import (
	"reflect"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/ledger/solana"
)

func TestSolana_DefaultsAreTheBackendsAndEveryFieldIsDocumented(t *testing.T) {
	if got := DefaultSolana().Config(); !reflect.DeepEqual(got, solana.DefaultConfig()) {
		t.Fatalf("DefaultSolana = %+v, want solana.DefaultConfig %+v", got, solana.DefaultConfig())
	}
	docs := ConfigDocs()
	typ := reflect.TypeFor[Solana]()
	for i := range typ.NumField() {
		if docs["Solana."+typ.Field(i).Name] == "" {
			t.Errorf("Solana.%s has no doc comment (--help shows none)", typ.Field(i).Name)
		}
	}
}

// TestSolana_MapsEveryFieldOfTheBackendsConfig: every field set to a
// distinct value survives SolanaOf and Config.
func TestSolana_MapsEveryFieldOfTheBackendsConfig(t *testing.T) {
	var c solana.Config
	cv := reflect.ValueOf(&c).Elem()
	for i := range cv.NumField() {
		switch v := cv.Field(i); v.Kind() {
		case reflect.String:
			v.SetString(cv.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			v.SetInt(int64(i + 1))
		default:
			t.Fatalf("solana.Config.%s is a %s: extend this test", cv.Type().Field(i).Name, v.Kind())
		}
	}
	if back := SolanaOf(c).Config(); !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip lost fields:\n got %+v\nwant %+v", back, c)
	}
}

func TestSolana_ValidateNamesTheSettingUnderItsPrefix(t *testing.T) {
	s := DefaultSolana()
	s.FeePayerKeypair = "payer.json"
	if err := s.Validate("ledger_solana_"); err != nil {
		t.Fatalf("defaults with a fee payer: %v", err)
	}
	s.FeePayerKeypair, s.RPCURL = "", "ftp://x"
	err := s.Validate("ledger_solana_")
	if err == nil || !strings.Contains(err.Error(), "ledger_solana_") || !strings.Contains(err.Error(), "fee_payer_keypair") || !strings.Contains(err.Error(), "rpc_url") {
		t.Fatalf("Validate = %v, want both problems under ledger_solana_", err)
	}
}
