package mudb

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	tikverr "github.com/tikv/client-go/v2/error"

	"github.com/muprotocol/mu/libs/ids"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// purgeChunk is how many keys one purge transaction deletes.
const purgeChunk = 1000

// errTakenOver ends a purge whose table another purge now owns.
var errTakenOver = errors.New("another call took the table's deletion over")

// CreateTable implements MudbService: it registers the table (idempotent).
// A table left half-deleted (its DeleteTable was interrupted) is purged
// first, so a recreated table always starts empty.
func (s *Server) CreateTable(ctx context.Context, req *mudbv1.CreateTableRequest) (*mudbv1.CreateTableResponse, error) {
	_, t, err := s.stackTable(req.GetStackId(), req.GetTable())
	if err != nil {
		return nil, err
	}
	for {
		var state *keyspace.TableState
		err := s.update(ctx, "create table", false, nil, func(w *writeTxn) error {
			state = nil
			st, ok, err := registryState(w.ctx, &w.readTxn, t)
			if err != nil || ok {
				state = &st
				return err
			}
			return w.txn.Set(t.RegistryKey(), keyspace.TableState{}.Encode())
		})
		switch {
		case err != nil:
			return nil, err
		case state == nil:
			s.log.Info("table created", "stack", t.Stack, "table", t.Name)
			return &mudbv1.CreateTableResponse{Created: true}, nil
		case !state.Deleting:
			return &mudbv1.CreateTableResponse{Created: false}, nil
		}
		// Half-deleted: finish the deletion, then register it anew.
		token, err := s.hide(ctx, t, true)
		if err != nil {
			return nil, err
		}
		if token == 0 {
			continue // it changed meanwhile: look again
		}
		if _, err := s.purge(ctx, t, token, true); err != nil {
			if errors.Is(err, errTakenOver) {
				continue
			}
			return nil, s.storeError(ctx, "create table", err)
		}
		return &mudbv1.CreateTableResponse{Created: true}, nil
	}
}

// DeleteTable implements MudbService: it hides the table in one
// transaction (from then on data calls answer NOT_FOUND), waits
// MaxTxnDuration so that no write that saw the table live can still
// commit, then deletes its keys in chunks and, in the transaction that
// finds none left, its registry entry.
func (s *Server) DeleteTable(ctx context.Context, req *mudbv1.DeleteTableRequest) (*mudbv1.DeleteTableResponse, error) {
	_, t, err := s.stackTable(req.GetStackId(), req.GetTable())
	if err != nil {
		return nil, err
	}
	var wasLive bool
	var token uint64
	err = s.update(ctx, "delete table", false, nil, func(w *writeTxn) error {
		st, ok, err := registryState(w.ctx, &w.readTxn, t)
		if err != nil || !ok {
			wasLive, token = false, 0
			return err
		}
		wasLive = !st.Deleting
		token = newToken()
		return w.txn.Set(t.RegistryKey(), keyspace.TableState{Deleting: true, Token: token}.Encode())
	})
	if err != nil {
		return nil, err
	}
	if token == 0 {
		return &mudbv1.DeleteTableResponse{Deleted: false}, nil
	}
	n, err := s.purge(ctx, t, token, false)
	if err != nil && !errors.Is(err, errTakenOver) {
		return nil, s.storeError(ctx, "delete table", err)
	}
	s.log.Info("table deleted", "stack", t.Stack, "table", t.Name, "keys", n)
	return &mudbv1.DeleteTableResponse{Deleted: wasLive, KeysDeleted: uint64(n)}, nil
}

// DeleteStackData implements MudbService: DeleteTable for every table of
// the stack, all hidden in one transaction.
func (s *Server) DeleteStackData(ctx context.Context, req *mudbv1.DeleteStackDataRequest) (*mudbv1.DeleteStackDataResponse, error) {
	stack, err := stackID(req.GetStackId())
	if err != nil {
		return nil, err
	}
	type hidden struct {
		t     keyspace.Table
		token uint64
	}
	var all []hidden
	var live int
	err = s.update(ctx, "delete stack data", false, nil, func(w *writeTxn) error {
		all, live = nil, 0
		return eachTable(w.ctx, &w.readTxn, stack, nil, func(t keyspace.Table, st keyspace.TableState) error {
			if !st.Deleting {
				live++
			}
			h := hidden{t: t, token: newToken()}
			all = append(all, h)
			return w.txn.Set(t.RegistryKey(), keyspace.TableState{Deleting: true, Token: h.token}.Encode())
		})
	})
	if err != nil {
		return nil, err
	}
	if err := s.waitWrites(ctx); err != nil {
		return nil, s.storeError(ctx, "delete stack data", err)
	}
	var keys int
	for _, h := range all {
		n, err := s.purgeNow(ctx, h.t, h.token, false)
		keys += n
		if err != nil && !errors.Is(err, errTakenOver) {
			return nil, s.storeError(ctx, "delete stack data", err)
		}
	}
	s.log.Info("stack data deleted", "stack", stack, "tables", live, "keys", keys)
	return &mudbv1.DeleteStackDataResponse{TablesDeleted: uint64(live), KeysDeleted: uint64(keys)}, nil
}

