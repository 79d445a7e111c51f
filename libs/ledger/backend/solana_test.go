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

// TestSolana_MapsEveryFieldOfTheBackendsConfig: a field solana.Config
// gains must be added here too, or this fails.
func TestSolana_MapsEveryFieldOfTheBackendsConfig(t *testing.T) {
	rename := map[string]string{"RPCURL": "RpcURL", "WSURL": "WsURL"}
	ct, st := reflect.TypeFor[solana.Config](), reflect.TypeFor[Solana]()
	if ct.NumField() != st.NumField() {
		t.Fatalf("solana.Config has %d fields, Solana %d", ct.NumField(), st.NumField())
	}
	// Every field set to a distinct value survives Config(SolanaOf(c)).
	var c solana.Config
	cv := reflect.ValueOf(&c).Elem()
	for i := range ct.NumField() {
		f := ct.Field(i)
		name := f.Name
		if r, ok := rename[name]; ok {
			name = r
		}
		sf, ok := st.FieldByName(name)
		if !ok || sf.Type != f.Type {
			t.Errorf("solana.Config.%s (%s) has no counterpart Solana.%s", f.Name, f.Type, name)
			continue
		}
		switch v := cv.Field(i); v.Kind() {
		case reflect.String:
			v.SetString(f.Name)
		case reflect.Int, reflect.Int64:
			v.SetInt(int64(i + 1))
		default:
			t.Fatalf("solana.Config.%s is a %s: extend this test", f.Name, v.Kind())
		}
	}
	if back := SolanaOf(c).Config(); !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip lost fields:\n got %+v\nwant %+v", back, c)
	}
	if got := DefaultSolana().Config(); !reflect.DeepEqual(got, solana.DefaultConfig()) {
		t.Fatalf("DefaultSolana = %+v, want solana.DefaultConfig", got)
	}
}

func TestSolana_ValidateNamesTheSettingUnderItsPrefix(t *testing.T) {
	s := DefaultSolana()
	s.FeePayerKeypair = "payer.json"
	if err := s.Validate("ledger_solana_"); err != nil {
		t.Fatalf("defaults with a fee payer: %v", err)
	}
	s.FeePayerKeypair, s.RpcURL = "", "ftp://x"
	err := s.Validate("ledger_solana_")
	if err == nil || !strings.Contains(err.Error(), "ledger_solana_") || !strings.Contains(err.Error(), "fee_payer_keypair") || !strings.Contains(err.Error(), "rpc_url") {
		t.Fatalf("Validate = %v, want both problems under ledger_solana_", err)
	}
}
