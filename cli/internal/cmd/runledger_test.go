package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	sol "github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ledger/solana"
	"github.com/muprotocol/mu/libs/ledger/solana/solanatest"
)

func TestRun_LedgerFlagsAreCheckedBeforeAnythingStarts(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--ledger", "ethereum"}, `--ledger "ethereum": want "local" or "solana"`},
		{[]string{"--ledger", "solana"}, "--ledger solana needs --rpc"},
		{[]string{"--ledger", "solana", "--rpc", "ftp://node"}, "rpc_url"},
		{[]string{"--ledger", "solana", "--rpc", "http://127.0.0.1:8899", "--commitment", "soon"}, "commitment"},
		{[]string{"--ledger", "solana", "--rpc", "http://127.0.0.1:8899", "--program-id", "0OIl"}, "program_id"},
		{[]string{"--rpc", "http://127.0.0.1:8899"}, "--rpc is a setting of --ledger solana"},
	}
	for _, c := range cases {
		code, _, stderr := run(t, "", append(append([]string{"run"}, c.args...), dir)...)
		if code != ExitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("mu run %v: exit %d, stderr %q; want %d saying %q", c.args, code, stderr, ExitUsage, c.want)
		}
	}
}

func TestLedgerFlags_SolanaSettings(t *testing.T) {
	f := ledgerFlags{backend: "solana", rpc: "http://127.0.0.1:18899", ws: "ws://127.0.0.1:18900", programID: "11111111111111111111111111111111", feePayer: "payer.json", commitment: "finalized"}
	s, err := f.solana()
	if err != nil {
		t.Fatal(err)
	}
	if s.RPCURL != f.rpc || s.WSURL != f.ws || s.ProgramID != f.programID || s.FeePayerKeypair != "payer.json" || s.Commitment != "finalized" {
		t.Fatalf("settings %+v", s)
	}
	f = ledgerFlags{backend: "local"}
	if s, err := f.solana(); s != nil || err != nil {
		t.Fatalf("local: %+v, %v; want no Solana settings", s, err)
	}
}

// TestRun_LedgerSolanaServesTheProjectFromTheProgram: mu run --ledger
// solana against the in-process Solana endpoint sets up the dev market on
// the marketplace program, posts the stack with create_stack and serves
// it; a second run on the same chain finds the market and the stack there
// (unchanged on the ledger) and serves the data the first one wrote.
func TestRun_LedgerSolanaServesTheProjectFromTheProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm")
	}
	chain := solanatest.New(sol.MustPublicKeyFromBase58(solana.DefaultProgramID))
	chain.ChargeRent(true) // as a test validator: the project's keys need SOL
	if err := chain.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	dir, dataDir := todoProject(t), t.TempDir()
	flags := []string{"--ledger", "solana", "--rpc", chain.RPCURL(), "--ws", chain.WSURL()}

	url, indexer, stop := startRun(t, dir, dataDir, flags...)
	checkIndexer(t, indexer)
	if code, body := todoDo(t, "POST", url, `{"title": "milk", "done": false}`); code != 201 {
		t.Fatalf("POST: %d %s", code, body)
	}
	out := stop()
	for _, want := range []string{"revision 1 (created on the ledger)", "settling on the Solana program at " + chain.RPCURL(), "2 db writes"} {
		if !strings.Contains(out, want) {
			t.Fatalf("first run does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "ledger", "fee-payer.json")); err != nil {
		t.Fatalf("no fee payer kept in the data dir: %v", err)
	}

	url2, _, stop := startRun(t, dir, dataDir, flags...)
	if code, body := todoDo(t, "GET", url2, ""); code != 200 || body != `[{"title":"milk","done":false}]` {
		t.Fatalf("GET in the second run: %d %s", code, body)
	}
	if out := stop(); !strings.Contains(out, "revision 1 (unchanged on the ledger)") {
		t.Fatalf("second run on the same chain:\n%s", out)
	}
}
