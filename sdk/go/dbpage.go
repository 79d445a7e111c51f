package mu

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/muprotocol/mu/libs/fnproto"
)

// Paging and expiry.
//
// Cursors: a scan returns its entries one page at a time. Page.Next (and
// KeyPage.Next, TablePage.Next, TableKeyPage.Next) is an opaque cursor: pass
// it back unchanged, with the same table and prefix, to read the next page;
// it is nil when the scan is complete. A cursor is a position, not a
// snapshot: the next page starts strictly after the last key already
// returned, so keys written behind the cursor are not revisited and keys
// written ahead of it are seen. A page may hold fewer entries than its limit
// (the runtime caps page sizes) and still have a Next cursor; only a nil Next
// ends the scan. Cursors do not expire.
//
// Expiry: the TTL variants of the writes make the keys disappear ttl after
// the write. ttl is rounded up to whole seconds; ttl <= 0 is refused with an
// error wrapping ErrInvalidTTL before anything is sent.

// ErrInvalidTTL is wrapped by the error of a TTL write whose ttl is not
// positive. Nothing is sent to the runtime.
var ErrInvalidTTL = errors.New("mu: ttl must be positive")

// Page is one page of a Table.ScanPage.
type Page struct {
	Items []KeyValue // entries in key byte order
	Next  []byte     // cursor of the next page; nil when the scan is complete
}

// KeyPage is one page of a Table.ScanKeysPage.
type KeyPage struct {
	Keys [][]byte // keys in byte order
	Next []byte   // cursor of the next page; nil when the scan is complete
}

// PageScan is one scan of DB.BatchScanPage or DB.BatchScanKeysPage.
type PageScan struct {
	Table  string // table name
	Prefix []byte // only keys starting with these bytes; empty scans the whole table
	Limit  int    // most entries in this page; <= 0 asks for as many as the runtime allows
	Cursor []byte // nil for the first page, else the Next of this scan's previous page
}

// TablePage is one scan's page of a DB.BatchScanPage.
type TablePage struct {
	Table string     // the scanned table
	Items []KeyValue // entries in key byte order
	Next  []byte     // cursor of this scan's next page; nil when it is complete
}

// TableKeyPage is one scan's page of a DB.BatchScanKeysPage.
type TableKeyPage struct {
	Table string   // the scanned table
	Keys  [][]byte // keys in byte order
	Next  []byte   // cursor of this scan's next page; nil when it is complete
}

// PutTTL writes value under key; the key disappears ttl after the write
// (rounded up to whole seconds). ttl <= 0 is an error wrapping
// ErrInvalidTTL.
func (t *Table) PutTTL(key, value []byte, ttl time.Duration) error {
	return t.putTTL(key, value, ttl, false)
}

// PutAtomicTTL is PutAtomic with a time to live, as PutTTL.
func (t *Table) PutAtomicTTL(key, value []byte, ttl time.Duration) error {
	return t.putTTL(key, value, ttl, true)
}

func (t *Table) putTTL(key, value []byte, ttl time.Duration, atomic bool) error {
	secs, err := ttlSeconds("PutExpiring", t.name, ttl)
	if err != nil {
		return err
	}
	return t.ctx.db.empty(&fnproto.PutExpiring{Table: t.name, Key: key, Value: value, IsAtomic: atomic, TTLSeconds: secs}, t.name)
}

// ScanPage returns one page of up to limit entries whose key starts with
// prefix, in key order, starting after cursor (nil for the first page).
// limit <= 0 asks for as many as the runtime allows. Page.Next is the
// cursor of the next page, nil when the scan is complete; see the cursor
// semantics above.
func (t *Table) ScanPage(prefix []byte, limit int, cursor []byte) (Page, error) {
	m, err := t.ctx.c.exchange(t.ctx, &fnproto.ScanPage{Table: t.name, KeyPrefix: prefix, Limit: wireLimit(limit), Cursor: cursor})
	if err != nil {
		return Page{}, err
	}
	switch r := m.(type) {
	case *fnproto.KeyValuePageResult:
		return Page{Items: r.List, Next: r.NextCursor}, nil
	case *fnproto.DbError:
		return Page{}, &DBError{Op: "ScanPage", Table: t.name, Message: r.Error}
	}
	return Page{}, t.ctx.c.unexpected(fnproto.KindScanPage, m)
}

// ScanKeysPage is ScanPage returning keys only.
func (t *Table) ScanKeysPage(prefix []byte, limit int, cursor []byte) (KeyPage, error) {
	m, err := t.ctx.c.exchange(t.ctx, &fnproto.ScanKeysPage{Table: t.name, KeyPrefix: prefix, Limit: wireLimit(limit), Cursor: cursor})
	if err != nil {
		return KeyPage{}, err
	}
	switch r := m.(type) {
	case *fnproto.KeyPageResult:
		return KeyPage{Keys: r.List, Next: r.NextCursor}, nil
	case *fnproto.DbError:
		return KeyPage{}, &DBError{Op: "ScanKeysPage", Table: t.name, Message: r.Error}
	}
	return KeyPage{}, t.ctx.c.unexpected(fnproto.KindScanKeysPage, m)
}

