package solana

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/programs/system"
	"github.com/gagliardetto/solana-go/rpc"
	"github.com/gagliardetto/solana-go/rpc/jsonrpc"

	"github.com/muprotocol/mu/libs/ledger"
)

// scripted is a JSON-RPC client that answers the sender's calls from a
// script, recording what was sent. It stands in for a node so the
// sender's retry rules can be driven exactly.
type scripted struct {
	mu sync.Mutex
	// sendErrs are returned by successive sendTransaction calls (nil:
	// accept). A transportLanded error is returned after landing the
	// transaction, as a reply lost on the way back.
	sendErrs []error
	// landAfter lands an accepted transaction after this many status polls
	// (-1: never).
	landAfter int
	// statusErr is put in the status of a landed transaction.
	statusErr any
	// validHashes says isBlockhashValid; a hash not in it is expired.
	valid map[sol.Hash]bool

	hashes  int
	sent    []sol.Signature
	polls   map[sol.Signature]int
	landed  map[sol.Signature]uint64
	slot    uint64
	pending map[sol.Signature]bool
}

var errTransportLanded = errors.New("connection reset after the node took it")

func newScripted() *scripted {
	return &scripted{valid: map[sol.Hash]bool{}, polls: map[sol.Signature]int{}, landed: map[sol.Signature]uint64{},
		pending: map[sol.Signature]bool{}, slot: 10}
}

func (s *scripted) CallWithCallback(context.Context, string, []any, func(*http.Request, *http.Response) error) error {
	return errors.New("not scripted")
}

func (s *scripted) CallBatch(context.Context, jsonrpc.RPCRequests) (jsonrpc.RPCResponses, error) {
	return nil, errors.New("not scripted")
}

func (s *scripted) CallForInto(ctx context.Context, out any, method string, params []any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var result any
	switch method {
	case "getLatestBlockhash":
		s.hashes++
		h := sol.Hash(sha256.Sum256([]byte(fmt.Sprint("hash", s.hashes))))
		s.valid[h] = true
		result = map[string]any{"context": map[string]any{"slot": s.slot}, "value": map[string]any{"blockhash": h.String(), "lastValidBlockHeight": 100}}
	case "sendTransaction":
		raw := params[0].(string)
		tx, err := sol.TransactionFromBase64(raw)
		if err != nil {
			return err
		}
		sig := tx.Signatures[0]
		s.sent = append(s.sent, sig)
		var e error
		if len(s.sendErrs) > 0 {
			e, s.sendErrs = s.sendErrs[0], s.sendErrs[1:]
		}
		if e != nil && !errors.Is(e, errTransportLanded) {
			return e
		}
		if _, ok := s.landed[sig]; ok {
			return &jsonrpc.RPCError{Code: -32002, Message: "Transaction simulation failed: This transaction has already been processed",
				Data: map[string]any{"err": "AlreadyProcessed", "logs": []any{}}}
		}
		s.pending[sig] = true
		if errors.Is(e, errTransportLanded) {
			s.land(sig)
			return e
		}
		result = sig.String()
	case "getSignatureStatuses":
		sig := params[0].([]sol.Signature)[0]
		s.polls[sig]++
		if s.pending[sig] && s.landAfter >= 0 && s.polls[sig] > s.landAfter {
			s.land(sig)
		}
		var st any
		if slot, ok := s.landed[sig]; ok {
			st = map[string]any{"slot": slot, "confirmations": nil, "err": s.statusErr, "confirmationStatus": "finalized", "status": map[string]any{"Ok": nil}}
		}
		result = map[string]any{"context": map[string]any{"slot": s.slot}, "value": []any{st}}
	case "isBlockhashValid":
		h := params[0].(sol.Hash)
		result = map[string]any{"context": map[string]any{"slot": s.slot}, "value": s.valid[h]}
	default:
		return fmt.Errorf("method %s not scripted", method)
	}
	b, _ := json.Marshal(result)
	return json.Unmarshal(b, out)
}

func (s *scripted) land(sig sol.Signature) {
	delete(s.pending, sig)
	s.slot++
	s.landed[sig] = s.slot
}

func (s *scripted) expireAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h := range s.valid {
		s.valid[h] = false
	}
}

func testSender(t *testing.T, node *scripted) (*sender, *ledger.Keypair) {
	t.Helper()
	payer := seeded("fee-payer")
	cfg := DefaultConfig()
	cfg.ConfirmPoll = time.Millisecond
	cfg.RetryInitial = time.Millisecond
	cfg.RetryMax = 2 * time.Millisecond
	return &sender{rpc: rpc.NewWithCustomRPCClient(node), payer: payer, cfg: cfg, commitment: rpc.CommitmentConfirmed}, payer
}

