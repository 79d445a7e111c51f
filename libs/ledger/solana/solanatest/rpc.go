package solanatest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gagliardetto/solana-go"
	"github.com/mr-tron/base58"
)

// maxRequestBytes bounds a JSON-RPC request body (a validator's limit is 50 KiB
// for sendTransaction; this allows batches too).
const maxRequestBytes = 1 << 20

type rpcRequest struct {
	JSONRPC string            `json:"jsonrpc"`
	ID      json.RawMessage   `json:"id"`
	Method  string            `json:"method"`
	Params  []json.RawMessage `json:"params"`
}

// rpcResponse is the reply envelope: jsonrpc, result or error, id, nothing
// else (solana-go decodes it with DisallowUnknownFields).
type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

// errLostReply tells the HTTP handler to answer 503 with no JSON-RPC body:
// a sendTransaction whose reply a test fault drops.
type errLostReply struct{}

func (c *Chain) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		c.subs.serveWS(w, r)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/health" {
		_, _ = io.WriteString(w, "ok")
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "solanatest: JSON-RPC wants POST (or a websocket upgrade)", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		http.Error(w, "solanatest: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxRequestBytes {
		http.Error(w, "solanatest: request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body = bytes.TrimSpace(body)
	var out any
	lost := false
	if len(body) > 0 && body[0] == '[' {
		var reqs []json.RawMessage
		if err := json.Unmarshal(body, &reqs); err != nil {
			out = errorResponse(nil, &rpcError{Code: codeParse, Message: "Parse error"})
		} else if len(reqs) == 0 {
			out = errorResponse(nil, &rpcError{Code: codeInvalidRequest, Message: "Invalid request: empty batch"})
		} else {
			resps := make([]*rpcResponse, 0, len(reqs))
			for _, raw := range reqs {
				resp, l := c.handleRaw(r.Context(), raw)
				lost = lost || l
				resps = append(resps, resp)
			}
			out = resps
		}
	} else {
		resp, l := c.handleRaw(r.Context(), body)
		lost = l
		out = resp
	}
	if lost {
		http.Error(w, "solanatest: reply lost (test fault)", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func errorResponse(id json.RawMessage, e *rpcError) *rpcResponse {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	return &rpcResponse{JSONRPC: "2.0", Error: e, ID: id}
}

func (c *Chain) handleRaw(ctx context.Context, raw []byte) (*rpcResponse, bool) {
	var req rpcRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		var probe map[string]json.RawMessage
		if json.Unmarshal(raw, &probe) != nil {
			return errorResponse(nil, &rpcError{Code: codeParse, Message: "Parse error"}), false
		}
		id := probe["id"]
		if _, ok := probe["params"]; ok {
			return errorResponse(id, invalidParams("params must be an array")), false
		}
		return errorResponse(id, &rpcError{Code: codeInvalidRequest, Message: "Invalid request"}), false
	}
	if req.Method == "" {
		return errorResponse(req.ID, &rpcError{Code: codeInvalidRequest, Message: "Invalid request: no method"}), false
	}
	result, rerr := c.call(ctx, req.Method, req.Params)
	if _, ok := result.(errLostReply); ok {
		return nil, true
	}
	if rerr != nil {
		return errorResponse(req.ID, rerr), false
	}
	b, err := json.Marshal(result)
	if err != nil {
		return errorResponse(req.ID, &rpcError{Code: codeInternal, Message: "Internal error: " + err.Error()}), false
	}
	id := req.ID
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	return &rpcResponse{JSONRPC: "2.0", Result: b, ID: id}, false
}

type rpcMethod func(c *Chain, ctx context.Context, p params) (any, *rpcError)

var rpcMethods map[string]rpcMethod

func init() {
	rpcMethods = map[string]rpcMethod{
		"getAccountInfo":                    (*Chain).rpcGetAccountInfo,
		"getMultipleAccounts":               (*Chain).rpcGetMultipleAccounts,
		"getProgramAccounts":                (*Chain).rpcGetProgramAccounts,
		"getBalance":                        (*Chain).rpcGetBalance,
		"getTokenAccountBalance":            (*Chain).rpcGetTokenAccountBalance,
		"getLatestBlockhash":                (*Chain).rpcGetLatestBlockhash,
		"isBlockhashValid":                  (*Chain).rpcIsBlockhashValid,
		"getSlot":                           (*Chain).rpcGetSlot,
		"getBlockHeight":                    (*Chain).rpcGetSlot,
		"getMinimumBalanceForRentExemption": (*Chain).rpcGetMinimumBalance,
		"getFeeForMessage":                  (*Chain).rpcGetFeeForMessage,
		"requestAirdrop":                    (*Chain).rpcRequestAirdrop,
		"sendTransaction":                   (*Chain).rpcSendTransaction,
		"simulateTransaction":               (*Chain).rpcSimulateTransaction,
		"getSignatureStatuses":              (*Chain).rpcGetSignatureStatuses,
		"getTransaction":                    (*Chain).rpcGetTransaction,
		"getHealth":                         func(*Chain, context.Context, params) (any, *rpcError) { return "ok", nil },
		"getVersion": func(*Chain, context.Context, params) (any, *rpcError) {
			return map[string]any{"solana-core": coreVersion, "feature-set": 1}, nil
		},
		"getGenesisHash": func(c *Chain, _ context.Context, _ params) (any, *rpcError) { return genesisHash.String(), nil },
	}
}

var genesisHash = solana.HashFromBytes(bytes.Repeat([]byte{0x5a}, 32))

func (c *Chain) call(ctx context.Context, method string, ps []json.RawMessage) (any, *rpcError) {
	m, ok := rpcMethods[method]
	if !ok {
		return nil, &rpcError{Code: codeMethodNotFound, Message: "Method not found: " + method}
	}
	return m(c, ctx, params(ps))
}

// params are a request's positional parameters.
type params []json.RawMessage

// str is parameter i as a string.
func (p params) str(i int, what string) (string, *rpcError) {
	if i >= len(p) {
		return "", invalidParams("missing %s (parameter %d)", what, i)
	}
	var s string
	if err := json.Unmarshal(p[i], &s); err != nil {
		return "", invalidParams("%s (parameter %d) must be a string", what, i)
	}
	return s, nil
}

func (p params) pubkey(i int, what string) (solana.PublicKey, *rpcError) {
	s, rerr := p.str(i, what)
	if rerr != nil {
		return solana.PublicKey{}, rerr
	}
	k, err := solana.PublicKeyFromBase58(s)
	if err != nil {
		return solana.PublicKey{}, invalidParams("%s %q: %v", what, s, err)
	}
	return k, nil
}

func (p params) uint(i int, what string) (uint64, *rpcError) {
	if i >= len(p) {
		return 0, invalidParams("missing %s (parameter %d)", what, i)
	}
	var n uint64
	if err := json.Unmarshal(p[i], &n); err != nil {
		return 0, invalidParams("%s (parameter %d) must be an unsigned integer", what, i)
	}
	return n, nil
}

// config is every configuration field the methods here take.
type config struct {
	Commitment               string          `json:"commitment"`
	Encoding                 string          `json:"encoding"`
	DataSlice                *dataSlice      `json:"dataSlice"`
	Filters                  []filterJSON    `json:"filters"`
	WithContext              bool            `json:"withContext"`
	MinContextSlot           *uint64         `json:"minContextSlot"`
	SkipPreflight            bool            `json:"skipPreflight"`
	PreflightCommitment      string          `json:"preflightCommitment"`
	MaxRetries               *uint64         `json:"maxRetries"`
	SigVerify                bool            `json:"sigVerify"`
	ReplaceRecentBlockhash   bool            `json:"replaceRecentBlockhash"`
	SearchTransactionHistory bool            `json:"searchTransactionHistory"`
	Accounts                 *simAccounts    `json:"accounts"`
	MaxSupportedTxVersion    *int            `json:"maxSupportedTransactionVersion"`
	InnerInstructions        bool            `json:"innerInstructions"`
	Extra                    json.RawMessage `json:"-"`
}

type dataSlice struct {
	Offset *uint64 `json:"offset"`
	Length *uint64 `json:"length"`
}

type simAccounts struct {
	Encoding  string   `json:"encoding"`
	Addresses []string `json:"addresses"`
}

type filterJSON struct {
	Memcmp   *memcmpJSON `json:"memcmp"`
	DataSize *uint64     `json:"dataSize"`
}

type memcmpJSON struct {
	Offset   uint64 `json:"offset"`
	Bytes    string `json:"bytes"`
	Encoding string `json:"encoding"`
}

// cfg is parameter i as a configuration object (absent or null: the zero config).
func (p params) cfg(c *Chain, i int) (config, *rpcError) {
	var cf config
	if i >= len(p) || string(p[i]) == "null" {
		return cf, nil
	}
	if err := json.Unmarshal(p[i], &cf); err != nil {
		return cf, invalidParams("configuration (parameter %d): %v", i, err)
	}
	for _, cm := range []string{cf.Commitment, cf.PreflightCommitment} {
		switch cm {
		case "", "processed", "confirmed", "finalized", "recent", "single", "singleGossip", "root", "max":
		default:
			return cf, invalidParams("unknown commitment %q", cm)
		}
	}
	if cf.MinContextSlot != nil {
		if slot := c.Slot(); *cf.MinContextSlot > slot {
			return cf, &rpcError{Code: -32016, Message: "Minimum context slot has not been reached", Data: map[string]uint64{"contextSlot": slot}}
		}
	}
	return cf, nil
}

type rpcContext struct {
	Slot uint64 `json:"slot"`
}

type withContext struct {
	Context rpcContext `json:"context"`
	Value   any        `json:"value"`
}

// accountJSON is an account as getAccountInfo and the notifications carry it.
type accountJSON struct {
	Data       [2]string `json:"data"`
	Executable bool      `json:"executable"`
	Lamports   uint64    `json:"lamports"`
	Owner      string    `json:"owner"`
	RentEpoch  *big.Int  `json:"rentEpoch"`
	Space      uint64    `json:"space"`
}

var rentEpochMax = new(big.Int).SetUint64(math.MaxUint64)

// checkEncoding refuses encodings this chain does not produce.
func checkEncoding(enc string) *rpcError {
	switch enc {
	case "", "base64", "base58":
		return nil
	case "jsonParsed":
		return invalidParams("solanatest serves account data as base64 or base58, not jsonParsed")
	default:
		return invalidParams("unsupported encoding %q (solanatest serves base64 and base58)", enc)
	}
}

// renderAccount renders a for the wire; a nil (missing) account renders as nil.
func renderAccount(a *Account, enc string, slice *dataSlice) (any, *rpcError) {
	if !a.exists() {
		return nil, nil
	}
	data := a.Data
	if slice != nil {
		off := uint64(0)
		if slice.Offset != nil {
			off = *slice.Offset
		}
		if off > uint64(len(data)) {
			off = uint64(len(data))
		}
		data = data[off:]
		if slice.Length != nil && *slice.Length < uint64(len(data)) {
			data = data[:*slice.Length]
		}
	}
	var d [2]string
	switch enc {
	case "base64":
		d = [2]string{base64.StdEncoding.EncodeToString(data), "base64"}
	case "", "base58":
		if len(data) > 128 {
			return nil, invalidParams("encoded binary (base 58) data should be less than 128 bytes, please use Base64 encoding")
		}
		d = [2]string{base58.Encode(data), "base58"}
	default:
		return nil, checkEncoding(enc)
	}
	return &accountJSON{Data: d, Executable: a.Executable, Lamports: a.Lamports, Owner: a.Owner.String(), RentEpoch: rentEpochMax, Space: uint64(len(a.Data))}, nil
}

func (c *Chain) rpcGetAccountInfo(_ context.Context, p params) (any, *rpcError) {
	k, rerr := p.pubkey(0, "account")
	if rerr != nil {
		return nil, rerr
	}
	cf, rerr := p.cfg(c, 1)
	if rerr != nil {
		return nil, rerr
	}
	if rerr := checkEncoding(cf.Encoding); rerr != nil {
		return nil, rerr
	}
	c.mu.Lock()
	a := c.accounts[k].clone()
	slot := c.slot
	c.mu.Unlock()
	v, rerr := renderAccount(a, cf.Encoding, cf.DataSlice)
	if rerr != nil {
		return nil, rerr
	}
	return withContext{Context: rpcContext{Slot: slot}, Value: v}, nil
}

// maxMultipleAccounts is a validator's limit for getMultipleAccounts.
const maxMultipleAccounts = 100

func (c *Chain) rpcGetMultipleAccounts(_ context.Context, p params) (any, *rpcError) {
	ks, rerr := p.list("account list", maxMultipleAccounts)
	if rerr != nil {
		return nil, rerr
	}
	keys := make([]solana.PublicKey, len(ks))
	for i, s := range ks {
		k, err := solana.PublicKeyFromBase58(s)
		if err != nil {
			return nil, invalidParams("account %q: %v", s, err)
		}
		keys[i] = k
	}
	cf, rerr := p.cfg(c, 1)
	if rerr != nil {
		return nil, rerr
	}
	if rerr := checkEncoding(cf.Encoding); rerr != nil {
		return nil, rerr
	}
	c.mu.Lock()
	accts := make([]*Account, len(keys))
	for i, k := range keys {
		accts[i] = c.accounts[k].clone()
	}
	slot := c.slot
	c.mu.Unlock()
	vals := make([]any, len(keys))
	for i, a := range accts {
		v, rerr := renderAccount(a, cf.Encoding, cf.DataSlice)
		if rerr != nil {
			return nil, rerr
		}
		vals[i] = v
	}
	return withContext{Context: rpcContext{Slot: slot}, Value: vals}, nil
}

// filter is a decoded getProgramAccounts / programSubscribe filter.
type filter struct {
	memcmp   bool
	offset   uint64
	bytes    []byte
	dataSize uint64
}

func (f filter) match(data []byte) bool {
	if !f.memcmp {
		return uint64(len(data)) == f.dataSize
	}
	if f.offset > uint64(len(data)) || uint64(len(data))-f.offset < uint64(len(f.bytes)) {
		return false
	}
	return bytes.Equal(data[f.offset:f.offset+uint64(len(f.bytes))], f.bytes)
}

// maxFilters and maxMemcmpBytes are a validator's limits.
const (
	maxFilters     = 4
	maxMemcmpBytes = 128
)

func parseFilters(fs []filterJSON) ([]filter, *rpcError) {
	if len(fs) > maxFilters {
		return nil, invalidParams("Too many filters provided; max %d", maxFilters)
	}
	out := make([]filter, 0, len(fs))
	for i, f := range fs {
		switch {
		case f.Memcmp != nil && f.DataSize != nil:
			return nil, invalidParams("filter %d has both memcmp and dataSize", i)
		case f.DataSize != nil:
			out = append(out, filter{dataSize: *f.DataSize})
		case f.Memcmp != nil:
			var b []byte
			var err error
			switch f.Memcmp.Encoding {
			case "", "base58":
				b, err = base58.Decode(f.Memcmp.Bytes)
			case "base64":
				b, err = base64.StdEncoding.DecodeString(f.Memcmp.Bytes)
			default:
				return nil, invalidParams("filter %d: memcmp encoding %q is neither base58 nor base64", i, f.Memcmp.Encoding)
			}
			if err != nil {
				return nil, invalidParams("filter %d: memcmp bytes %q: %v", i, f.Memcmp.Bytes, err)
			}
			if len(b) > maxMemcmpBytes {
				return nil, invalidParams("filter %d: memcmp of %d bytes is more than %d", i, len(b), maxMemcmpBytes)
			}
			out = append(out, filter{memcmp: true, offset: f.Memcmp.Offset, bytes: b})
		default:
			return nil, invalidParams("filter %d is neither memcmp nor dataSize", i)
		}
	}
	return out, nil
}

func matchAll(fs []filter, data []byte) bool {
	for _, f := range fs {
		if !f.match(data) {
			return false
		}
	}
	return true
}

type keyedAccount struct {
	Pubkey  string `json:"pubkey"`
	Account any    `json:"account"`
}

func (c *Chain) rpcGetProgramAccounts(_ context.Context, p params) (any, *rpcError) {
	prog, rerr := p.pubkey(0, "program id")
	if rerr != nil {
		return nil, rerr
	}
	cf, rerr := p.cfg(c, 1)
	if rerr != nil {
		return nil, rerr
	}
	if rerr := checkEncoding(cf.Encoding); rerr != nil {
		return nil, rerr
	}
	fs, rerr := parseFilters(cf.Filters)
	if rerr != nil {
		return nil, rerr
	}
	type kv struct {
		k solana.PublicKey
		a *Account
	}
	c.mu.Lock()
	var found []kv
	for k, a := range c.accounts {
		if a.exists() && a.Owner.Equals(prog) && matchAll(fs, a.Data) {
			found = append(found, kv{k, a.clone()})
		}
	}
	slot := c.slot
	c.mu.Unlock()
	sort.Slice(found, func(i, j int) bool { return bytes.Compare(found[i].k[:], found[j].k[:]) < 0 })
	out := make([]keyedAccount, 0, len(found))
	for _, f := range found {
		v, rerr := renderAccount(f.a, cf.Encoding, cf.DataSlice)
		if rerr != nil {
			return nil, rerr
		}
		out = append(out, keyedAccount{Pubkey: f.k.String(), Account: v})
	}
	if cf.WithContext {
		return withContext{Context: rpcContext{Slot: slot}, Value: out}, nil
	}
	return out, nil
}

func (c *Chain) rpcGetBalance(_ context.Context, p params) (any, *rpcError) {
	k, rerr := p.pubkey(0, "account")
	if rerr != nil {
		return nil, rerr
	}
	if _, rerr := p.cfg(c, 1); rerr != nil {
		return nil, rerr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var l uint64
	if a := c.accounts[k]; a != nil {
		l = a.Lamports
	}
	return withContext{Context: rpcContext{Slot: c.slot}, Value: l}, nil
}

type uiTokenAmount struct {
	Amount         string   `json:"amount"`
	Decimals       uint8    `json:"decimals"`
	UIAmount       *float64 `json:"uiAmount"`
	UIAmountString string   `json:"uiAmountString"`
}

func (c *Chain) rpcGetTokenAccountBalance(_ context.Context, p params) (any, *rpcError) {
	k, rerr := p.pubkey(0, "token account")
	if rerr != nil {
		return nil, rerr
	}
	if _, rerr := p.cfg(c, 1); rerr != nil {
		return nil, rerr
	}
	c.mu.Lock()
	a := c.accounts[k].clone()
	slot := c.slot
	var mint *Account
	ta, ok := token165(a)
	if ok {
		mint = c.accounts[ta.Mint].clone()
	}
	c.mu.Unlock()
	if !ok {
		return nil, invalidParams("Invalid param: not a Token account")
	}
	var decimals uint8
	if mint != nil {
		if m, ok := DecodeMint(mint.Data); ok {
			decimals = m.Decimals
		}
	}
	ui := float64(ta.Amount) / math.Pow10(int(decimals))
	return withContext{Context: rpcContext{Slot: slot}, Value: uiTokenAmount{
		Amount: fmt.Sprint(ta.Amount), Decimals: decimals, UIAmount: &ui, UIAmountString: uiString(ta.Amount, decimals),
	}}, nil
}

// uiString is amount with decimals decimal places, trailing zeros dropped.
func uiString(amount uint64, decimals uint8) string {
	s := fmt.Sprint(amount)
	if decimals == 0 {
		return s
	}
	for len(s) <= int(decimals) {
		s = "0" + s
	}
	whole, frac := s[:len(s)-int(decimals)], strings.TrimRight(s[len(s)-int(decimals):], "0")
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}

func (c *Chain) rpcGetLatestBlockhash(_ context.Context, p params) (any, *rpcError) {
	if _, rerr := p.cfg(c, 0); rerr != nil {
		return nil, rerr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return withContext{Context: rpcContext{Slot: c.slot}, Value: map[string]any{
		"blockhash": c.blockhash.String(), "lastValidBlockHeight": c.slot + MaxBlockhashAge,
	}}, nil
}

func (c *Chain) rpcIsBlockhashValid(_ context.Context, p params) (any, *rpcError) {
	s, rerr := p.str(0, "blockhash")
	if rerr != nil {
		return nil, rerr
	}
	h, err := solana.HashFromBase58(s)
	if err != nil {
		return nil, invalidParams("blockhash %q: %v", s, err)
	}
	if _, rerr := p.cfg(c, 1); rerr != nil {
		return nil, rerr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return withContext{Context: rpcContext{Slot: c.slot}, Value: c.blockhashValidLocked(h)}, nil
}

func (c *Chain) rpcGetSlot(_ context.Context, p params) (any, *rpcError) {
	if _, rerr := p.cfg(c, 0); rerr != nil {
		return nil, rerr
	}
	return c.Slot(), nil
}

func (c *Chain) rpcGetMinimumBalance(_ context.Context, p params) (any, *rpcError) {
	n, rerr := p.uint(0, "data size")
	if rerr != nil {
		return nil, rerr
	}
	if _, rerr := p.cfg(c, 1); rerr != nil {
		return nil, rerr
	}
	return RentExemptMinimum(n), nil
}

func (c *Chain) rpcGetFeeForMessage(_ context.Context, p params) (any, *rpcError) {
	s, rerr := p.str(0, "message")
	if rerr != nil {
		return nil, rerr
	}
	if _, rerr := p.cfg(c, 1); rerr != nil {
		return nil, rerr
	}
	var m solana.Message
	if err := m.UnmarshalBase64(s); err != nil {
		return nil, invalidParams("message: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var v any
	if c.blockhashValidLocked(m.RecentBlockhash) {
		v = uint64(m.Header.NumRequiredSignatures) * FeePerSignature
	}
	return withContext{Context: rpcContext{Slot: c.slot}, Value: v}, nil
}

func (c *Chain) rpcRequestAirdrop(_ context.Context, p params) (any, *rpcError) {
	k, rerr := p.pubkey(0, "account")
	if rerr != nil {
		return nil, rerr
	}
	n, rerr := p.uint(1, "lamports")
	if rerr != nil {
		return nil, rerr
	}
	if _, rerr := p.cfg(c, 2); rerr != nil {
		return nil, rerr
	}
	sig, err := c.Airdrop(k, n)
	if err != nil {
		return nil, &rpcError{Code: codeInternal, Message: err.Error()}
	}
	return sig.String(), nil
}

// decodeWire decodes a transaction sent as base58 (the default) or base64.
func decodeWire(s, enc string) ([]byte, *rpcError) {
	switch enc {
	case "", "base58":
		b, err := base58.Decode(s)
		if err != nil {
			return nil, invalidParams("invalid base58 encoding: %v", err)
		}
		return b, nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, invalidParams("invalid base64 encoding: %v", err)
		}
		return b, nil
	default:
		return nil, invalidParams("unsupported transaction encoding %q: base58 or base64", enc)
	}
}

func (c *Chain) rpcSendTransaction(ctx context.Context, p params) (any, *rpcError) {
	s, rerr := p.str(0, "transaction")
	if rerr != nil {
		return nil, rerr
	}
	cf, rerr := p.cfg(c, 1)
	if rerr != nil {
		return nil, rerr
	}
	raw, rerr := decodeWire(s, cf.Encoding)
	if rerr != nil {
		return nil, rerr
	}
	f := c.nextFault()
	switch f.kind {
	case faultRefuse:
		return nil, &rpcError{Code: codeNodeUnhealthy, Message: "Node is unhealthy (solanatest: sendTransaction refused by a test fault)"}
	case faultDrop:
		tx, rerr := decodeTransaction(raw)
		if rerr != nil {
			return nil, rerr
		}
		return tx.Signatures[0].String(), nil
	case faultDelay:
		t := time.NewTimer(f.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, &rpcError{Code: codeInternal, Message: "request cancelled"}
		}
	}
	res := c.process(raw, processOpts{commit: true, commitFailed: cf.SkipPreflight, verifySigs: true})
	if res.rpcErr != nil {
		return nil, res.rpcErr
	}
	if f.kind == faultLoseReply {
		return errLostReply{}, nil
	}
	if cf.SkipPreflight {
		// A validator forwards the transaction and answers with its
		// signature; one it cannot process is dropped silently.
		return res.sig.String(), nil
	}
	if res.preErr != nil || res.err != nil {
		te := res.preErr
		if te == nil {
			te = res.err
		}
		logs := res.logs
		if logs == nil {
			logs = []string{}
		}
		return nil, &rpcError{
			Code:    codeSendPreflightFailure,
			Message: "Transaction simulation failed: " + te.Error(),
			Data: map[string]any{
				"err": te, "logs": logs, "accounts": nil, "unitsConsumed": 0, "returnData": nil, "innerInstructions": nil,
			},
		}
	}
	return res.sig.String(), nil
}

func (c *Chain) rpcSimulateTransaction(_ context.Context, p params) (any, *rpcError) {
	s, rerr := p.str(0, "transaction")
	if rerr != nil {
		return nil, rerr
	}
	cf, rerr := p.cfg(c, 1)
	if rerr != nil {
		return nil, rerr
	}
	if cf.SigVerify && cf.ReplaceRecentBlockhash {
		return nil, invalidParams("sigVerify may not be used with replaceRecentBlockhash")
	}
	raw, rerr := decodeWire(s, cf.Encoding)
	if rerr != nil {
		return nil, rerr
	}
	res := c.process(raw, processOpts{verifySigs: cf.SigVerify, replaceBlockhash: cf.ReplaceRecentBlockhash})
	if res.rpcErr != nil {
		return nil, res.rpcErr
	}
	te := res.preErr
	if te == nil {
		te = res.err
	}
	logs := res.logs
	if logs == nil {
		logs = []string{}
	}
	var accts any
	if cf.Accounts != nil {
		if rerr := checkEncoding(cf.Accounts.Encoding); rerr != nil {
			return nil, rerr
		}
		list := make([]any, len(cf.Accounts.Addresses))
		for i, s := range cf.Accounts.Addresses {
			k, err := solana.PublicKeyFromBase58(s)
			if err != nil {
				return nil, invalidParams("accounts.addresses[%d] %q: %v", i, s, err)
			}
			a := res.accounts[k]
			if a == nil {
				c.mu.Lock()
				a = c.accounts[k].clone()
				c.mu.Unlock()
			}
			enc := cf.Accounts.Encoding
			if enc == "" {
				enc = "base64"
			}
			v, rerr := renderAccount(a, enc, nil)
			if rerr != nil {
				return nil, rerr
			}
			list[i] = v
		}
		accts = list
	}
	val := map[string]any{"err": te, "logs": logs, "accounts": accts, "unitsConsumed": 0, "returnData": nil}
	if te == nil {
		val["err"] = nil
	}
	return withContext{Context: rpcContext{Slot: res.slot}, Value: val}, nil
}

// maxSignatureStatuses is a validator's limit for getSignatureStatuses.
const maxSignatureStatuses = 256

func statusValue(r *txRecord) map[string]any {
	st := map[string]any{"Ok": nil}
	if r.err != nil {
		st = map[string]any{"Err": r.err}
	}
	v := map[string]any{"slot": r.slot, "confirmations": nil, "err": nil, "confirmationStatus": "finalized", "status": st}
	if r.err != nil {
		v["err"] = r.err
	}
	return v
}

func (c *Chain) rpcGetSignatureStatuses(_ context.Context, p params) (any, *rpcError) {
	ss, rerr := p.list("signature list", maxSignatureStatuses)
	if rerr != nil {
		return nil, rerr
	}
	sigs := make([]solana.Signature, len(ss))
	for i, s := range ss {
		sig, err := solana.SignatureFromBase58(s)
		if err != nil {
			return nil, invalidParams("signature %q: %v", s, err)
		}
		sigs[i] = sig
	}
	if _, rerr := p.cfg(c, 1); rerr != nil {
		return nil, rerr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	vals := make([]any, len(sigs))
	for i, sig := range sigs {
		if r, ok := c.statuses[sig]; ok {
			vals[i] = statusValue(r)
		}
	}
	return withContext{Context: rpcContext{Slot: c.slot}, Value: vals}, nil
}

func (c *Chain) rpcGetTransaction(_ context.Context, p params) (any, *rpcError) {
	s, rerr := p.str(0, "signature")
	if rerr != nil {
		return nil, rerr
	}
	sig, err := solana.SignatureFromBase58(s)
	if err != nil {
		return nil, invalidParams("signature %q: %v", s, err)
	}
	cf, rerr := p.cfg(c, 1)
	if rerr != nil {
		return nil, rerr
	}
	enc := cf.Encoding
	switch enc {
	case "base64", "base58":
	case "", "json":
		return nil, invalidParams("solanatest serves transactions as base64 or base58, not json")
	default:
		return nil, checkEncoding(enc)
	}
	c.mu.Lock()
	r, ok := c.statuses[sig]
	c.mu.Unlock()
	if !ok || !r.isTx {
		return nil, nil
	}
	txData := [2]string{base64.StdEncoding.EncodeToString(r.raw), "base64"}
	if enc == "base58" {
		txData = [2]string{base58.Encode(r.raw), "base58"}
	}
	st := map[string]any{"Ok": nil}
	if r.err != nil {
		st = map[string]any{"Err": r.err}
	}
	var errV any
	if r.err != nil {
		errV = r.err
	}
	logs := r.logs
	if logs == nil {
		logs = []string{}
	}
	return map[string]any{
		"slot":        r.slot,
		"blockTime":   r.stamp.Unix(),
		"transaction": txData,
		"version":     "legacy",
		"meta": map[string]any{
			"err": errV, "status": st, "fee": r.fee, "preBalances": []uint64{}, "postBalances": []uint64{},
			"innerInstructions": []any{}, "logMessages": logs, "preTokenBalances": []any{}, "postTokenBalances": []any{},
			"rewards": []any{}, "loadedAddresses": map[string]any{"writable": []string{}, "readonly": []string{}},
			"computeUnitsConsumed": 0,
		},
	}, nil
}

// list reads parameter 0 as an array of at most max strings (what
// names it in errors), as getMultipleAccounts and getSignatureStatuses take
// their keys.
func (p params) list(what string, max int) ([]string, *rpcError) {
	if len(p) == 0 {
		return nil, invalidParams("missing the %s (parameter 0)", what)
	}
	var l []string
	if err := json.Unmarshal(p[0], &l); err != nil {
		return nil, invalidParams("the %s (parameter 0) must be an array of strings", what)
	}
	if len(l) > max {
		return nil, invalidParams("Too many inputs provided; max %d", max)
	}
	return l, nil
}
