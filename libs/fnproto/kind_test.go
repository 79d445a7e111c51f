package fnproto

import (
	"reflect"
	"testing"
)

// TestKinds_TableAgreesWithTheMessageTypes checks every row of the kind table
// against the message its constructor makes: same kind, same direction, the
// Go type's own name, and a message type used by no other row.
func TestKinds_TableAgreesWithTheMessageTypes(t *testing.T) {
	types := map[reflect.Type]string{}
	for _, e := range kinds {
		m := e.new()
		typ := reflect.TypeOf(m)
		if m.Kind() != e.kind || m.Direction() != e.dir {
			t.Errorf("row %s (%s %d): constructor makes %T, which reports (%s, %d)", e.name, e.dir, e.kind, m, m.Direction(), m.Kind())
		}
		if typ.Kind() != reflect.Pointer || typ.Elem().Name() != e.name {
			t.Errorf("row %s: constructor makes %v", e.name, typ)
		}
		if other, dup := types[typ]; dup {
			t.Errorf("rows %s and %s make the same type %v", other, e.name, typ)
		}
		types[typ] = e.name
		if got := lookup(e.dir, e.kind); got == nil || got.name != e.name {
			t.Errorf("lookup(%s, %d) does not find row %s", e.dir, e.kind, e.name)
		}
		if e.class < ClassControl || e.class > ClassHTTP {
			t.Errorf("row %s: class %v", e.name, e.class)
		}
	}
}

// TestKinds_ClassesFollowTheNumbering checks the table's classes against the
// numbering of the design (section 4): control below 1000, then muDB in the
// 1000s, storage in the 2000s and HTTP in the 3000s, in both directions.
func TestKinds_ClassesFollowTheNumbering(t *testing.T) {
	want := map[Kind]Class{0: ClassControl, 1: ClassDb, 2: ClassStorage, 3: ClassHTTP}
	for _, e := range kinds {
		if c := want[e.kind/1000]; c != e.class {
			t.Errorf("%s (%s %d) is %v, its number says %v", e.name, e.dir, e.kind, e.class, c)
		}
	}
}
