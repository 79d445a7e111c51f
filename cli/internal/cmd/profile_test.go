package cmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
)

// mu runs the command in process with its own config directory.
func mu(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, nil, &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeygen_WritesASolanaKeypairWithMode0600AndNeverOverwrites(t *testing.T) {
	t.Setenv("MU_CONFIG_DIR", t.TempDir())
	code, out, errb := mu(t, "keygen")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	dir, _ := configDir()
	path := filepath.Join(dir, "keys", "id.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	var raw []int
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 64 {
		t.Fatalf("not Solana's JSON keypair (64 numbers): %v, %d numbers", err, len(raw))
	}
	k, err := ledger.LoadKeypair(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != k.Pubkey().String() {
		t.Errorf("printed %q, the keypair's public key is %s", out, k.Pubkey())
	}
	if !strings.Contains(errb, path) {
		t.Errorf("stderr does not say where: %q", errb)
	}
	code, _, errb = mu(t, "keygen")
	if code != ExitUsage || !strings.Contains(errb, "never overwrites") {
		t.Fatalf("second keygen: exit %d %q", code, errb)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, b) {
		t.Fatal("the keypair changed")
	}
	other := filepath.Join(t.TempDir(), "signer.json")
	if code, out2, errb := mu(t, "keygen", "--out", other); code != ExitOK || out2 == out {
		t.Fatalf("keygen --out: exit %d, %q %q", code, out2, errb)
	}
}

func TestConfig_SetShowUseAndProfileFlag(t *testing.T) {
	t.Setenv("MU_CONFIG_DIR", t.TempDir())
	if code, out, _ := mu(t, "config", "show"); code != ExitOK || !strings.Contains(out, "no profile yet") {
		t.Fatalf("show without profiles: %d %q", code, out)
	}
	if code, _, errb := mu(t, "config", "set", "eu", "gateway=https://gw.eu.example", "indexer=idx.eu.example:443", "billing=bill.eu.example:443", "ledger_backend=local", "keypair=keys/me.json"); code != ExitOK {
		t.Fatalf("set: %s", errb)
	}
	if code, _, errb := mu(t, "config", "set", "us", "gateway=https://gw.us.example"); code != ExitOK {
		t.Fatalf("set: %s", errb)
	}
	code, out, _ := mu(t, "config", "show")
	if code != ExitOK || !strings.Contains(out, "profile: eu (current)") || !strings.Contains(out, "gateway           https://gw.eu.example") || !strings.Contains(out, "profiles: eu, us") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	abs, _ := filepath.Abs("keys/me.json")
	if !strings.Contains(out, abs) {
		t.Errorf("keypair path not made absolute (%s):\n%s", abs, out)
	}
	code, out, _ = mu(t, "config", "show", "--profile", "us", "--json")
	var shown struct {
		Name    string
		Current bool
		Profile Profile
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &shown) != nil || shown.Name != "us" || shown.Current || shown.Profile.Gateway != "https://gw.us.example" || shown.Profile.Indexer != "" {
		t.Fatalf("show --profile us --json: %d %s", code, out)
	}
	if code, _, errb := mu(t, "config", "use", "us"); code != ExitOK {
		t.Fatal(errb)
	}
	if _, out, _ = mu(t, "config", "show"); !strings.Contains(out, "profile: us (current)") {
		t.Fatalf("after use us:\n%s", out)
	}
	// Clearing a key.
	if code, _, _ := mu(t, "config", "set", "eu", "billing="); code != ExitOK {
		t.Fatal("clear")
	}
	if _, out, _ = mu(t, "config", "show", "--profile", "eu"); !strings.Contains(out, "billing           -") {
		t.Fatalf("billing not cleared:\n%s", out)
	}
}

func TestConfig_ErrorsNameWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MU_CONFIG_DIR", dir)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"config", "show", "--profile", "nope"}, `no profile "nope" (profiles: none yet); create it with: mu config set nope`},
		{[]string{"config", "use", "nope"}, `no profile "nope"`},
		{[]string{"config", "set", "eu", "gatway=x"}, `"gatway" is not a profile key (keys: billing, fee_payer, gateway, indexer, keypair, ledger_addr, ledger_backend, ledger_commitment, ledger_program_id, ledger_ws_url, storage, tls_ca, tls_cert, tls_key)`},
		{[]string{"config", "set", "eu", "gateway"}, `"gateway": want KEY=VALUE`},
		{[]string{"config", "set", "eu", "ledger_backend=eth"}, `ledger_backend "eth": want local or solana`},
		{[]string{"config", "set", "a/b", "gateway=x"}, `profile name "a/b"`},
		{[]string{"usage", testStack.String(), "--profile", "nope"}, `no profile "nope"`},
	}
	for _, tc := range cases {
		code, _, errb := mu(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errb, tc.want) {
			t.Errorf("%v: exit %d %q, want %q", tc.args, code, errb, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("profiles:\n  eu:\n    gatway: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errb := mu(t, "config", "show"); code != ExitUsage || !strings.Contains(errb, "gatway") || !strings.Contains(errb, "config.yaml") {
		t.Errorf("a misspelt key in config.yaml: %d %q", code, errb)
	}
}

// mu usage asks the profile's billing when --billing is not given.
func TestUsage_TakesBillingFromTheProfile(t *testing.T) {
	t.Setenv("MU_CONFIG_DIR", t.TempDir())
	f := &fakeBilling{resp: fullResponse()}
	addr := serveBilling(t, f)
	if code, _, errb := mu(t, "config", "set", "local", "billing="+addr); code != ExitOK {
		t.Fatal(errb)
	}
	if code, out, errb := mu(t, "usage", testStack.String()); code != ExitOK || !strings.Contains(out, "gateway requests") {
		t.Fatalf("usage from the profile: %d %q %q", code, out, errb)
	}
	if len(f.requests()) != 1 {
		t.Fatalf("billing got %d calls", len(f.requests()))
	}
}
