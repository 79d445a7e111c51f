package mudb

import (
	"bytes"
	"context"
	"fmt"

	"github.com/muprotocol/mu/libs/ids"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// Put implements MudbService: one transaction that checks the table,
// replaces the value and its TTL index entry.
func (s *Server) Put(ctx context.Context, req *mudbv1.PutRequest) (*mudbv1.PutResponse, error) {
	stack, t, err := s.stackTable(req.GetStackId(), req.GetTable())
	if err != nil {
		return nil, err
	}
	if err := s.key("key", req.GetKey()); err != nil {
		return nil, err
	}
	if err := s.value("value", req.GetValue()); err != nil {
		return nil, err
	}
	if _, err := expiry("ttl", req.GetTtl(), 0); err != nil {
		return nil, err
	}
	dk := t.Key(req.GetKey())
	err = s.update(ctx, "put", req.GetIsAtomic(), [][]byte{dk}, func(w *writeTxn) error {
		if err := w.requireTables(t); err != nil {
			return err
		}
		if _, err := w.current(dk); err != nil {
			return err
		}
		exp, _ := expiry("ttl", req.GetTtl(), w.nowMs)
		return w.put(dk, req.GetValue(), exp)
	})
	if err != nil {
		return nil, err
	}
	return &mudbv1.PutResponse{Ops: s.meter(stack, 0, writeOps(1, req.GetIsAtomic()))}, nil
}

// Get implements MudbService.
func (s *Server) Get(ctx context.Context, req *mudbv1.GetRequest) (*mudbv1.GetResponse, error) {
	stack, t, err := s.stackTable(req.GetStackId(), req.GetTable())
	if err != nil {
		return nil, err
	}
	if err := s.key("key", req.GetKey()); err != nil {
		return nil, err
	}
	var resp mudbv1.GetResponse
	err = s.view(ctx, "get", func(r *readTxn) error {
		if err := r.requireTables(t); err != nil {
			return err
		}
		v, ok, err := r.get(t.Key(req.GetKey()))
		if ok {
			resp.Value = nonNil(v)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	resp.Ops = s.meter(stack, readOps(0), 0)
	return &resp, nil
}

// nonNil keeps a present empty value distinct from an absent one.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// Delete implements MudbService.
func (s *Server) Delete(ctx context.Context, req *mudbv1.DeleteRequest) (*mudbv1.DeleteResponse, error) {
	stack, t, err := s.stackTable(req.GetStackId(), req.GetTable())
	if err != nil {
		return nil, err
	}
	if err := s.key("key", req.GetKey()); err != nil {
		return nil, err
	}
	dk := t.Key(req.GetKey())
	err = s.update(ctx, "delete", req.GetIsAtomic(), [][]byte{dk}, func(w *writeTxn) error {
		if err := w.requireTables(t); err != nil {
			return err
		}
		if _, err := w.current(dk); err != nil {
			return err
		}
		return w.del(dk)
	})
	if err != nil {
		return nil, err
	}
	return &mudbv1.DeleteResponse{Ops: s.meter(stack, 0, writeOps(1, req.GetIsAtomic()))}, nil
}

// DeleteByPrefix implements MudbService: one transaction over the prefix's
// range, refused whole when it holds more than MaxDeletePrefixKeys keys.
func (s *Server) DeleteByPrefix(ctx context.Context, req *mudbv1.DeleteByPrefixRequest) (*mudbv1.DeleteByPrefixResponse, error) {
	stack, t, err := s.stackTable(req.GetStackId(), req.GetTable())
	if err != nil {
		return nil, err
	}
	if err := s.prefix("key_prefix", req.GetKeyPrefix()); err != nil {
		return nil, err
	}
	var deleted int
	err = s.update(ctx, "delete by prefix", false, nil, func(w *writeTxn) error {
		deleted = 0
		if err := w.requireTables(t); err != nil {
			return err
		}
		start, end := t.Range(req.GetKeyPrefix())
		// Collect first, delete after: the iterator reads the
		// transaction's buffer, which the deletes change.
		type doomed struct {
			dk  []byte
			env []byte // envelope header only: enough to find the TTL entry
		}
		var all []doomed
		it, err := w.txn.Iter(start, end)
		if err != nil {
			return err
		}
		for it.Valid() {
			if len(all) >= s.cfg.MaxDeletePrefixKeys {
				it.Close()
				return resultTooLarge("key_prefix %q of table %q holds more than max_delete_prefix_keys %d keys; nothing was deleted (delete narrower prefixes)",
					req.GetKeyPrefix(), t.Name, s.cfg.MaxDeletePrefixKeys)
			}
			if len(all)%256 == 0 && w.ctx.Err() != nil {
				it.Close()
				return w.ctx.Err()
			}
			v := it.Value()
			all = append(all, doomed{dk: bytes.Clone(it.Key()), env: bytes.Clone(v[:min(len(v), keyspace.EnvelopeHeader)])})
			if err := it.Next(); err != nil {
				it.Close()
				return err
			}
		}
		it.Close()
		for _, d := range all {
			w.stored[string(d.dk)] = d.env
			if _, exp, err := keyspace.Unwrap(d.env); err == nil && keyspace.Live(exp, w.nowMs) {
				deleted++
			}
			if err := w.del(d.dk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &mudbv1.DeleteByPrefixResponse{
		KeysDeleted: uint64(deleted),
		Ops:         s.meter(stack, 0, writeOps(max(deleted, 1), false)),
	}, nil
}

// CompareAndSwap implements MudbService: a pessimistic transaction that
// locks the key, reads its latest value under the lock and writes only if
// it matches, so swaps of one key are linearizable.
func (s *Server) CompareAndSwap(ctx context.Context, req *mudbv1.CompareAndSwapRequest) (*mudbv1.CompareAndSwapResponse, error) {
	stack, t, err := s.stackTable(req.GetStackId(), req.GetTable())
	if err != nil {
		return nil, err
	}
	if err := s.key("key", req.GetKey()); err != nil {
		return nil, err
	}
	if err := s.value("new_value", req.GetNewValue()); err != nil {
		return nil, err
	}
	if err := s.value("previous_value", req.GetPreviousValue()); err != nil {
		return nil, err
	}
	dk := t.Key(req.GetKey())
	var resp mudbv1.CompareAndSwapResponse
	err = s.update(ctx, "compare and swap", true, [][]byte{dk}, func(w *writeTxn) error {
		resp = mudbv1.CompareAndSwapResponse{}
		if err := w.requireTables(t); err != nil {
			return err
		}
		cur, err := w.current(dk)
		if err != nil {
			return err
		}
		var old []byte
		exists := false
		if stored := cur[string(dk)]; stored != nil {
			if old, exists, err = liveValue(stored, w.nowMs); err != nil {
				return err
			}
		}
		if exists {
			resp.PreviousValue = nonNil(old)
		}
		want := req.PreviousValue // nil: the key must be absent
		if (want == nil) != !exists || (exists && !bytes.Equal(old, want)) {
			return nil // no swap; the commit only releases the lock
		}
		resp.IsSwapped = true
		return w.put(dk, req.GetNewValue(), 0)
	})
	if err != nil {
		return nil, err
	}
	resp.Ops = s.meter(stack, 1, 2)
	return &resp, nil
}

// BatchPut implements MudbService: every item in one transaction, all or
// nothing, whether or not is_atomic.
func (s *Server) BatchPut(ctx context.Context, req *mudbv1.BatchPutRequest) (*mudbv1.BatchPutResponse, error) {
	stack, err := stackID(req.GetStackId())
	if err != nil {
		return nil, err
	}
	items := req.GetItems()
	if err := s.batch("items", len(items)); err != nil {
		return nil, err
	}
	if _, err := expiry("ttl", req.GetTtl(), 0); err != nil {
		return nil, err
	}
	tables := make([]keyspace.Table, len(items))
	dks := make([][]byte, len(items))
	for i, it := range items {
		if tables[i], err = s.table(stack, fmt.Sprintf("items[%d].table", i), it.GetTable()); err != nil {
			return nil, err
		}
		if err := s.key(fmt.Sprintf("items[%d].key", i), it.GetKey()); err != nil {
			return nil, err
		}
		if err := s.value(fmt.Sprintf("items[%d].value", i), it.GetValue()); err != nil {
			return nil, err
		}
		dks[i] = tables[i].Key(it.GetKey())
	}
	err = s.update(ctx, "batch put", req.GetIsAtomic(), dks, func(w *writeTxn) error {
		if err := w.requireTables(tables...); err != nil {
			return err
		}
		if _, err := w.current(dks...); err != nil {
			return err
		}
		exp, _ := expiry("ttl", req.GetTtl(), w.nowMs)
		for i, it := range items {
			if err := w.put(dks[i], it.GetValue(), exp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &mudbv1.BatchPutResponse{Ops: s.meter(stack, 0, writeOps(len(items), req.GetIsAtomic()))}, nil
}

// BatchGet implements MudbService: one snapshot for every key.
func (s *Server) BatchGet(ctx context.Context, req *mudbv1.BatchGetRequest) (*mudbv1.BatchGetResponse, error) {
	stack, err := stackID(req.GetStackId())
	if err != nil {
		return nil, err
	}
	keys := req.GetKeys()
	if err := s.batch("keys", len(keys)); err != nil {
		return nil, err
	}
	tables, dks, err := s.tableKeys(stack, keys)
	if err != nil {
		return nil, err
	}
	var resp mudbv1.BatchGetResponse
	err = s.view(ctx, "batch get", func(r *readTxn) error {
		if err := r.requireTables(tables...); err != nil {
			return err
		}
		got, err := r.txn.BatchGet(ctx, dks)
		if err != nil {
			return err
		}
		size := replyOverhead
		for i, k := range keys {
			stored, ok := got[string(dks[i])]
			if !ok {
				continue
			}
			v, live, err := liveValue(stored, r.nowMs)
			if err != nil {
				return err
			}
			if !live {
				continue
			}
			size += len(k.GetTable()) + len(k.GetKey()) + len(v) + entryOverhead
			if size > s.cfg.MaxResponseBytes {
				return resultTooLarge("the reply to %d keys would pass max_response_bytes %d; ask for fewer keys", len(keys), s.cfg.MaxResponseBytes)
			}
			resp.Items = append(resp.Items, &mudbv1.TableKeyValue{Table: k.GetTable(), Key: k.GetKey(), Value: nonNil(v)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp.Ops = s.meter(stack, readOps(len(resp.Items)), 0)
	return &resp, nil
}

// BatchDelete implements MudbService: every key in one transaction.
func (s *Server) BatchDelete(ctx context.Context, req *mudbv1.BatchDeleteRequest) (*mudbv1.BatchDeleteResponse, error) {
	stack, err := stackID(req.GetStackId())
	if err != nil {
		return nil, err
	}
	keys := req.GetKeys()
	if err := s.batch("keys", len(keys)); err != nil {
		return nil, err
	}
	tables, dks, err := s.tableKeys(stack, keys)
	if err != nil {
		return nil, err
	}
	err = s.update(ctx, "batch delete", false, nil, func(w *writeTxn) error {
		if err := w.requireTables(tables...); err != nil {
			return err
		}
		if _, err := w.current(dks...); err != nil {
			return err
		}
		for _, dk := range dks {
			if err := w.del(dk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &mudbv1.BatchDeleteResponse{Ops: s.meter(stack, 0, writeOps(len(keys), false))}, nil
}

// stackTable checks a request's stack id and table name.
func (s *Server) stackTable(stackBytes []byte, table string) (ids.StackID, keyspace.Table, error) {
	stack, err := stackID(stackBytes)
	if err != nil {
		return stack, keyspace.Table{}, err
	}
	t, err := s.table(stack, "table", table)
	return stack, t, err
}

// tableKeys checks the table and key of every entry of a batch.
func (s *Server) tableKeys(stack ids.StackID, keys []*mudbv1.TableKey) ([]keyspace.Table, [][]byte, error) {
	tables := make([]keyspace.Table, len(keys))
	dks := make([][]byte, len(keys))
	for i, k := range keys {
		var err error
		if tables[i], err = s.table(stack, fmt.Sprintf("keys[%d].table", i), k.GetTable()); err != nil {
			return nil, nil, err
		}
		if err := s.key(fmt.Sprintf("keys[%d].key", i), k.GetKey()); err != nil {
			return nil, nil, err
		}
		dks[i] = tables[i].Key(k.GetKey())
	}
	return tables, dks, nil
}
