package cmd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sol "github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/ledger/solana"
	"github.com/muprotocol/mu/libs/ledger/solana/solanatest"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/billing"
)

// solanaRegion is a region whose ledger is the marketplace program on the
// in-process Solana endpoint, and a profile "sol" naming it with the
// developer's keypair.
type solanaRegion struct {
	chain  *solanatest.Chain
	r      *region.Region
	keyDir string
}

func startSolanaRegion(t *testing.T) *solanaRegion {
	t.Helper()
	chain := solanatest.New(sol.MustPublicKeyFromBase58(solana.DefaultProgramID))
	chain.ChargeRent(true) // as a cluster: the developer's key pays its stack account's rent
	if err := chain.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	s := backend.DefaultSolana()
	s.RPCURL, s.WSURL, s.ProgramID = chain.RPCURL(), chain.WSURL(), chain.ProgramID().String()
	// A cut websocket is seen again only after this (the test makes the
	// indexer lag with it).
	s.RetryInitial, s.RetryMax = 3*time.Second, 3*time.Second
	r, err := region.Start(context.Background(), region.Options{
		DataDir: t.TempDir(),
		Mudb:    &region.MudbOptions{},
		Storage: &region.StorageOptions{},
		Ledger: &region.LedgerOptions{Solana: &s, Market: func(s *region.MarketSettings) {
			s.Region.MinEscrowBalance = 1_000
			s.Escrow = 5_000
		}},
		Billing: &region.BillingOptions{Config: func(c *billing.Config) { c.SettleInterval = time.Hour }},
		Runtime: &region.RuntimeOptions{},
		Gateway: &region.GatewayOptions{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &solanaRegion{chain: chain, r: r, keyDir: t.TempDir()}
}

// profile writes profile name for the region with the given extra keys,
// signing with the market's developer key.
func (sr *solanaRegion) profile(t *testing.T, name string, keys ...string) {
	t.Helper()
	key := filepath.Join(sr.keyDir, name+".json")
	if err := ledger.SaveKeypair(key, sr.r.Market().Keys.Developer); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"config", "set", name,
		"gateway=http://" + sr.r.Gateway().Addr(), "storage=" + sr.r.Storage().URL(),
		"indexer=" + sr.r.ChainIndexer().Addr(), "billing=" + sr.r.Billing().Addr(),
		"ledger_backend=solana", "keypair=" + key}, keys...)
	if code, _, stderr := run(t, "", args...); code != ExitOK {
		t.Fatalf("mu %v: exit %d: %s", args, code, stderr)
	}
}

// TestSolana_DeployAndEscrowSignTheirOwnTransactions: with a profile whose
// ledger is a Solana node, mu deploy creates the stack on the program with
// a transaction the developer's key signs and pays for, the chain-indexer
// serves it, and the gateway answers its endpoint; mu escrow recharge moves
// tokens on the program (the fees paid by fee_payer's key) and ends only once the indexer has it (its feed cut
// off for seconds), so the next command (mu escrow view) sees the new
// balance; mu stack delete deletes it on the program. The developer's
// airdrop is a slot the indexer never sees: the commands do not wait for it.
func TestSolana_DeployAndEscrowSignTheirOwnTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm")
	}
	t.Setenv("MU_CONFIG_DIR", t.TempDir())
	sr := startSolanaRegion(t)
	mk := sr.r.Market()
	dev := mk.Keys.Developer.Pubkey()
	if _, err := sr.chain.Airdrop(sol.PublicKeyFromBytes(dev.Bytes()), 10_000_000_000); err != nil {
		t.Fatal(err)
	}
	sr.profile(t, "sol", "ledger_addr="+sr.chain.RPCURL(), "ledger_ws_url="+sr.chain.WSURL())

	dir := filepath.Join(t.TempDir(), "greeter")
	sdk, _ := filepath.Abs("../../../sdk/go")
	if code, _, stderr := run(t, "", "init", dir, "--sdk-dir", sdk); code != ExitOK {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	before, _ := sr.chain.Account(sol.PublicKeyFromBytes(dev.Bytes()))
	code, stdout, stderr := run(t, "", "deploy", dir, "--profile", "sol", "--timeout", "30s")
	if code != ExitOK {
		t.Fatalf("deploy: exit %d:\n%s", code, stderr)
	}
	wantIn(t, "deploy's stderr", stderr, "revision 1 created", "served in")

	// The stack is on the program, the developer's, revision 1.
	all, err := sr.r.Ledger().Stacks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var mine []ledger.Stack
	for _, st := range all {
		if st.Owner == dev {
			mine = append(mine, st)
		}
	}
	if len(mine) != 1 || mine[0].Revision != 1 {
		t.Fatalf("the developer's stacks on the program: %+v; want one at revision 1", mine)
	}
	if id := ids.StackID(mine[0].ID); !strings.Contains(stderr, "stack "+id.String()) {
		t.Fatalf("deploy did not report stack %s:\n%s", id, stderr)
	}
	after, _ := sr.chain.Account(sol.PublicKeyFromBytes(dev.Bytes()))
	if after.Lamports >= before.Lamports {
		t.Fatalf("the developer's lamports went %d → %d: its key did not pay the create_stack transaction", before.Lamports, after.Lamports)
	}

	// The gateway serves it.
	url := strings.TrimSpace(strings.Split(strings.TrimSpace(stdout), "\n")[0])
	url = strings.Replace(url, "{name}", "sol", 1)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}

	// Escrow: recharge on the program, then the indexer's view has it.
	ctx := context.Background()
	if err := sr.r.Ledger().Mint(ctx, mk.Keys.Authority, dev, 100_000); err != nil {
		t.Fatal(err)
	}
	e0, err := sr.r.Ledger().Escrow(ctx, dev, mk.Provider.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Another key pays the fees when fee_payer names it.
	payer, err := ledger.GenerateKeypair()
	if err != nil {
		t.Fatal(err)
	}
	payerFile := filepath.Join(sr.keyDir, "payer.json")
	if err := ledger.SaveKeypair(payerFile, payer); err != nil {
		t.Fatal(err)
	}
	payerKey := sol.PublicKeyFromBytes(payer.Pubkey().Bytes())
	if _, err := sr.chain.Airdrop(payerKey, 1_000_000_000); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "", "config", "set", "sol", "fee_payer="+payerFile); code != ExitOK {
		t.Fatal(stderr)
	}
	devBefore, _ := sr.chain.Account(sol.PublicKeyFromBytes(dev.Bytes()))
	sr.chain.DisconnectWebsockets() // the indexer's feed reconnects after retry_initial and resyncs
	if code, out, stderr := run(t, "", "escrow", "recharge", mk.Provider.Name, "2500", "--profile", "sol"); code != ExitOK {
		t.Fatalf("escrow recharge: exit %d: %s%s", code, out, stderr)
	}
	devAfter, _ := sr.chain.Account(sol.PublicKeyFromBytes(dev.Bytes()))
	if payerAfter, _ := sr.chain.Account(payerKey); payerAfter.Lamports >= 1_000_000_000 || devAfter.Lamports != devBefore.Lamports {
		t.Fatalf("with fee_payer: the payer's lamports 1000000000 → %d, the developer's %d → %d; want the payer alone to pay", payerAfter.Lamports, devBefore.Lamports, devAfter.Lamports)
	}
	// The command ended once the indexer had its write.
	er, err := sr.r.ChainIndexer().Client().ListEscrows(ctx, &chainindexerv1.ListEscrowsRequest{Developer: dev.Bytes(), ProviderId: mk.Provider.ID.Bytes()})
	if err != nil || len(er.GetEscrows()) != 1 || er.GetEscrows()[0].GetBalance() != e0.Balance+2500 {
		t.Fatalf("the indexer's escrows when mu escrow recharge returned: %v, %v; want one of balance %d", er.GetEscrows(), err, e0.Balance+2500)
	}
	if e, err := sr.r.Ledger().Escrow(ctx, dev, mk.Provider.ID); err != nil || e.Balance != e0.Balance+2500 {
		t.Fatalf("escrow on the program after the recharge: %+v, %v; want balance %d", e, err, e0.Balance+2500)
	}
	code, out, stderr := run(t, "", "escrow", "view", mk.Provider.Name, "--profile", "sol", "-o", "json")
	if code != ExitOK {
		t.Fatalf("escrow view: exit %d: %s", code, stderr)
	}
	var v escrowJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("escrow view: %v\n%s", err, out)
	}
	if v.Balance != e0.Balance+2500 {
		t.Fatalf("escrow view after the recharge: balance %d, want %d (the indexer had not applied the recharge)", v.Balance, e0.Balance+2500)
	}

	// mu stack delete: delete_stack on the program, and the gateway stops.
	id := ids.StackID(mine[0].ID)
	code, out, stderr = run(t, "", "stack", "delete", id.String(), "--yes", "--profile", "sol")
	if code != ExitOK {
		t.Fatalf("stack delete: exit %d: %s%s", code, out, stderr)
	}
	wantIn(t, "stack delete's output", out, "deleted on the ledger", "the gateway no longer serves it")
	if st, err := sr.r.Ledger().Stack(ctx, mine[0].ID); err != nil || st.State != ledger.StackDeleted {
		t.Fatalf("the stack on the program after mu stack delete: %+v, %v; want deleted", st, err)
	}
}