// TableList implements MudbService: the live tables of the stack whose
// name starts with table_prefix, in byte order.
func (s *Server) TableList(ctx context.Context, req *mudbv1.TableListRequest) (*mudbv1.TableListResponse, error) {
	stack, err := stackID(req.GetStackId())
	if err != nil {
		return nil, err
	}
	prefix := req.GetTablePrefix()
	if len(prefix) > s.cfg.MaxTableNameBytes {
		return nil, tooLarge("table_prefix", len(prefix), "bytes", "max_table_name_bytes", s.cfg.MaxTableNameBytes)
	}
	if !utf8.ValidString(prefix) {
		return nil, invalidf("table_prefix %q is not valid UTF-8", prefix)
	}
	resp := &mudbv1.TableListResponse{}
	err = s.view(ctx, "table list", func(r *readTxn) error {
		return eachTable(r.ctx, r, stack, []byte(prefix), func(t keyspace.Table, st keyspace.TableState) error {
			if !st.Deleting {
				resp.Tables = append(resp.Tables, t.Name)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// registryState reads t's registry entry; ok is false when it has none.
func registryState(ctx context.Context, r *readTxn, t keyspace.Table) (keyspace.TableState, bool, error) {
	v, err := r.txn.Get(ctx, t.RegistryKey())
	if tikverr.IsErrNotFound(err) {
		return keyspace.TableState{}, false, nil
	}
	if err != nil {
		return keyspace.TableState{}, false, err
	}
	st, err := keyspace.DecodeTableState(v)
	return st, err == nil, err
}

// eachTable calls fn for every registry entry of stack whose name starts
// with prefix, in byte order.
func eachTable(ctx context.Context, r *readTxn, stack ids.StackID, prefix []byte, fn func(keyspace.Table, keyspace.TableState) error) error {
	base := keyspace.StackRegistryPrefix(stack)
	start := append(bytes.Clone(base), prefix...)
	it, err := r.txn.Iter(start, keyspace.PrefixEnd(start))
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Valid() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st, err := keyspace.DecodeTableState(it.Value())
		if err != nil {
			return err
		}
		if err := fn(keyspace.Table{Stack: stack, Name: string(it.Key()[len(base):])}, st); err != nil {
			return err
		}
		if err := it.Next(); err != nil {
			return err
		}
	}
	return nil
}

func newToken() uint64 { return rand.Uint64() | 1 } // never 0

// hide marks t deleting under a new token, if it is deleting already
// (onlyDeleting) or exists at all; it returns 0 when it did not.
func (s *Server) hide(ctx context.Context, t keyspace.Table, onlyDeleting bool) (uint64, error) {
	var token uint64
	err := s.update(ctx, "hide table", false, nil, func(w *writeTxn) error {
		token = 0
		st, ok, err := registryState(w.ctx, &w.readTxn, t)
		if err != nil || !ok || (onlyDeleting && !st.Deleting) {
			return err
		}
		token = newToken()
		return w.txn.Set(t.RegistryKey(), keyspace.TableState{Deleting: true, Token: token}.Encode())
	})
	return token, err
}

// waitWrites waits MaxTxnDuration: every write transaction that read a
// table as live before it was hidden has committed or failed by then
// (writes check their duration at commit, see boundDuration).
func (s *Server) waitWrites(ctx context.Context) error {
	t := time.NewTimer(s.cfg.MaxTxnDuration)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// purge waits for the writes that may still target the hidden table t,
// then deletes its keys (see purgeNow).
func (s *Server) purge(ctx context.Context, t keyspace.Table, token uint64, recreate bool) (int, error) {
	if err := s.waitWrites(ctx); err != nil {
		return 0, err
	}
	return s.purgeNow(ctx, t, token, recreate)
}

// purgeNow deletes the keys of the hidden table t (and their TTL index
// entries) purgeChunk per transaction, each checking that the table is
// still hidden under token. The transaction that finds fewer keys than a
// chunk, so leaves the range empty, also removes the registry entry, or
// with recreate registers the table live again. It returns the keys
// deleted, and errTakenOver when another call re-hid the table.
func (s *Server) purgeNow(ctx context.Context, t keyspace.Table, token uint64, recreate bool) (int, error) {
	total := 0
	for {
		n, done := 0, false
		err := s.update(ctx, "purge table", false, nil, func(w *writeTxn) error {
			n, done = 0, false
			st, ok, err := registryState(w.ctx, &w.readTxn, t)
			if err != nil {
				return err
			}
			if !ok || !st.Deleting || st.Token != token {
				return errTakenOver
			}
			start, end := t.Range(nil)
			var dks, envs [][]byte
			it, err := w.txn.Iter(start, end)
			if err != nil {
				return err
			}
			for it.Valid() && len(dks) < purgeChunk {
				v := it.Value()
				dks = append(dks, bytes.Clone(it.Key()))
				envs = append(envs, bytes.Clone(v[:min(len(v), keyspace.EnvelopeHeader)]))
				if err := it.Next(); err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
			for i, dk := range dks {
				w.stored[string(dk)] = envs[i]
				if err := w.del(dk); err != nil {
					return err
				}
			}
			n = len(dks)
			if n < purgeChunk {
				done = true
				if recreate {
					return w.txn.Set(t.RegistryKey(), keyspace.TableState{}.Encode())
				}
				return w.txn.Delete(t.RegistryKey())
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, errTakenOver) {
				return total, errTakenOver
			}
			return total, err
		}
		total += n
		if done {
			return total, nil
		}
	}
}
