package solana

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/gagliardetto/solana-go/rpc/jsonrpc"

	"github.com/muprotocol/mu/libs/ledger"
)

// FuzzRPCFailure feeds node error replies (their data member as JSON) to
// the failure parser and the mapping: whatever a node sends, the result
// is one of the ledger's sentinels and nothing panics.
func FuzzRPCFailure(f *testing.F) {
	for _, seed := range []string{
		`{"err":{"InstructionError":[1,{"Custom":0}]},"logs":["Program log: AnchorError. Error Message: x."]}`,
		`{"err":"BlockhashNotFound"}`,
		`{"err":{"InstructionError":[0,"MissingRequiredSignature"]}}`,
		`{"err":{"InsufficientFundsForRent":{"account_index":2}}}`,
		`{"err":{"InstructionError":["x",{"Custom":-1}]}}`,
		`null`, `[]`, `{"err":{"InstructionError":[99999999999,{"Custom":1e30}]}}`,
	} {
		f.Add(-32002, seed)
	}
	sentinels := []error{ledger.ErrNotFound, ledger.ErrAlreadyExists, ledger.ErrUnauthorizedProvider, ledger.ErrBadSigner,
		ledger.ErrInsufficientFunds, ledger.ErrStackDeleted, ledger.ErrInvalidArgument, ledger.ErrOverflow, ledger.ErrUnavailable}
	f.Fuzz(func(t *testing.T, code int, data string) {
		var d any
		dec := json.NewDecoder(strings.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&d) != nil {
			return
		}
		fl, ok := rpcFailure(&jsonrpc.RPCError{Code: code, Message: "m", Data: d})
		if !ok {
			return
		}
		m := errMap{kinds: []instrKind{kindSystem, kindToken, kindATA, kindMarketplace}}
		err := refusal("fuzz", m, fl)
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("%s maps to %v, no ledger sentinel", data, err)
	})
}