// TestSolana_ProfileSettingsAreCheckedAndNamed: a Solana profile without
// ledger_addr, with a bad commitment or program id, or with a node that
// does not answer fails before any write, naming the setting and where it
// came from.
func TestSolana_ProfileSettingsAreCheckedAndNamed(t *testing.T) {
	t.Setenv("MU_CONFIG_DIR", t.TempDir())
	keys := t.TempDir()
	key := filepath.Join(keys, "id.json")
	k, err := ledger.GenerateKeypair()
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.SaveKeypair(key, k); err != nil {
		t.Fatal(err)
	}
	base := []string{"indexer=127.0.0.1:1", "ledger_backend=solana", "keypair=" + key}
	cases := []struct {
		name string
		keys []string
		want []string
	}{
		{"noaddr", nil, []string{"ledger_backend solana (from profile noaddr) needs the Solana node's JSON-RPC URL", "ledger_addr=URL"}},
		{"commit", []string{"ledger_addr=http://127.0.0.1:1", "ledger_commitment=soon"}, []string{"commitment", `"soon"`, "from profile commit"}},
		{"prog", []string{"ledger_addr=http://127.0.0.1:1", "ledger_program_id=0OIl"}, []string{"program_id", "0OIl (from profile prog)"}},
		{"scheme", []string{"ledger_addr=127.0.0.1:8899"}, []string{"rpc_url", "127.0.0.1:8899 (from profile scheme)"}},
		{"payer", []string{"ledger_addr=http://127.0.0.1:1", "fee_payer=" + filepath.Join(keys, "none.json")}, []string{"the fee payer", "none.json (from profile payer)"}},
		{"down", []string{"ledger_addr=http://127.0.0.1:1"}, []string{"the Solana node at http://127.0.0.1:1 (from profile down, key ledger_addr) is unreachable"}},
	}
	for _, c := range cases {
		args := append(append([]string{"config", "set", c.name}, base...), c.keys...)
		if code, _, stderr := run(t, "", args...); code != ExitOK {
			t.Fatalf("mu %v: exit %d: %s", args, code, stderr)
		}
		code, _, stderr := run(t, "", "escrow", "recharge", "someone", "5", "--profile", c.name, "--timeout", "5s")
		if code != ExitUsage {
			t.Errorf("%s: exit %d, want %d: %s", c.name, code, ExitUsage, stderr)
		}
		wantIn(t, c.name+"'s error", stderr, c.want...)
	}
	// A flag overrides the profile and is named as the source.
	code, _, stderr := run(t, "", "escrow", "recharge", "someone", "5", "--profile", "noaddr", "--ledger-addr", "http://127.0.0.1:1", "--timeout", "5s")
	if code != ExitUsage {
		t.Errorf("--ledger-addr: exit %d: %s", code, stderr)
	}
	wantIn(t, "--ledger-addr's error", stderr, "the Solana node at http://127.0.0.1:1 (from --ledger-addr) is unreachable")
}
