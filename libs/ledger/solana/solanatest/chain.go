// Package solanatest is a Solana cluster in one Go value, for tests: a bank of
// accounts that executes transactions (the system program, SPL token, the
// associated token account program and the mu marketplace program with the
// program's own checks), served over real HTTP JSON-RPC and websocket on
// 127.0.0.1 in the shapes solana-go's rpc and rpc/ws clients expect.
//
// What it keeps of a validator:
//   - every required signature is verified, the recent blockhash must be one it
//     issued within the last MaxBlockhashAge slots, a signature is processed once;
//   - the fee payer pays FeePerSignature lamports per signature;
//   - instructions run in order on a copy of the touched accounts; a failing
//     transaction changes nothing. sendTransaction with preflight (the default)
//     refuses a failing transaction with -32002 and charges nothing; with
//     skipPreflight a failing transaction lands in a slot, its status carries the
//     error and its fee is charged (the validator's rule);
//   - the runtime's account rules: only writable accounts change, only the owner
//     program changes an account's data or owner or debits its lamports;
//   - one slot, and one new blockhash, per applied transaction (airdrops included).
//
// What it leaves out by default: rent. Accounts a program creates (Anchor's
// init, the associated token account program) receive the rent-exempt minimum
// without debiting the payer, so instruction payers need no SOL beyond what
// they move explicitly; a system CreateAccount moves exactly the lamports it
// names. ChargeRent turns the payer's debit on. Rent exemption itself is never
// checked. Address
// lookup tables (v0 messages) are refused. Commitment levels are all the same:
// every applied transaction is immediately finalized.
//
// A Chain is safe for concurrent use.
package solanatest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gagliardetto/solana-go"
)

const (
	// FeePerSignature is the lamports a transaction's fee payer pays per signature.
	FeePerSignature = 5000
	// MaxBlockhashAge is how many slots a blockhash stays valid after the slot
	// that issued it (a validator's MAX_PROCESSING_AGE).
	MaxBlockhashAge = 150
	// rentLamportsPerByteYear and rentExemptionYears give the validator's
	// rent-exempt minimum, (128 + size) * 3480 * 2.
	rentLamportsPerByteYear = 3480
	rentExemptionYears      = 2
	accountStorageOverhead  = 128
	// maxAccountDataLen is the system program's limit on an account's size.
	maxAccountDataLen = 10 * 1024 * 1024
	// coreVersion is what getVersion reports.
	coreVersion = "1.18.26-solanatest"
	// readHeaderTimeout bounds a request's headers; shutdownTimeout bounds
	// Close's wait for requests in flight.
	readHeaderTimeout = 10 * time.Second
	shutdownTimeout   = 5 * time.Second
)

// Account is one account of the bank.
type Account struct {
	Lamports   uint64
	Owner      solana.PublicKey
	Data       []byte
	Executable bool
}

func (a *Account) clone() *Account {
	if a == nil {
		return nil
	}
	c := *a
	c.Data = append([]byte(nil), a.Data...)
	return &c
}

// exists says whether the account is live: a validator drops accounts that hold
// no lamports.
func (a *Account) exists() bool { return a != nil && a.Lamports > 0 }

// RentExemptMinimum is the lamports that make an account of size bytes
// rent-exempt, as getMinimumBalanceForRentExemption reports it.
func RentExemptMinimum(size uint64) uint64 {
	return (accountStorageOverhead + size) * rentLamportsPerByteYear * rentExemptionYears
}

// txRecord is what the chain remembers of a processed transaction.
type txRecord struct {
	slot  uint64
	err   *TransactionError
	logs  []string
	fee   uint64
	raw   []byte
	isTx  bool // false for airdrops, which have no transaction bytes
	stamp time.Time
}

// Chain is the in-process cluster. Make one with New, Start it, Close it.
type Chain struct {
	programID solana.PublicKey

	mu         sync.Mutex
	accounts   map[solana.PublicKey]*Account
	slot       uint64
	blockhash  solana.Hash
	hashSlot   map[solana.Hash]uint64 // blockhash -> slot that issued it
	expiredTo  uint64                 // blockhashes issued at slots < expiredTo are invalid
	statuses   map[solana.Signature]*txRecord
	faults     []sendFault
	sends      int
	chargeRent bool
	airdropSeq uint64

	subs *subscriptions

	srv      *http.Server
	ln       net.Listener
	rpcURL   string
	wsURL    string
	started  bool
	closed   bool
	closeErr error
	serveWG  sync.WaitGroup
}