func seeded(name string) *ledger.Keypair {
	seed := sha256.Sum256([]byte("solana-test/" + name))
	k, err := ledger.KeypairFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

// transferTxn moves lamports from one signer: a transaction with one
// signer besides the fee payer.
func transferTxn(from ledger.Signer) txn {
	t := txn{op: "test transfer", signers: []ledger.Signer{from}}
	t.add(kindSystem, system.NewTransferInstruction(1, solKey(from.Pubkey()), solKey(seeded("to").Pubkey())).Build())
	return t
}

func TestSender_RetriesTransportErrorsWithTheSameSignature(t *testing.T) {
	node := newScripted()
	node.sendErrs = []error{errors.New("connection refused"), errors.New("connection refused")}
	s, _ := testSender(t, node)
	l, err := s.send(t.Context(), transferTxn(seeded("alice")))
	if err != nil {
		t.Fatal(err)
	}
	if len(node.sent) != 3 || node.sent[0] != node.sent[2] || node.hashes != 1 {
		t.Fatalf("sent %v with %d blockhashes: want one signature sent 3 times", node.sent, node.hashes)
	}
	if len(node.landed) != 1 || l.slot != node.landed[l.sig] {
		t.Fatalf("landed %v, result %+v", node.landed, l)
	}
}

func TestSender_LostReplyIsConfirmedNotResigned(t *testing.T) {
	node := newScripted()
	node.sendErrs = []error{errTransportLanded}
	s, _ := testSender(t, node)
	l, err := s.send(t.Context(), transferTxn(seeded("alice")))
	if err != nil {
		t.Fatal(err)
	}
	// The retry sends the same bytes, the node says AlreadyProcessed, and
	// the sender confirms the one landing.
	if len(node.landed) != 1 || node.hashes != 1 || l.sig != node.sent[0] {
		t.Fatalf("landed %v after %d blockhashes, result %+v", node.landed, node.hashes, l)
	}
}

func TestSender_ExpiredBlockhashIsResignedAfterCheckingTheOldSignature(t *testing.T) {
	node := newScripted()
	node.landAfter = -1 // the first signature never lands
	s, _ := testSender(t, node)
	done := make(chan struct{})
	var l landed
	var err error
	go func() {
		defer close(done)
		l, err = s.send(t.Context(), transferTxn(seeded("alice")))
	}()
	// Wait until the first signature was polled, then expire its blockhash
	// and let later signatures land.
	for {
		node.mu.Lock()
		n := len(node.sent)
		var polled int
		if n > 0 {
			polled = node.polls[node.sent[0]]
		}
		node.mu.Unlock()
		if polled > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	node.mu.Lock()
	node.landAfter = 0
	first := node.sent[0]
	delete(node.pending, first) // the network dropped it: it can never land
	node.mu.Unlock()
	node.expireAll()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if l.sig == first || node.hashes != 2 {
		t.Fatalf("result %+v after %d blockhashes: want a new signature with a fresh blockhash", l, node.hashes)
	}
	if node.polls[first] < 2 {
		t.Fatalf("the expired signature was polled %d times: want a last look after expiry", node.polls[first])
	}
	if _, ok := node.landed[first]; ok || len(node.landed) != 1 {
		t.Fatalf("landed %v", node.landed)
	}
}

func TestSender_PreflightRefusalIsMappedPerInstruction(t *testing.T) {
	for _, c := range []struct {
		name string
		err  any
		m    errMap
		want error
	}{
		{"token short in a recharge", map[string]any{"InstructionError": []any{0, map[string]any{"Custom": 1}}},
			errMap{kinds: []instrKind{kindToken}}, ledger.ErrInsufficientFunds},
		{"token short in a withdrawal", map[string]any{"InstructionError": []any{0, map[string]any{"Custom": 1}}},
			errMap{kinds: []instrKind{kindMarketplace}, short: ledger.ErrInsufficientEscrow}, ledger.ErrInsufficientEscrow},
		{"init of a used seed", map[string]any{"InstructionError": []any{1, map[string]any{"Custom": 0}}},
			errMap{kinds: []instrKind{kindATA, kindMarketplace}, exists: ledger.ErrReplayedSeed}, ledger.ErrReplayedSeed},
		{"has_one", map[string]any{"InstructionError": []any{0, map[string]any{"Custom": 2001}}},
			errMap{kinds: []instrKind{kindMarketplace}}, ledger.ErrBadSigner},
		{"deleted stack", map[string]any{"InstructionError": []any{0, map[string]any{"Custom": 6002}}},
			errMap{kinds: []instrKind{kindMarketplace}}, ledger.ErrStackDeleted},
		{"not authorized", map[string]any{"InstructionError": []any{0, map[string]any{"Custom": 6000}}},
			errMap{kinds: []instrKind{kindMarketplace}}, ledger.ErrUnauthorizedProvider},
		{"mint overflow", map[string]any{"InstructionError": []any{0, map[string]any{"Custom": 14}}},
			errMap{kinds: []instrKind{kindToken}}, ledger.ErrOverflow},
		{"missing signature", map[string]any{"InstructionError": []any{0, "MissingRequiredSignature"}},
			errMap{kinds: []instrKind{kindMarketplace}}, ledger.ErrBadSigner},
		{"fee payer without SOL", "InsufficientFundsForFee", errMap{}, ledger.ErrUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			node := newScripted()
			node.sendErrs = []error{&jsonrpc.RPCError{Code: -32002, Message: "Transaction simulation failed",
				Data: map[string]any{"err": c.err, "logs": []any{"Program log: AnchorError occurred. Error Message: it failed."}}}}
			s, _ := testSender(t, node)
			tx := transferTxn(seeded("alice"))
			tx.errs = c.m
			_, err := s.send(t.Context(), tx)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if len(node.landed) != 0 || len(node.sent) != 1 {
				t.Fatalf("sent %d, landed %v", len(node.sent), node.landed)
			}
		})
	}
}

func TestSender_NodeSignatureFailureIsBadSigner(t *testing.T) {
	node := newScripted()
	node.sendErrs = []error{&jsonrpc.RPCError{Code: -32003, Message: "Transaction signature verification failure"}}
	s, _ := testSender(t, node)
	if _, err := s.send(t.Context(), transferTxn(seeded("alice"))); !errors.Is(err, ledger.ErrBadSigner) {
		t.Fatalf("error %v, want ErrBadSigner", err)
	}
}

func TestSender_LandedFailureIsRefusal(t *testing.T) {
	node := newScripted()
	node.statusErr = map[string]any{"InstructionError": []any{0, map[string]any{"Custom": 6002}}}
	s, _ := testSender(t, node)
	tx := transferTxn(seeded("alice"))
	tx.errs.kinds = []instrKind{kindMarketplace}
	if _, err := s.send(t.Context(), tx); !errors.Is(err, ledger.ErrStackDeleted) {
		t.Fatalf("error %v, want ErrStackDeleted", err)
	}
}

type lying struct{ claims, signs *ledger.Keypair }

func (l lying) Pubkey() ledger.Pubkey              { return l.claims.Pubkey() }
func (l lying) Sign(msg []byte) ([]byte, error)    { return l.signs.Sign(msg) }
func (l brokenSigner) Pubkey() ledger.Pubkey       { return l.k.Pubkey() }
func (l brokenSigner) Sign([]byte) ([]byte, error) { return nil, errors.New("HSM offline") }

type brokenSigner struct{ k *ledger.Keypair }

func TestSender_BadSignersNeverReachTheNode(t *testing.T) {
	for name, sg := range map[string]ledger.Signer{
		"liar":   lying{claims: seeded("alice"), signs: seeded("mallory")},
		"broken": brokenSigner{seeded("alice")},
	} {
		t.Run(name, func(t *testing.T) {
			node := newScripted()
			s, _ := testSender(t, node)
			if _, err := s.send(t.Context(), transferTxn(sg)); !errors.Is(err, ledger.ErrBadSigner) {
				t.Fatalf("error %v, want ErrBadSigner", err)
			}
			if len(node.sent) != 0 {
				t.Fatalf("sent %d transactions", len(node.sent))
			}
		})
	}
}

func TestSender_UnconfirmedByTheDeadlineIsUnavailable(t *testing.T) {
	node := newScripted()
	node.landAfter = -1
	s, _ := testSender(t, node)
	s.cfg.ConfirmTimeout = 20 * time.Millisecond
	_, err := s.send(t.Context(), transferTxn(seeded("alice")))
	if !errors.Is(err, ledger.ErrUnavailable) || !strings.Contains(err.Error(), "may still land") {
		t.Fatalf("error %v, want ErrUnavailable saying it may still land", err)
	}
}

func TestSender_OversizedTransactionIsInvalidArgument(t *testing.T) {
	node := newScripted()
	s, _ := testSender(t, node)
	tx := transferTxn(seeded("alice"))
	tx.add(kindMarketplace, sol.NewInstruction(solKey(seeded("program").Pubkey()), nil, make([]byte, 2000)))
	if _, err := s.send(t.Context(), tx); !errors.Is(err, ledger.ErrInvalidArgument) {
		t.Fatalf("error %v, want ErrInvalidArgument", err)
	}
}

func TestRetry_GivesUpAfterMaxRetries(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RetryInitial, cfg.RetryMax, cfg.MaxRetries = time.Millisecond, time.Millisecond, 3
	calls := 0
	err := retry(context.Background(), cfg, "probe", func(context.Context) error { calls++; return errors.New("down") })
	if !errors.Is(err, ledger.ErrUnavailable) || calls != 4 {
		t.Fatalf("error %v after %d calls, want ErrUnavailable after 4", err, calls)
	}
	calls = 0
	err = retry(context.Background(), cfg, "probe", func(context.Context) error {
		calls++
		return &jsonrpc.RPCError{Code: -32602, Message: "Invalid params"}
	})
	if errors.Is(err, ledger.ErrUnavailable) || calls != 1 {
		t.Fatalf("a node's refusal was retried: %v after %d calls", err, calls)
	}
}
