package mu

import (
	"math"

	"github.com/muprotocol/mu/libs/fnproto"
)

// KeyValue is one entry of a table.
type KeyValue = fnproto.KeyValue

// TableKey names a key (or, for the batch scans, a key prefix) in a table.
type TableKey = fnproto.TableKey

// TableKeyValue is one entry together with its table.
type TableKeyValue = fnproto.TableKeyValue

// Table is one of the stack's key/value tables (a KeyValueTable service in
// the manifest). Its methods block until the runtime answers and fail with a
// *DBError when the database service reports an error. Keys and values are
// not retained; returned slices belong to the caller.
type Table struct {
	ctx  *Context
	name string
}

// Table returns the table called name. No request is made until a method is
// called, so an undeclared table shows up as a *DBError then.
func (ctx *Context) Table(name string) *Table { return &Table{ctx: ctx, name: name} }

// Name returns the table's name.
func (t *Table) Name() string { return t.name }

// Put writes value under key.
func (t *Table) Put(key, value []byte) error {
	return t.ctx.db.empty(&fnproto.Put{Table: t.name, Key: key, Value: value}, t.name)
}

// PutAtomic writes value under key in its own transaction, so concurrent
// writers never interleave with it (billed as two writes).
func (t *Table) PutAtomic(key, value []byte) error {
	return t.ctx.db.empty(&fnproto.Put{Table: t.name, Key: key, Value: value, IsAtomic: true}, t.name)
}

// Get returns the value stored under key; found is false if there is none.
// A stored empty value is returned as a non-nil empty slice.
func (t *Table) Get(key []byte) (value []byte, found bool, err error) {
	m, err := t.ctx.c.exchange(t.ctx, &fnproto.Get{Table: t.name, Key: key})
	if err != nil {
		return nil, false, err
	}
	switch r := m.(type) {
	case *fnproto.SingleResult:
		if r.Item == nil {
			return nil, false, nil
		}
		return nonNil(*r.Item), true, nil
	case *fnproto.EmptyResult: // also accepted for "not found"
		return nil, false, nil
	case *fnproto.DbError:
		return nil, false, &DBError{Op: "Get", Table: t.name, Message: r.Error}
	}
	return nil, false, t.ctx.c.unexpected(fnproto.KindGet, m)
}

// Delete removes key; deleting a missing key is not an error.
func (t *Table) Delete(key []byte) error {
	return t.ctx.db.empty(&fnproto.Delete{Table: t.name, Key: key}, t.name)
}

// DeleteAtomic removes key in its own transaction.
func (t *Table) DeleteAtomic(key []byte) error {
	return t.ctx.db.empty(&fnproto.Delete{Table: t.name, Key: key, IsAtomic: true}, t.name)
}

// DeleteByPrefix removes every key that starts with prefix (all keys if
// prefix is empty).
func (t *Table) DeleteByPrefix(prefix []byte) error {
	return t.ctx.db.empty(&fnproto.DeleteByPrefix{Table: t.name, KeyPrefix: prefix}, t.name)
}

// Scan returns up to limit entries whose key starts with prefix, in key
// order. limit <= 0 asks for as many as the runtime allows. Scan reads one
// page only: entries past the runtime's page size (1000 entries or about
// 4 MiB in muDB) are not returned; ScanPage and All read them.
func (t *Table) Scan(prefix []byte, limit int) ([]KeyValue, error) {
	m, err := t.ctx.c.exchange(t.ctx, &fnproto.Scan{Table: t.name, KeyPrefix: prefix, Limit: wireLimit(limit)})
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.KeyValueListResult:
		return r.List, nil
	case *fnproto.DbError:
		return nil, &DBError{Op: "Scan", Table: t.name, Message: r.Error}
	}
	return nil, t.ctx.c.unexpected(fnproto.KindScan, m)
}

// ScanKeys returns up to limit keys that start with prefix, in order.
// limit <= 0 asks for as many as the runtime allows. Like Scan it reads one
// page only; ScanKeysPage and Keys read the rest.
func (t *Table) ScanKeys(prefix []byte, limit int) ([][]byte, error) {
	m, err := t.ctx.c.exchange(t.ctx, &fnproto.ScanKeys{Table: t.name, KeyPrefix: prefix, Limit: wireLimit(limit)})
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.ListResult:
		return r.List, nil
	case *fnproto.DbError:
		return nil, &DBError{Op: "ScanKeys", Table: t.name, Message: r.Error}
	}
	return nil, t.ctx.c.unexpected(fnproto.KindScanKeys, m)
}