// New makes a chain whose marketplace program has programID, with the system,
// SPL token, associated token account and marketplace programs deployed, the
// rent sysvar present and one slot made (its blockhash is the first one).
func New(programID solana.PublicKey) *Chain {
	c := &Chain{
		programID: programID,
		accounts:  map[solana.PublicKey]*Account{},
		hashSlot:  map[solana.Hash]uint64{},
		statuses:  map[solana.Signature]*txRecord{},
	}
	c.subs = newSubscriptions(c)
	for _, p := range []solana.PublicKey{solana.SystemProgramID, solana.TokenProgramID, solana.SPLAssociatedTokenAccountProgramID, solana.ComputeBudget, programID} {
		loader := solana.BPFLoaderUpgradeableProgramID
		if p.Equals(solana.SystemProgramID) || p.Equals(solana.ComputeBudget) {
			loader = nativeLoaderID
		}
		c.accounts[p] = &Account{Lamports: 1, Owner: loader, Executable: true}
	}
	c.accounts[solana.SysVarRentPubkey] = &Account{Lamports: 1, Owner: sysvarOwnerID, Data: rentSysvarData()}
	c.newSlotLocked()
	return c
}

var (
	nativeLoaderID = solana.MustPublicKeyFromBase58("NativeLoader1111111111111111111111111111111")
	sysvarOwnerID  = solana.MustPublicKeyFromBase58("Sysvar1111111111111111111111111111111111111")
)

// rentSysvarData is the Rent sysvar: lamports_per_byte_year u64, exemption
// threshold f64, burn percent u8.
func rentSysvarData() []byte {
	b := make([]byte, 17)
	binary.LittleEndian.PutUint64(b[0:], rentLamportsPerByteYear)
	binary.LittleEndian.PutUint64(b[8:], 0x4000000000000000) // 2.0
	b[16] = 50
	return b
}

// ChargeRent makes the accounts a program creates cost their payer, as on a
// validator: Anchor's init and the associated token account program move the
// rent-exempt minimum from the instruction's payer (one short of it fails in
// the system program with ResultWithNegativeLamports, 1), and update_stack's
// and delete_stack's realloc move a growth's difference from the user and
// return a shrink's excess to it. Off (the default), such accounts get their
// lamports without debiting anyone (see the package doc).
func (c *Chain) ChargeRent(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chargeRent = on
}

// ProgramID is the marketplace program's id.
func (c *Chain) ProgramID() solana.PublicKey { return c.programID }

// Start binds 127.0.0.1 on a free port and serves JSON-RPC (POST) and
// websocket (GET with Upgrade) on it, in the background. It may be called once.
func (c *Chain) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("solanatest: Start called twice")
	}
	if c.closed {
		return errors.New("solanatest: Start after Close")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("solanatest: listen: %w", err)
	}
	c.ln = ln
	c.started = true
	c.rpcURL = "http://" + ln.Addr().String()
	c.wsURL = "ws://" + ln.Addr().String()
	c.srv = &http.Server{Handler: http.HandlerFunc(c.serveHTTP), ReadHeaderTimeout: readHeaderTimeout}
	c.serveWG.Add(1)
	go func() {
		defer c.serveWG.Done()
		_ = c.srv.Serve(ln)
	}()
	return nil
}

// RPCURL is the HTTP JSON-RPC endpoint ("" before Start).
func (c *Chain) RPCURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rpcURL
}

// WSURL is the websocket endpoint ("" before Start).
func (c *Chain) WSURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wsURL
}

// Close stops serving and closes every websocket connection. Safe to call twice.
func (c *Chain) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.closeErr
	}
	c.closed = true
	srv := c.srv
	c.mu.Unlock()
	c.subs.closeAll()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
			c.closeErr = fmt.Errorf("solanatest: shutdown: %w", err)
		}
		c.serveWG.Wait()
	}
	return c.closeErr
}

// newSlotLocked makes the next slot and its blockhash.
func (c *Chain) newSlotLocked() {
	c.slot++
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], c.slot)
	copy(b[8:], c.blockhash[:8])
	h := sha256.Sum256(append(c.blockhash[:], b[:]...))
	c.blockhash = solana.HashFromBytes(h[:])
	c.hashSlot[c.blockhash] = c.slot
	// Forget hashes far past expiry so the map stays small.
	if c.slot > 2*MaxBlockhashAge {
		for h, s := range c.hashSlot {
			if s+2*MaxBlockhashAge < c.slot {
				delete(c.hashSlot, h)
			}
		}
	}
}

// blockhashValidLocked says whether h was issued by this chain, is among the
// last MaxBlockhashAge slots' and was not expired by ExpireBlockhashes.
func (c *Chain) blockhashValidLocked(h solana.Hash) bool {
	s, ok := c.hashSlot[h]
	return ok && s >= c.expiredTo && s+MaxBlockhashAge >= c.slot
}

// Slot is the current slot (the slot of the latest applied transaction).
func (c *Chain) Slot() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slot
}

