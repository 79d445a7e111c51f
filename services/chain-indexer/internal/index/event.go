package index

import (
	"fmt"

	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// Kind is the kind of an indexed object.
type Kind uint8

// The kinds, in the order Kinds lists them.
const (
	KindProvider Kind = 1
	KindRegion   Kind = 2
	KindStack    Kind = 3
	KindEscrow   Kind = 4
)

// Kinds lists every kind.
var Kinds = []Kind{KindProvider, KindRegion, KindStack, KindEscrow}

func (k Kind) String() string {
	switch k {
	case KindProvider:
		return "provider"
	case KindRegion:
		return "region"
	case KindStack:
		return "stack"
	case KindEscrow:
		return "escrow"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Object is one object of the view, as served. Exactly one pointer is set.
// Objects handed to the index become its own: neither the caller nor any
// reader may modify them afterwards.
type Object struct {
	Provider *chainindexerv1.Provider
	Region   *chainindexerv1.Region
	Stack    *chainindexerv1.Stack
	Escrow   *chainindexerv1.Escrow
}

// Kind is the object's kind, 0 when no pointer is set.
func (o Object) Kind() Kind {
	switch {
	case o.Provider != nil:
		return KindProvider
	case o.Region != nil:
		return KindRegion
	case o.Stack != nil:
		return KindStack
	case o.Escrow != nil:
		return KindEscrow
	}
	return 0
}

// Key identifies the object within its kind: the account address, or
// developer and provider for an escrow.
func (o Object) Key() string {
	switch {
	case o.Provider != nil:
		return string(o.Provider.GetId())
	case o.Region != nil:
		return string(o.Region.GetId())
	case o.Stack != nil:
		return string(o.Stack.GetId())
	case o.Escrow != nil:
		return string(o.Escrow.GetDeveloper()) + string(o.Escrow.GetProviderId())
	}
	return ""
}

// check reports an object that cannot be indexed: no kind, or an id that is
// not 32 bytes.
func (o Object) check() error {
	var ids map[string][]byte
	switch o.Kind() {
	case KindProvider:
		ids = map[string][]byte{"provider id": o.Provider.GetId()}
	case KindRegion:
		ids = map[string][]byte{"region id": o.Region.GetId(), "region provider_id": o.Region.GetProviderId()}
	case KindStack:
		ids = map[string][]byte{"stack id": o.Stack.GetId(), "stack owner": o.Stack.GetOwner(), "stack region_id": o.Stack.GetRegionId()}
	case KindEscrow:
		ids = map[string][]byte{"escrow developer": o.Escrow.GetDeveloper(), "escrow provider_id": o.Escrow.GetProviderId()}
	default:
		return fmt.Errorf("object has no kind")
	}
	for name, id := range ids {
		if len(id) != 32 {
			return fmt.Errorf("%s is %d bytes, want 32", name, len(id))
		}
	}
	return nil
}

// Event is one change of the view: an object's new state (UPSERT) or its
// removal (DELETE, carrying its last known state). The index also keeps
// each object's current state as the event that set it. Events are
// immutable once the index has them; readers on any goroutine may keep
// them.
type Event struct {
	// Seq is the event's sequence number, unique and increasing.
	Seq uint64
	// Slot is the ledger slot at which the change was observed.
	Slot uint64
	// Delete marks the removal of the object.
	Delete bool
	// PrevAuthorized is, for a provider event, whether the provider was
	// authorized before the change (so an authorized_only watcher sees the
	// provider losing its authorization).
	PrevAuthorized bool
	Object
}

// Type is the event's change type.
func (e *Event) Type() chainindexerv1.ChangeType {
	if e.Delete {
		return chainindexerv1.ChangeType_CHANGE_TYPE_DELETE
	}
	return chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT
}

// Meta is the event's position, as sent to clients.
func (e *Event) Meta() *chainindexerv1.ChangeMeta {
	return &chainindexerv1.ChangeMeta{Type: e.Type(), Sequence: e.Seq, Slot: e.Slot}
}
