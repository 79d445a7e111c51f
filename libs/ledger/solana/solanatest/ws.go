package solanatest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"sync"

	"github.com/gagliardetto/solana-go"
	"github.com/gorilla/websocket"
	"github.com/mr-tron/base58"
)

// subscriptions serves the websocket side: accountSubscribe, programSubscribe,
// signatureSubscribe, slotSubscribe and their unsubscribes. Lock order: the
// chain's mu, then subscriptions.mu; notifications are queued under both so
// they leave in slot order, and a subscription's ack is queued before it can
// receive anything.
type subscriptions struct {
	c       *Chain
	mu      sync.Mutex
	nextID  uint64
	conns   map[*wsConn]bool
	subs    map[uint64]*sub
	changed chan struct{} // closed and replaced whenever subs changes
	closed  bool
}

type subKind int

const (
	subAccount subKind = iota
	subProgram
	subSignature
	subSlot
)

var subMethods = map[string]struct {
	kind         subKind
	notification string
}{
	"accountSubscribe":   {subAccount, "accountNotification"},
	"programSubscribe":   {subProgram, "programNotification"},
	"signatureSubscribe": {subSignature, "signatureNotification"},
	"slotSubscribe":      {subSlot, "slotNotification"},
}

var unsubMethods = map[string]subKind{
	"accountUnsubscribe":   subAccount,
	"programUnsubscribe":   subProgram,
	"signatureUnsubscribe": subSignature,
	"slotUnsubscribe":      subSlot,
}

type sub struct {
	id      uint64
	conn    *wsConn
	kind    subKind
	method  string
	key     solana.PublicKey
	sig     solana.Signature
	enc     string
	filters []filter
}

func newSubscriptions(c *Chain) *subscriptions {
	return &subscriptions{c: c, conns: map[*wsConn]bool{}, subs: map[uint64]*sub{}, changed: make(chan struct{})}
}

func (s *subscriptions) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Subscriptions is how many websocket subscriptions are active now.
func (c *Chain) Subscriptions() int {
	c.subs.mu.Lock()
	defer c.subs.mu.Unlock()
	return len(c.subs.subs)
}

// WaitSubscriptions blocks until at least n websocket subscriptions are
// active (their acks queued), or ctx ends. A test calls it after subscribing
// so that a change it makes next is sure to be notified.
func (c *Chain) WaitSubscriptions(ctx context.Context, n int) error {
	for {
		c.subs.mu.Lock()
		have, ch := len(c.subs.subs), c.subs.changed
		c.subs.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wsConn is one websocket connection with its own writer goroutine and an
// unbounded queue, so the chain never blocks on a slow reader.
type wsConn struct {
	ws     *websocket.Conn
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	closed bool
}

func (w *wsConn) send(msg []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.queue = append(w.queue, msg)
	w.cond.Signal()
}

func (w *wsConn) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		w.cond.Broadcast()
	}
	w.mu.Unlock()
	_ = w.ws.Close()
}

func (w *wsConn) writeLoop() {
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.cond.Wait()
		}
		if w.closed {
			w.mu.Unlock()
			return
		}
		msg := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		if err := w.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			w.close()
			return
		}
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *subscriptions) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	conn := &wsConn{ws: ws}
	conn.cond = sync.NewCond(&conn.mu)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.conns[conn] = true
	s.mu.Unlock()
	go conn.writeLoop()
	defer s.drop(conn)
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		s.handle(conn, msg)
	}
}

// drop forgets a connection and its subscriptions.
func (s *subscriptions) drop(conn *wsConn) {
	conn.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, conn)
	n := len(s.subs)
	for id, sb := range s.subs {
		if sb.conn == conn {
			delete(s.subs, id)
		}
	}
	if len(s.subs) != n {
		s.changedLocked()
	}
}

// DisconnectWebsockets closes every websocket connection now open, dropping
// their subscriptions, as a node restart or a network cut does; new
// connections are accepted as before. It lets a test see a client notice the
// loss and catch up.
func (c *Chain) DisconnectWebsockets() { c.subs.disconnect(false) }

func (s *subscriptions) closeAll() { s.disconnect(true) }

func (s *subscriptions) disconnect(final bool) {
	s.mu.Lock()
	if final {
		s.closed = true
	}
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	// Forget the connections' subscriptions now, so Subscriptions and
	// WaitSubscriptions see them gone when this returns.
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.subs)
	for id, sb := range s.subs {
		for _, c := range conns {
			if sb.conn == c {
				delete(s.subs, id)
			}
		}
	}
	if len(s.subs) != n {
		s.changedLocked()
	}
}

func reply(id json.RawMessage, result any, rerr *rpcError) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	resp := &rpcResponse{JSONRPC: "2.0", Error: rerr, ID: id}
	if rerr == nil {
		b, _ := json.Marshal(result)
		resp.Result = b
	}
	b, _ := json.Marshal(resp)
	return b
}