// CompareAndSwap writes newValue under key if the key currently holds
// expected, or, when expected is nil, if the key does not exist (a non-nil
// empty expected matches a stored empty value). It returns the value the
// key held before (nil if it did not exist) and whether newValue was written.
func (t *Table) CompareAndSwap(key, newValue, expected []byte) (previous []byte, swapped bool, err error) {
	req := &fnproto.CompareAndSwap{Table: t.name, Key: key, NewValue: newValue}
	if expected != nil {
		req.PreviousValue = &expected
	}
	m, err := t.ctx.c.exchange(t.ctx, req)
	if err != nil {
		return nil, false, err
	}
	switch r := m.(type) {
	case *fnproto.CasResult:
		if r.PreviousValue != nil {
			previous = nonNil(*r.PreviousValue)
		}
		return previous, r.IsSwapped, nil
	case *fnproto.DbError:
		return nil, false, &DBError{Op: "CompareAndSwap", Table: t.name, Message: r.Error}
	}
	return nil, false, t.ctx.c.unexpected(fnproto.KindCompareAndSwap, m)
}

// DB gives the operations that span tables. Obtain it with Context.DB.
type DB struct {
	ctx *Context
}

// DB returns the stack's database, for batch operations across tables.
func (ctx *Context) DB() *DB { return &ctx.db }

// Table returns the table called name; see Context.Table.
func (d *DB) Table(name string) *Table { return d.ctx.Table(name) }

// Tables returns the names of the stack's tables that start with prefix
// (all of them if prefix is empty).
func (d *DB) Tables(prefix string) ([]string, error) {
	m, err := d.ctx.c.exchange(d.ctx, &fnproto.TableList{TablePrefix: prefix})
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.ListResult:
		names := make([]string, len(r.List))
		for i, n := range r.List {
			names[i] = string(n)
		}
		return names, nil
	case *fnproto.DbError:
		return nil, &DBError{Op: "TableList", Message: r.Error}
	}
	return nil, d.ctx.c.unexpected(fnproto.KindTableList, m)
}

// BatchPut writes every entry in one request.
func (d *DB) BatchPut(entries []TableKeyValue) error {
	return d.empty(&fnproto.BatchPut{TableKeyValues: entries}, "")
}

// BatchPutAtomic writes every entry in one transaction: all or none.
func (d *DB) BatchPutAtomic(entries []TableKeyValue) error {
	return d.empty(&fnproto.BatchPut{TableKeyValues: entries, IsAtomic: true}, "")
}

// BatchGet reads several keys, possibly from several tables, in one
// request. It returns the entries that exist; missing keys are left out.
func (d *DB) BatchGet(keys []TableKey) ([]TableKeyValue, error) {
	return d.entries(&fnproto.BatchGet{TableKeys: keys})
}

// BatchDelete removes several keys in one request.
func (d *DB) BatchDelete(keys []TableKey) error {
	return d.empty(&fnproto.BatchDelete{TableKeys: keys}, "")
}

// BatchScan scans several (table, key prefix) pairs in one request and
// returns up to eachLimit entries for each. eachLimit <= 0 asks for as many
// as the runtime allows. Each scan gets its first page only; BatchScanPage
// continues them.
func (d *DB) BatchScan(prefixes []TableKey, eachLimit int) ([]TableKeyValue, error) {
	return d.entries(&fnproto.BatchScan{TableKeyPrefixes: prefixes, Limit: wireLimit(eachLimit)})
}

// BatchScanKeys is BatchScan returning keys only.
func (d *DB) BatchScanKeys(prefixes []TableKey, eachLimit int) ([]TableKey, error) {
	m, err := d.ctx.c.exchange(d.ctx, &fnproto.BatchScanKeys{TableKeyPrefixes: prefixes, Limit: wireLimit(eachLimit)})
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.TableKeyListResult:
		return r.List, nil
	case *fnproto.DbError:
		return nil, &DBError{Op: "BatchScanKeys", Message: r.Error}
	}
	return nil, d.ctx.c.unexpected(fnproto.KindBatchScanKeys, m)
}

// entries runs a request answered by TableKeyValueListResult.
func (d *DB) entries(req fnproto.Message) ([]TableKeyValue, error) {
	m, err := d.ctx.c.exchange(d.ctx, req)
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.TableKeyValueListResult:
		return r.List, nil
	case *fnproto.DbError:
		return nil, &DBError{Op: fnproto.KindName(fnproto.FromFunction, req.Kind()), Message: r.Error}
	}
	return nil, d.ctx.c.unexpected(req.Kind(), m)
}

// empty runs a request answered by EmptyResult.
func (d *DB) empty(req fnproto.Message, table string) error {
	m, err := d.ctx.c.exchange(d.ctx, req)
	if err != nil {
		return err
	}
	switch r := m.(type) {
	case *fnproto.EmptyResult:
		return nil
	case *fnproto.DbError:
		return &DBError{Op: fnproto.KindName(fnproto.FromFunction, req.Kind()), Table: table, Message: r.Error}
	}
	return d.ctx.c.unexpected(req.Kind(), m)
}

// wireLimit maps an API limit onto the protocol's u32: <= 0 (no limit of
// the caller's own) becomes the largest value, which the runtime caps.
func wireLimit(n int) uint32 {
	if n <= 0 || uint64(n) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(n)
}

// nonNil turns the decoder's nil for an empty byte string into an empty
// slice, so a found empty value is distinguishable from "not found".
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
