package membership

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/hashicorp/memberlist"
)

// delegate gives memberlist the local member's metadata; the List sends
// no messages or state of its own.
type delegate struct {
	mu   sync.Mutex
	meta []byte // encoded at Start and by SetReady, checked against memberlist.MetaMaxSize
	log  *slog.Logger
}

func (d *delegate) setMeta(b []byte) {
	d.mu.Lock()
	d.meta = b
	d.mu.Unlock()
}

var _ memberlist.Delegate = (*delegate)(nil)

// NodeMeta returns the encoded metadata. Start refused metadata over
// memberlist.MetaMaxSize, which is the limit memberlist passes; should it
// ever pass less, the member gossips no metadata (others skip it) rather
// than make memberlist panic.
func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		d.log.Error("membership: node meta over memberlist's limit, not advertised", "bytes", len(d.meta), "limit", limit)
		return nil
	}
	return d.meta
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events turns memberlist's join, leave and update events into a wake-up
// of the List's notifier. The callbacks run on memberlist's goroutines
// with its node lock held, so they only mark the list dirty (a send on a
// channel with room for one, dropped when a wake-up is already pending)
// and never block.
//
// They also keep a copy of each live node: memberlist's Members returns
// pointers to nodes it keeps updating (a metadata update rewrites them in
// place), so reading those outside its lock races; the callbacks run with
// it held, so copying there is safe.
type events struct {
	wake chan<- struct{}

	mu    sync.Mutex
	nodes map[string]memberlist.Node // by name: copies taken in the callbacks
}

var _ memberlist.EventDelegate = (*events)(nil)

func (e *events) NotifyJoin(n *memberlist.Node)   { e.keep(n) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.keep(n) }
func (e *events) NotifyLeave(n *memberlist.Node) {
	e.mu.Lock()
	delete(e.nodes, n.Name)
	e.mu.Unlock()
	e.dirty()
}

func (e *events) keep(n *memberlist.Node) {
	c := *n
	c.Addr = slices.Clone(n.Addr)
	c.Meta = slices.Clone(n.Meta)
	e.mu.Lock()
	if e.nodes == nil {
		e.nodes = map[string]memberlist.Node{}
	}
	e.nodes[n.Name] = c
	e.mu.Unlock()
	e.dirty()
}

// snapshot returns copies of the live nodes.
func (e *events) snapshot() []memberlist.Node {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]memberlist.Node, 0, len(e.nodes))
	for _, n := range e.nodes {
		out = append(out, n)
	}
	return out
}

func (e *events) dirty() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}
