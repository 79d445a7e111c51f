package solanatest

import (
	"encoding/json"
	"fmt"
)

// InstructionError is why an instruction failed, as the runtime names it: a
// ProgramError kind (Name, e.g. "MissingRequiredSignature") or a program's
// custom code (Custom, e.g. Anchor's 2006 ConstraintSeeds, SPL token's 1
// InsufficientFunds, the system program's 0 AccountAlreadyInUse).
type InstructionError struct {
	Name   string // the error kind when it is not a custom code
	Custom uint32
	// IsCustom says Custom is the error.
	IsCustom bool
	// Msg is the human text put in the transaction's logs.
	Msg string
}

func (e *InstructionError) Error() string {
	if e.IsCustom {
		return fmt.Sprintf("custom program error: 0x%x", e.Custom)
	}
	if e.Msg != "" {
		return e.Name + ": " + e.Msg
	}
	return e.Name
}

// value is the error's JSON form inside InstructionError: "Name" or {"Custom":N}.
func (e *InstructionError) value() any {
	if e.IsCustom {
		return map[string]uint32{"Custom": e.Custom}
	}
	return e.Name
}

func customErr(code uint32, msg string) *InstructionError {
	return &InstructionError{Custom: code, IsCustom: true, Msg: msg}
}

func progErr(name, msg string) *InstructionError {
	return &InstructionError{Name: name, Msg: msg}
}

// TransactionError is why a transaction failed, as a validator renders it in
// a status's err, in simulation results and in the data of a -32002 reply:
// either a bare kind ("BlockhashNotFound", "AlreadyProcessed",
// "InsufficientFundsForFee", "AccountNotFound", "SignatureFailure", ...) or
// {"InstructionError":[index, error]}.
type TransactionError struct {
	Kind string // the kind when Instruction is nil
	// Index is the failing instruction's index in the message (for a CPI, the
	// top-level instruction that made it).
	Index       int
	Instruction *InstructionError
}

func (e *TransactionError) Error() string {
	if e.Instruction != nil {
		return fmt.Sprintf("Error processing Instruction %d: %s", e.Index, e.Instruction.Error())
	}
	return txErrorText(e.Kind)
}

// CustomCode is the failing instruction's custom program error code; false if
// the transaction did not fail with one.
func (e *TransactionError) CustomCode() (uint32, bool) {
	if e == nil || e.Instruction == nil || !e.Instruction.IsCustom {
		return 0, false
	}
	return e.Instruction.Custom, true
}

// MarshalJSON renders the error as a validator does.
func (e *TransactionError) MarshalJSON() ([]byte, error) {
	return json.Marshal(e.value())
}

func (e *TransactionError) value() any {
	if e == nil {
		return nil
	}
	if e.Instruction != nil {
		return map[string][]any{"InstructionError": {e.Index, e.Instruction.value()}}
	}
	return e.Kind
}

func txErr(kind string) *TransactionError { return &TransactionError{Kind: kind} }

// txErrorText is the validator's text for a transaction-level error.
func txErrorText(kind string) string {
	switch kind {
	case "BlockhashNotFound":
		return "Blockhash not found"
	case "AlreadyProcessed":
		return "This transaction has already been processed"
	case "InsufficientFundsForFee":
		return "Insufficient funds for fee"
	case "AccountNotFound":
		return "Attempt to debit an account but found no record of a prior credit."
	case "SignatureFailure":
		return "Transaction did not pass signature verification"
	case "ProgramAccountNotFound":
		return "Attempt to load a program that does not exist"
	case "InvalidAccountIndex":
		return "Transaction contains an invalid account reference"
	case "AccountLoadedTwice":
		return "Account loaded twice"
	case "UnsupportedVersion":
		return "Transaction version is unsupported"
	}
	return kind
}

// JSON-RPC error codes a validator uses.
const (
	codeParse                 = -32700
	codeInvalidRequest        = -32600
	codeMethodNotFound        = -32601
	codeInvalidParams         = -32602
	codeInternal              = -32603
	codeSendPreflightFailure  = -32002
	codeSignatureVerification = -32003
	codeNodeUnhealthy         = -32005
	codeUnsupportedVersion    = -32015
)

// rpcError is the error member of a JSON-RPC reply.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

func invalidParams(format string, args ...any) *rpcError {
	return &rpcError{Code: codeInvalidParams, Message: "Invalid params: " + fmt.Sprintf(format, args...)}
}
