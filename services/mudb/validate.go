package mudb

import (
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// The checks of request fields. field is the name the error gives (a
// proto field path such as items[3].key).

func stackID(b []byte) (ids.StackID, error) {
	id, err := ids.StackIDFromBytes(b)
	if err != nil {
		return id, invalidf("%v", err)
	}
	return id, nil
}

func (s *Server) table(stack ids.StackID, field, name string) (keyspace.Table, error) {
	t := keyspace.Table{Stack: stack, Name: name}
	switch {
	case name == "":
		return t, invalidf("%s: a table name is 1..%d bytes, got none", field, s.cfg.MaxTableNameBytes)
	case len(name) > s.cfg.MaxTableNameBytes:
		return t, tooLarge(field, len(name), "bytes", "max_table_name_bytes", s.cfg.MaxTableNameBytes)
	case !utf8.ValidString(name):
		return t, invalidf("%s: table name %q is not valid UTF-8", field, name)
	}
	return t, nil
}

func (s *Server) key(field string, k []byte) error {
	switch {
	case len(k) == 0:
		return invalidf("%s: a key is 1..%d bytes, got none", field, s.cfg.MaxKeyBytes)
	case len(k) > s.cfg.MaxKeyBytes:
		return tooLarge(field, len(k), "bytes", "max_key_bytes", s.cfg.MaxKeyBytes)
	}
	return nil
}

func (s *Server) prefix(field string, p []byte) error {
	if len(p) > s.cfg.MaxKeyBytes {
		return tooLarge(field, len(p), "bytes", "max_key_bytes", s.cfg.MaxKeyBytes)
	}
	return nil
}

func (s *Server) value(field string, v []byte) error {
	if len(v) > s.cfg.MaxValueBytes {
		return tooLarge(field, len(v), "bytes", "max_value_bytes", s.cfg.MaxValueBytes)
	}
	return nil
}

func (s *Server) batch(field string, n int) error {
	if n > s.cfg.MaxBatchEntries {
		return tooLarge(field, n, "entries", "max_batch_entries", s.cfg.MaxBatchEntries)
	}
	return nil
}

// expiry returns the unix-ms expiry of a write at nowMs with ttl (whole
// seconds, fractions rounded up), or 0 for no ttl.
func expiry(field string, ttl *durationpb.Duration, nowMs uint64) (uint64, error) {
	if ttl == nil {
		return 0, nil
	}
	if err := ttl.CheckValid(); err != nil {
		return 0, invalidf("%s: %v", field, err)
	}
	d := ttl.AsDuration()
	if d < 0 {
		return 0, invalidf("%s: %v is negative", field, d)
	}
	if d == 0 {
		return 0, nil
	}
	secs := (d + time.Second - 1) / time.Second
	return nowMs + uint64(secs)*1000, nil
}

// pageSize is the entries a scan with limit may return.
func (s *Server) pageSize(limit uint32) int {
	if limit == 0 {
		return s.cfg.DefaultScanPage
	}
	return int(min(int64(limit), int64(s.cfg.MaxScanPage)))
}