// LatestBlockhash is the blockhash getLatestBlockhash gives now.
func (c *Chain) LatestBlockhash() solana.Hash {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blockhash
}

// ExpireBlockhashes makes every blockhash issued so far invalid and issues a
// new one (in a new slot), as if MaxBlockhashAge slots had passed: a
// transaction signed before the call is then refused with BlockhashNotFound.
func (c *Chain) ExpireBlockhashes() {
	c.mu.Lock()
	c.newSlotLocked()
	c.expiredTo = c.slot
	c.subs.slotDone(c.slot, nil)
	c.mu.Unlock()
}

// AdvanceSlots makes n empty slots, each with a new blockhash, as a
// validator does while no transaction arrives: blockhashes older than
// MaxBlockhashAge slots expire.
func (c *Chain) AdvanceSlots(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; i++ {
		c.newSlotLocked()
		c.subs.slotDone(c.slot, nil)
	}
}

// Account is the account at key as the bank holds it now; false if it does
// not exist (no lamports).
func (c *Chain) Account(key solana.PublicKey) (Account, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.accounts[key]
	if !a.exists() {
		return Account{}, false
	}
	return *a.clone(), true
}

// SetAccount writes an account directly (a test's way to set up a state no
// transaction would make); an account with zero lamports is deleted. It makes
// a slot and notifies subscribers like a transaction does.
func (c *Chain) SetAccount(key solana.PublicKey, a Account) {
	c.mu.Lock()
	if a.Lamports == 0 {
		delete(c.accounts, key)
	} else {
		c.accounts[key] = (&a).clone()
	}
	c.newSlotLocked()
	c.subs.slotDone(c.slot, map[solana.PublicKey]*Account{key: c.accounts[key].clone()})
	c.mu.Unlock()
}

// Airdrop credits lamports to the account at to (creating it as a system
// account if it does not exist), in its own slot, and returns the signature
// its status is kept under.
func (c *Chain) Airdrop(to solana.PublicKey, lamports uint64) (solana.Signature, error) {
	if lamports == 0 {
		return solana.Signature{}, errors.New("solanatest: airdrop of 0 lamports")
	}
	c.mu.Lock()
	a := c.accounts[to].clone()
	if a == nil {
		a = &Account{Owner: solana.SystemProgramID}
	}
	if a.Lamports+lamports < a.Lamports {
		c.mu.Unlock()
		return solana.Signature{}, fmt.Errorf("solanatest: airdrop to %s overflows its lamports", to)
	}
	a.Lamports += lamports
	c.accounts[to] = a
	c.airdropSeq++
	var seed [40]byte
	copy(seed[:32], to[:])
	binary.LittleEndian.PutUint64(seed[32:], c.airdropSeq)
	h1 := sha256.Sum256(append([]byte("solanatest airdrop"), seed[:]...))
	h2 := sha256.Sum256(h1[:])
	var sig solana.Signature
	copy(sig[:32], h1[:])
	copy(sig[32:], h2[:])
	c.newSlotLocked()
	c.statuses[sig] = &txRecord{slot: c.slot, stamp: time.Now()}
	c.subs.slotDone(c.slot, map[solana.PublicKey]*Account{to: a.clone()})
	c.subs.signatureDone(sig, c.slot, nil)
	c.mu.Unlock()
	return sig, nil
}

// SignatureStatus is what the chain knows of a signature: ok is false if it
// was never processed; err is nil for a successful transaction.
func (c *Chain) SignatureStatus(sig solana.Signature) (slot uint64, err *TransactionError, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.statuses[sig]
	if !ok {
		return 0, nil, false
	}
	return r.slot, r.err, true
}

// SubmitTransaction processes tx as sendTransaction does with skipPreflight
// (a failing transaction lands with its error and pays its fee), without
// going through HTTP. It returns the signature and the transaction's error; a
// refusal before execution (bad signature, unknown blockhash, fee payer
// short) is an error and changes nothing.
func (c *Chain) SubmitTransaction(tx *solana.Transaction) (solana.Signature, error) {
	raw, err := tx.MarshalBinary()
	if err != nil {
		return solana.Signature{}, fmt.Errorf("solanatest: encode transaction: %w", err)
	}
	res := c.process(raw, processOpts{commit: true, commitFailed: true, verifySigs: true})
	if err := res.refused(); err != nil {
		return res.sig, err
	}
	if res.err != nil {
		return res.sig, res.err
	}
	return res.sig, nil
}

// TransactionLogs are the program logs of a processed transaction (nil if
// the chain has not processed sig), for a test to show why it failed.
func (c *Chain) TransactionLogs(sig solana.Signature) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.statuses[sig]
	if !ok {
		return nil
	}
	return append([]string(nil), r.logs...)
}
