package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/ledger/backend"
)

// ledgerFlags select the ledger of `mu run`: the local one (the default)
// or the Solana program (--ledger solana --rpc URL ...).
type ledgerFlags struct {
	backend, rpc, ws, programID, feePayer, commitment string
	cmd                                               *cobra.Command
}

func (f *ledgerFlags) register(cmd *cobra.Command) {
	f.cmd = cmd
	def := backend.DefaultSolana()
	fl := cmd.Flags()
	fl.StringVar(&f.backend, "ledger", "local", `the marketplace ledger: "local" (in the region's data dir) or "solana" (the marketplace program through --rpc)`)
	fl.StringVar(&f.rpc, "rpc", "", "with --ledger solana: the Solana node's JSON-RPC URL (http or https)")
	fl.StringVar(&f.ws, "ws", "", "with --ledger solana: the node's websocket URL (default: --rpc with ws(s) and the port one above)")
	fl.StringVar(&f.programID, "program-id", def.ProgramID, "with --ledger solana: the marketplace program's address (base58)")
	fl.StringVar(&f.feePayer, "fee-payer", "", "with --ledger solana: Solana JSON keypair file of the account paying the fees (default DIR/.mu/data/ledger/fee-payer.json, made once)")
	fl.StringVar(&f.commitment, "commitment", def.Commitment, "with --ledger solana: commitment of writes and reads (processed, confirmed or finalized)")
}

// solana returns the Solana backend's settings for --ledger solana, nil
// for the local ledger, or what is wrong with the flags.
func (f *ledgerFlags) solana() (*backend.Solana, error) {
	switch f.backend {
	case "local":
		for _, name := range []string{"rpc", "ws", "program-id", "fee-payer", "commitment"} {
			if f.cmd != nil && f.cmd.Flags().Changed(name) {
				return nil, fmt.Errorf("--%s is a setting of --ledger solana; the local ledger takes none", name)
			}
		}
		return nil, nil
	case "solana":
	default:
		return nil, fmt.Errorf(`--ledger %q: want "local" or "solana"`, f.backend)
	}
	if f.rpc == "" {
		return nil, fmt.Errorf("--ledger solana needs --rpc, the Solana node's JSON-RPC URL (solana-test-validator: http://127.0.0.1:8899)")
	}
	s := backend.DefaultSolana()
	s.RPCURL, s.WSURL, s.ProgramID, s.FeePayerKeypair, s.Commitment = f.rpc, f.ws, f.programID, f.feePayer, f.commitment
	check := s
	if check.FeePayerKeypair == "" {
		check.FeePayerKeypair = "fee-payer.json" // made by the region
	}
	if err := check.Validate(""); err != nil {
		return nil, fmt.Errorf("--ledger solana: %w (flags --rpc, --ws, --program-id, --fee-payer, --commitment)", err)
	}
	return &s, nil
}

// ledgerName names the ledger in messages.
func ledgerName(s *backend.Solana) string {
	if s == nil {
		return "local ledger"
	}
	return "Solana program at " + s.RPCURL
}
