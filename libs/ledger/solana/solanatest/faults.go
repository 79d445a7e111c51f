package solanatest

import "time"

type faultKind int

const (
	faultNone faultKind = iota
	faultRefuse
	faultDrop
	faultLoseReply
	faultDelay
)

// sendFault is what happens to one sendTransaction call.
type sendFault struct {
	kind  faultKind
	delay time.Duration
}

func (c *Chain) addFaults(f sendFault, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; i++ {
		c.faults = append(c.faults, f)
	}
}

// nextFault takes the next queued fault (faultNone if there is none) and
// counts the call.
func (c *Chain) nextFault() sendFault {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sends++
	if len(c.faults) == 0 {
		return sendFault{}
	}
	f := c.faults[0]
	c.faults = c.faults[1:]
	return f
}

// The fault methods queue what happens to the next sendTransaction calls, in
// order: each call takes the oldest queued fault; calls with none queued run
// normally. They let a client's retry, confirmation and blockhash-refresh
// paths be tested.

// RefuseSends makes the next n sendTransaction calls fail with -32005 (node
// unhealthy) without looking at the transaction.
func (c *Chain) RefuseSends(n int) { c.addFaults(sendFault{kind: faultRefuse}, n) }

// DropSends makes the next n sendTransaction calls answer with the
// transaction's signature and never process it, as a validator that drops a
// transaction does: its status stays unknown.
func (c *Chain) DropSends(n int) { c.addFaults(sendFault{kind: faultDrop}, n) }

// LoseSendReplies makes the next n sendTransaction calls process the
// transaction as usual and then lose the reply: the client gets HTTP 503 with
// no JSON-RPC body, while the transaction has landed.
func (c *Chain) LoseSendReplies(n int) { c.addFaults(sendFault{kind: faultLoseReply}, n) }

// DelaySends makes the next n sendTransaction calls wait d (or until the
// request is cancelled) before processing.
func (c *Chain) DelaySends(n int, d time.Duration) {
	c.addFaults(sendFault{kind: faultDelay, delay: d}, n)
}

// SendCount is how many sendTransaction calls the chain has received.
func (c *Chain) SendCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sends
}
