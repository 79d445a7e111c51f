package solana

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gagliardetto/solana-go/rpc/jsonrpc"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// failure is why a transaction failed, as a node reports it: in the data
// of a -32002 (preflight) reply, or in a signature status's err. Either
// Kind names a transaction-level error ("BlockhashNotFound",
// "SignatureFailure", ...) or Instruction >= 0 names the failing
// instruction and Custom / Name its error.
type failure struct {
	Kind        string
	Instruction int // -1 for a transaction-level error
	Custom      uint32
	IsCustom    bool
	Name        string // a non-custom instruction error ("MissingRequiredSignature")
	Logs        []string
}

func (f *failure) String() string {
	var b strings.Builder
	switch {
	case f.Instruction < 0:
		b.WriteString(f.Kind)
	case f.IsCustom:
		fmt.Fprintf(&b, "instruction %d: custom program error %d", f.Instruction, f.Custom)
		if n := errorName(f.Custom); n != "" {
			fmt.Fprintf(&b, " (%s)", n)
		}
	default:
		fmt.Fprintf(&b, "instruction %d: %s", f.Instruction, f.Name)
	}
	// The program's own message is the most telling log line.
	for _, l := range f.Logs {
		if strings.Contains(l, "Error Message:") || strings.Contains(l, "Error: ") {
			fmt.Fprintf(&b, "; %s", strings.TrimSpace(l))
			break
		}
	}
	return b.String()
}

// parseFailure reads a transaction error in the validator's JSON shape:
// "Kind" or {"InstructionError":[index, "Name" | {"Custom": n}]} (other
// objects, such as {"InsufficientFundsForRent":{...}}, by their key).
func parseFailure(v any, logs []string) *failure {
	f := &failure{Instruction: -1, Logs: logs}
	switch e := v.(type) {
	case string:
		f.Kind = e
	case map[string]any:
		if ie, ok := e["InstructionError"].([]any); ok && len(ie) == 2 {
			idx, ok := number(ie[0])
			if !ok {
				f.Kind = fmt.Sprint(e)
				return f
			}
			f.Instruction = int(idx)
			switch x := ie[1].(type) {
			case string:
				f.Name = x
			case map[string]any:
				if c, ok := number(x["Custom"]); ok {
					f.Custom, f.IsCustom = uint32(c), true
				} else {
					for k := range x {
						f.Name = k
					}
				}
			default:
				f.Name = fmt.Sprint(x)
			}
			return f
		}
		for k := range e {
			f.Kind = k
		}
	default:
		f.Kind = fmt.Sprint(v)
	}
	return f
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), n == float64(int64(n))
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

// JSON-RPC error codes of a Solana node.
const (
	rpcSendPreflightFailure  = -32002
	rpcSignatureVerification = -32003
)

// rpcFailure extracts the transaction failure from a node's JSON-RPC error
// reply, if it is one (-32002 with data.err, or -32003).
func rpcFailure(err error) (*failure, bool) {
	var re *jsonrpc.RPCError
	if !errors.As(err, &re) {
		return nil, false
	}
	switch re.Code {
	case rpcSignatureVerification:
		return &failure{Kind: "SignatureFailure", Instruction: -1}, true
	case rpcSendPreflightFailure:
		data, _ := re.Data.(map[string]any)
		var logs []string
		if ls, ok := data["logs"].([]any); ok {
			for _, l := range ls {
				if s, ok := l.(string); ok {
					logs = append(logs, s)
				}
			}
		}
		if e, ok := data["err"]; ok && e != nil {
			return parseFailure(e, logs), true
		}
		return &failure{Kind: re.Message, Instruction: -1, Logs: logs}, true
	}
	return nil, false
}

// Custom error codes of SPL token's TokenError and the system program
// that package marketplace does not name.
const (
	tokFixedSupply   = 5
	tokAlreadyInUse  = 6
	tokUninitialized = 9
	tokOverflow      = 14
)

// errorName names a marketplace program (or Anchor) error code.
func errorName(code uint32) string { return marketplace.ErrorCode(code).Name() }

// instrKind says which program an instruction of a transaction calls, so
// its custom codes can be read: they are each program's own.
type instrKind int

const (
	kindSystem instrKind = iota
	kindToken
	kindATA
	kindMarketplace
)

// errMap says what a write's failures mean: the ledger sentinel each
// ambiguous condition maps to for this write. A zero field takes the
// default named on it.
type errMap struct {
	// kinds is the program of each instruction of the transaction.
	kinds []instrKind
	// exists: an account to create is in use (system 0, Anchor's init).
	// Default ErrAlreadyExists.
	exists error
	// short: a token transfer lacks funds (SPL token 1). Default
	// ErrInsufficientFunds.
	short error
	// missing: an account the instruction reads does not exist (Anchor
	// 3012, or a discriminator that is not the account's). Default
	// ErrNotFound.
	missing error
}