// All iterates over every entry whose key starts with prefix, in key order,
// reading one page per host call as the loop advances (so a loop that
// breaks early reads no further pages). A failure is yielded once, with a
// zero KeyValue, and ends the iteration. The scan follows the cursor
// semantics above: entries written during the loop ahead of its position
// are seen, those behind it are not.
//
//	for kv, err := range ctx.Table("todos").All([]byte("user/7/")) {
//		if err != nil {
//			return nil, err
//		}
//		...
//	}
func (t *Table) All(prefix []byte) iter.Seq2[KeyValue, error] {
	return func(yield func(KeyValue, error) bool) {
		var cursor []byte
		for {
			p, err := t.ScanPage(prefix, 0, cursor)
			if err == nil {
				err = t.stalled("ScanPage", len(p.Items), cursor, p.Next)
			}
			if err != nil {
				yield(KeyValue{}, err)
				return
			}
			for _, kv := range p.Items {
				if !yield(kv, nil) {
					return
				}
			}
			if p.Next == nil {
				return
			}
			cursor = p.Next
		}
	}
}

// Keys iterates over every key that starts with prefix, in order, as All
// does for entries.
func (t *Table) Keys(prefix []byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		var cursor []byte
		for {
			p, err := t.ScanKeysPage(prefix, 0, cursor)
			if err == nil {
				err = t.stalled("ScanKeysPage", len(p.Keys), cursor, p.Next)
			}
			if err != nil {
				yield(nil, err)
				return
			}
			for _, k := range p.Keys {
				if !yield(k, nil) {
					return
				}
			}
			if p.Next == nil {
				return
			}
			cursor = p.Next
		}
	}
}

// stalled reports a runtime that answers a page with no entries and the very
// cursor it was asked to continue from: following it would loop forever.
func (t *Table) stalled(op string, n int, cursor, next []byte) error {
	if n == 0 && cursor != nil && bytes.Equal(cursor, next) {
		return &DBError{Op: op, Table: t.name, Message: "the scan made no progress (empty page with an unchanged cursor)"}
	}
	return nil
}

// BatchPutTTL is BatchPut with one time to live for every entry, as
// Table.PutTTL.
func (d *DB) BatchPutTTL(entries []TableKeyValue, ttl time.Duration) error {
	return d.batchPutTTL(entries, ttl, false)
}

// BatchPutAtomicTTL is BatchPutAtomic (all or none) with one time to live
// for every entry, as Table.PutTTL.
func (d *DB) BatchPutAtomicTTL(entries []TableKeyValue, ttl time.Duration) error {
	return d.batchPutTTL(entries, ttl, true)
}

func (d *DB) batchPutTTL(entries []TableKeyValue, ttl time.Duration, atomic bool) error {
	secs, err := ttlSeconds("BatchPutExpiring", "", ttl)
	if err != nil {
		return err
	}
	return d.empty(&fnproto.BatchPutExpiring{TableKeyValues: entries, IsAtomic: atomic, TTLSeconds: secs}, "")
}

// BatchScanPage reads one page of each scan in one request: result i is
// the page of scans[i]. Each scan pages on its own; pass each TablePage.Next
// back as that scan's Cursor (and drop the scans whose Next is nil) to
// continue.
func (d *DB) BatchScanPage(scans []PageScan) ([]TablePage, error) {
	m, err := d.ctx.c.exchange(d.ctx, &fnproto.BatchScanPage{Scans: wireScans(scans)})
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.BatchScanPageResult:
		out := make([]TablePage, len(r.Results))
		for i, p := range r.Results {
			out[i] = TablePage{Table: p.Table, Items: p.List, Next: p.NextCursor}
		}
		return out, nil
	case *fnproto.DbError:
		return nil, &DBError{Op: "BatchScanPage", Message: r.Error}
	}
	return nil, d.ctx.c.unexpected(fnproto.KindBatchScanPage, m)
}

// BatchScanKeysPage is BatchScanPage returning keys only.
func (d *DB) BatchScanKeysPage(scans []PageScan) ([]TableKeyPage, error) {
	m, err := d.ctx.c.exchange(d.ctx, &fnproto.BatchScanKeysPage{Scans: wireScans(scans)})
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.BatchScanKeysPageResult:
		out := make([]TableKeyPage, len(r.Results))
		for i, p := range r.Results {
			out[i] = TableKeyPage{Table: p.Table, Keys: p.Keys, Next: p.NextCursor}
		}
		return out, nil
	case *fnproto.DbError:
		return nil, &DBError{Op: "BatchScanKeysPage", Message: r.Error}
	}
	return nil, d.ctx.c.unexpected(fnproto.KindBatchScanKeysPage, m)
}

func wireScans(scans []PageScan) []fnproto.ScanSpec {
	if len(scans) == 0 {
		return nil
	}
	out := make([]fnproto.ScanSpec, len(scans))
	for i, s := range scans {
		out[i] = fnproto.ScanSpec{Table: s.Table, KeyPrefix: s.Prefix, Limit: wireLimit(s.Limit), Cursor: s.Cursor}
	}
	return out
}

// ttlSeconds rounds a positive ttl up to whole seconds.
func ttlSeconds(op, table string, ttl time.Duration) (uint64, error) {
	if ttl <= 0 {
		where := op
		if table != "" {
			where += fmt.Sprintf(" %q", table)
		}
		return 0, fmt.Errorf("mu: db %s: %w, got %v", where, ErrInvalidTTL, ttl)
	}
	secs := uint64(ttl / time.Second)
	if ttl%time.Second != 0 && secs < math.MaxUint64 {
		secs++
	}
	return secs, nil
}