func (s *subscriptions) handle(conn *wsConn, msg []byte) {
	var req rpcRequest
	if err := json.Unmarshal(msg, &req); err != nil {
		conn.send(reply(nil, nil, &rpcError{Code: codeParse, Message: "Parse error"}))
		return
	}
	p := params(req.Params)
	if m, ok := subMethods[req.Method]; ok {
		sb, rerr := s.parseSub(m.kind, p)
		if rerr != nil {
			conn.send(reply(req.ID, nil, rerr))
			return
		}
		sb.conn, sb.method = conn, m.notification
		s.add(sb, req.ID)
		return
	}
	if kind, ok := unsubMethods[req.Method]; ok {
		id, rerr := p.uint(0, "subscription id")
		if rerr != nil {
			conn.send(reply(req.ID, nil, rerr))
			return
		}
		s.mu.Lock()
		sb, ok := s.subs[id]
		if ok && sb.conn == conn && sb.kind == kind {
			delete(s.subs, id)
			s.changedLocked()
			conn.send(reply(req.ID, true, nil))
		} else {
			conn.send(reply(req.ID, nil, invalidParams("Invalid subscription id.")))
		}
		s.mu.Unlock()
		return
	}
	conn.send(reply(req.ID, nil, &rpcError{Code: codeMethodNotFound, Message: "Method not found: " + req.Method}))
}

func (s *subscriptions) parseSub(kind subKind, p params) (*sub, *rpcError) {
	sb := &sub{kind: kind}
	var cf config
	var rerr *rpcError
	switch kind {
	case subAccount, subProgram:
		if sb.key, rerr = p.pubkey(0, "address"); rerr != nil {
			return nil, rerr
		}
		if cf, rerr = p.cfg(s.c, 1); rerr != nil {
			return nil, rerr
		}
		if rerr := checkEncoding(cf.Encoding); rerr != nil {
			return nil, rerr
		}
		sb.enc = cf.Encoding
		if sb.enc == "" {
			sb.enc = "base58"
		}
		if kind == subProgram {
			if sb.filters, rerr = parseFilters(cf.Filters); rerr != nil {
				return nil, rerr
			}
		}
	case subSignature:
		str, rerr := p.str(0, "signature")
		if rerr != nil {
			return nil, rerr
		}
		sig, err := solana.SignatureFromBase58(str)
		if err != nil {
			return nil, invalidParams("signature %q: %v", str, err)
		}
		sb.sig = sig
		if _, rerr = p.cfg(s.c, 1); rerr != nil {
			return nil, rerr
		}
	}
	return sb, nil
}

// add registers sb and queues its ack; a signature already processed is
// notified right after the ack.
func (s *subscriptions) add(sb *sub, reqID json.RawMessage) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	sb.id = s.nextID
	sb.conn.send(reply(reqID, sb.id, nil))
	if sb.kind == subSignature {
		if r, ok := c.statuses[sb.sig]; ok {
			s.notifyLocked(sb, r.slot, map[string]any{"err": r.err.value()})
			return
		}
	}
	s.subs[sb.id] = sb
	s.changedLocked()
}

type notification struct {
	JSONRPC string             `json:"jsonrpc"`
	Method  string             `json:"method"`
	Params  notificationParams `json:"params"`
}

type notificationParams struct {
	Result       any    `json:"result"`
	Subscription uint64 `json:"subscription"`
}

func (s *subscriptions) notifyLocked(sb *sub, slot uint64, value any) {
	var result any = withContext{Context: rpcContext{Slot: slot}, Value: value}
	if sb.kind == subSlot {
		result = value
	}
	b, _ := json.Marshal(notification{JSONRPC: "2.0", Method: sb.method, Params: notificationParams{Result: result, Subscription: sb.id}})
	sb.conn.send(b)
}

// notifyAccount renders a (nil: deleted) for a notification: a deleted
// account is shown as an empty system account with no lamports.
func notifyAccount(a *Account, enc string) any {
	if a == nil {
		a = &Account{Owner: solana.SystemProgramID}
	}
	var d [2]string
	if enc == "base64" {
		d = [2]string{base64.StdEncoding.EncodeToString(a.Data), "base64"}
	} else {
		d = [2]string{base58.Encode(a.Data), "base58"}
	}
	return &accountJSON{Data: d, Executable: a.Executable, Lamports: a.Lamports, Owner: a.Owner.String(), RentEpoch: rentEpochMax, Space: uint64(len(a.Data))}
}

// slotDone notifies a new slot and the accounts it changed (nil values are
// deleted accounts). The caller holds the chain's lock.
func (s *subscriptions) slotDone(slot uint64, changed map[solana.PublicKey]*Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sb := range s.subs {
		switch sb.kind {
		case subSlot:
			s.notifyLocked(sb, slot, map[string]uint64{"parent": slot - 1, "root": slot, "slot": slot})
		case subAccount:
			if a, ok := changed[sb.key]; ok {
				s.notifyLocked(sb, slot, notifyAccount(a, sb.enc))
			}
		case subProgram:
			for _, k := range sortedKeys(changed) {
				a := changed[k]
				if a != nil && a.Owner.Equals(sb.key) && matchAll(sb.filters, a.Data) {
					s.notifyLocked(sb, slot, keyedAccount{Pubkey: k.String(), Account: notifyAccount(a, sb.enc)})
				}
			}
		}
	}
}

// signatureDone notifies (and ends) the subscriptions to sig. The caller
// holds the chain's lock.
func (s *subscriptions) signatureDone(sig solana.Signature, slot uint64, err *TransactionError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.subs)
	for id, sb := range s.subs {
		if sb.kind == subSignature && sb.sig == sig {
			s.notifyLocked(sb, slot, map[string]any{"err": err.value()})
			delete(s.subs, id)
		}
	}
	if len(s.subs) != n {
		s.changedLocked()
	}
}

func sortedKeys(m map[solana.PublicKey]*Account) []solana.PublicKey {
	ks := make([]solana.PublicKey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return bytes.Compare(ks[i][:], ks[j][:]) < 0 })
	return ks
}