// sentinel maps a transaction failure to the ledger sentinel it means.
func (m errMap) sentinel(f *failure) error {
	or := func(e, def error) error {
		if e != nil {
			return e
		}
		return def
	}
	if f.Instruction < 0 {
		switch f.Kind {
		case "SignatureFailure", "MissingSignatureForFee":
			return ledger.ErrBadSigner
		case "AlreadyProcessed":
			return ledger.ErrAlreadyExists
		}
		// InsufficientFundsForFee, AccountNotFound (the fee payer has no
		// SOL), BlockhashNotFound past retries, node trouble: the operator
		// must act; the write may be retried.
		return ledger.ErrUnavailable
	}
	kind := kindMarketplace
	if f.Instruction < len(m.kinds) {
		kind = m.kinds[f.Instruction]
	}
	if !f.IsCustom {
		switch f.Name {
		case "MissingRequiredSignature", "IllegalOwner":
			return ledger.ErrBadSigner
		case "InvalidAccountData", "UninitializedAccount", "AccountNotFound", "InvalidAccountOwner", "IncorrectProgramId":
			return or(m.missing, ledger.ErrNotFound)
		case "InsufficientFunds":
			return or(m.short, ledger.ErrInsufficientFunds)
		case "ArithmeticOverflow":
			return ledger.ErrOverflow
		case "AccountAlreadyInitialized":
			return or(m.exists, ledger.ErrAlreadyExists)
		}
		return ledger.ErrInvalidArgument
	}
	switch kind {
	case kindSystem:
		switch f.Custom {
		case marketplace.SystemErrorAccountAlreadyInUse:
			return or(m.exists, ledger.ErrAlreadyExists)
		case marketplace.SystemErrorResultWithNegativeLamports:
			return ledger.ErrUnavailable // the fee payer's SOL
		}
		return ledger.ErrInvalidArgument
	case kindToken, kindATA:
		switch f.Custom {
		case marketplace.TokenErrorInsufficientFunds:
			return or(m.short, ledger.ErrInsufficientFunds)
		case marketplace.TokenErrorOwnerMismatch:
			return ledger.ErrBadSigner
		case tokOverflow:
			return ledger.ErrOverflow
		case tokFixedSupply:
			return ledger.ErrBadSigner // the mint has no mint authority
		case tokAlreadyInUse:
			return or(m.exists, ledger.ErrAlreadyExists)
		case tokUninitialized:
			return or(m.missing, ledger.ErrNotFound)
		}
		return ledger.ErrInvalidArgument
	}
	// The marketplace program: its own codes, Anchor's, and those of the
	// system and token programs it calls (a CPI's error is reported as the
	// calling instruction's).
	switch f.Custom {
	case marketplace.SystemErrorAccountAlreadyInUse:
		return or(m.exists, ledger.ErrAlreadyExists)
	case marketplace.TokenErrorInsufficientFunds:
		return or(m.short, ledger.ErrInsufficientFunds)
	case marketplace.TokenErrorOwnerMismatch:
		return ledger.ErrBadSigner
	case tokOverflow:
		return ledger.ErrOverflow
	}
	switch marketplace.ErrorCode(f.Custom) {
	case marketplace.ErrorConstraintHasOne, marketplace.ErrorConstraintSigner, marketplace.ErrorConstraintSeeds,
		marketplace.ErrorConstraintTokenOwner, marketplace.ErrorAccountNotSigner:
		return ledger.ErrBadSigner
	case marketplace.ErrorAccountNotInitialized, marketplace.ErrorAccountDiscriminatorNotFound,
		marketplace.ErrorAccountDiscriminatorMismatch, marketplace.ErrorAccountOwnedByWrongProgram:
		return or(m.missing, ledger.ErrNotFound)
	case marketplace.ErrorProviderNotAuthorized:
		return ledger.ErrUnauthorizedProvider
	case marketplace.ErrorCommissionRateOutOfBounds:
		return ledger.ErrInvalidArgument
	case marketplace.ErrorCannotOperateOnDeletedStack:
		return ledger.ErrStackDeleted
	}
	return ledger.ErrInvalidArgument
}

// refusal is the error of a write the chain refused: the sentinel wrapped
// with the operation and the chain's account of why.
func refusal(op string, m errMap, f *failure) error {
	return fmt.Errorf("ledger/solana: %s: %w: the chain refused the transaction: %s", op, m.sentinel(f), f)
}

// fail is an error of op matching sentinel, with detail.
func fail(op string, sentinel error, format string, args ...any) error {
	return fmt.Errorf("ledger/solana: %s: %w: %s", op, sentinel, fmt.Sprintf(format, args...))
}

// unavailable wraps a transport or node error of op as ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("ledger/solana: %s: %w: %w", op, ledger.ErrUnavailable, err)
}
