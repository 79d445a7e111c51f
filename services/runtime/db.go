package runtime

import (
	"context"
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// The db bridge: a function's db messages (fnproto class db) answered by
// muDB's gRPC API, scoped to the stack of the deployment the calling
// instance belongs to. Nothing the function sends chooses the stack.
//
// Metering is muDB's: it reports each call's reads and writes to billing
// itself, so the bridge records no usage (it counts requests in metrics).

// Outcomes of a db request, the "outcome" label of mu_runtime_db_requests_total.
const (
	dbOK           = "ok"           // muDB answered and the reply was sent
	dbFailed       = "error"        // muDB answered with an error status, sent as DbError
	dbUndeclared   = "undeclared"   // a table the manifest does not declare; muDB not called
	dbUnconfigured = "unconfigured" // no muDB on this node
	dbInvalid      = "invalid"      // refused by the runtime (ttl_seconds 0); muDB not called
	dbTooLarge     = "too_large"    // muDB's reply would not fit one protocol frame
	dbDeadline     = "deadline"     // the call's context ended during the request
)

// maxDurationSeconds is the largest google.protobuf.Duration (10000 years);
// longer TTLs are clamped to it.
const maxDurationSeconds = 315_576_000_000

// dbBridge is the node's connection to muDB, shared by every deployment.
type dbBridge struct {
	client   mudbv1.MudbServiceClient // nil: no muDB configured
	maxFrame int                      // Config.MaxFrameSize
	requests *prometheus.CounterVec   // by kind, outcome
}

// stackDB is one deployment's access to muDB: its stack id and the tables
// its manifest declares. It is immutable and safe for concurrent use.
type stackDB struct {
	b      *dbBridge
	stack  []byte // the deployment's 32-byte stack id, sent with every request
	tables map[string]bool
}

func (b *dbBridge) forStack(id ids.StackID, m *manifest.Manifest) *stackDB {
	tables := make(map[string]bool, len(m.Tables))
	for _, t := range m.Tables {
		tables[t.Name] = true
	}
	return &stackDB{b: b, stack: id.Bytes(), tables: tables}
}

// refusal is a db request the bridge answers itself, without muDB.
type refusal struct {
	outcome string
	msg     string
}

func (r *refusal) Error() string { return r.msg }

// serve answers one db message. Failures the function should see come back
// as a DbError reply; the error result is only ever ctx's error, when the
// call's deadline or cancellation ended the request (the instance then
// fails the call as a deadline).
func (s *stackDB) serve(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
	kind := fnproto.KindName(fnproto.FromFunction, m.Kind())
	reply, err := s.call(ctx, m)
	if err != nil {
		if ctx.Err() != nil {
			s.b.count(kind, dbDeadline)
			return nil, ctx.Err()
		}
		if r, ok := err.(*refusal); ok {
			s.b.count(kind, r.outcome)
			return s.b.dbError(r.msg), nil
		}
		s.b.count(kind, dbFailed)
		return s.b.dbError(serviceErrorText("muDB", err)), nil
	}
	if n := replySize(reply) + 2; n > s.b.maxFrame {
		s.b.count(kind, dbTooLarge)
		return s.b.dbError(fmt.Sprintf("the %s reply of %d bytes exceeds the function protocol's frame limit of %d bytes; read fewer entries per request",
			kind, n, s.b.maxFrame)), nil
	}
	s.b.count(kind, dbOK)
	return reply, nil
}

func (b *dbBridge) count(kind, outcome string) { countRequest(b.requests, kind, outcome) }

// dbError makes a DbError whose text is valid UTF-8 and leaves room in the
// frame.
func (b *dbBridge) dbError(msg string) *fnproto.DbError {
	return &fnproto.DbError{Error: hostErrorText(msg, b.maxFrame)}
}

// call checks m against the deployment and runs it on muDB.
func (s *stackDB) call(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
	if s.b.client == nil {
		return nil, &refusal{dbUnconfigured, "muDB is not configured on this runtime node (" + fnproto.KindName(fnproto.FromFunction, m.Kind()) + ")"}
	}
	if err := s.checkTables(m); err != nil {
		return nil, err
	}
	c, id := s.b.client, s.stack
	switch m := m.(type) {
	case *fnproto.Put:
		if _, err := c.Put(ctx, &mudbv1.PutRequest{StackId: id, Table: m.Table, Key: m.Key, Value: m.Value, IsAtomic: m.IsAtomic}); err != nil {
			return nil, err
		}
		return &fnproto.EmptyResult{}, nil
	case *fnproto.PutExpiring:
		ttl, err := ttlOf(m.TTLSeconds)
		if err != nil {
			return nil, err
		}
		if _, err := c.Put(ctx, &mudbv1.PutRequest{StackId: id, Table: m.Table, Key: m.Key, Value: m.Value, IsAtomic: m.IsAtomic, Ttl: ttl}); err != nil {
			return nil, err
		}
		return &fnproto.EmptyResult{}, nil
	case *fnproto.Get:
		r, err := c.Get(ctx, &mudbv1.GetRequest{StackId: id, Table: m.Table, Key: m.Key})
		if err != nil {
			return nil, err
		}
		if r.Value == nil {
			return &fnproto.SingleResult{}, nil
		}
		return &fnproto.SingleResult{Item: &r.Value}, nil
	case *fnproto.Delete:
		if _, err := c.Delete(ctx, &mudbv1.DeleteRequest{StackId: id, Table: m.Table, Key: m.Key, IsAtomic: m.IsAtomic}); err != nil {
			return nil, err
		}
		return &fnproto.EmptyResult{}, nil
	case *fnproto.DeleteByPrefix:
		if _, err := c.DeleteByPrefix(ctx, &mudbv1.DeleteByPrefixRequest{StackId: id, Table: m.Table, KeyPrefix: m.KeyPrefix}); err != nil {
			return nil, err
		}
		return &fnproto.EmptyResult{}, nil
	case *fnproto.Scan:
		r, err := c.Scan(ctx, &mudbv1.ScanRequest{StackId: id, Table: m.Table, KeyPrefix: m.KeyPrefix, Limit: m.Limit})
		if err != nil {
			return nil, err
		}
		return &fnproto.KeyValueListResult{List: keyValues(r.GetItems())}, nil
	case *fnproto.ScanPage:
		r, err := c.Scan(ctx, &mudbv1.ScanRequest{StackId: id, Table: m.Table, KeyPrefix: m.KeyPrefix, Limit: m.Limit, Cursor: m.Cursor})
		if err != nil {
			return nil, err
		}
		return &fnproto.KeyValuePageResult{List: keyValues(r.GetItems()), NextCursor: r.GetNextCursor()}, nil
	case *fnproto.ScanKeys:
		r, err := c.ScanKeys(ctx, &mudbv1.ScanKeysRequest{StackId: id, Table: m.Table, KeyPrefix: m.KeyPrefix, Limit: m.Limit})
		if err != nil {
			return nil, err
		}
		return &fnproto.ListResult{List: r.GetKeys()}, nil
	case *fnproto.ScanKeysPage:
		r, err := c.ScanKeys(ctx, &mudbv1.ScanKeysRequest{StackId: id, Table: m.Table, KeyPrefix: m.KeyPrefix, Limit: m.Limit, Cursor: m.Cursor})
		if err != nil {
			return nil, err
		}
		return &fnproto.KeyPageResult{List: r.GetKeys(), NextCursor: r.GetNextCursor()}, nil
	case *fnproto.TableList:
		r, err := c.TableList(ctx, &mudbv1.TableListRequest{StackId: id, TablePrefix: m.TablePrefix})
		if err != nil {
			return nil, err
		}
		names := make([][]byte, len(r.GetTables()))
		for i, n := range r.GetTables() {
			names[i] = []byte(n)
		}
		return &fnproto.ListResult{List: names}, nil
	case *fnproto.CompareAndSwap:
		req := &mudbv1.CompareAndSwapRequest{StackId: id, Table: m.Table, Key: m.Key, NewValue: m.NewValue}
		if m.PreviousValue != nil {
			// Present and empty must stay present: muDB reads a nil slice as unset.
			req.PreviousValue = *m.PreviousValue
			if req.PreviousValue == nil {
				req.PreviousValue = []byte{}
			}
		}
		r, err := c.CompareAndSwap(ctx, req)
		if err != nil {
			return nil, err
		}
		out := &fnproto.CasResult{IsSwapped: r.GetIsSwapped()}
		if r.PreviousValue != nil {
			out.PreviousValue = &r.PreviousValue
		}
		return out, nil
	case *fnproto.BatchPut:
		if _, err := c.BatchPut(ctx, &mudbv1.BatchPutRequest{StackId: id, Items: tableKeyValuesPB(m.TableKeyValues), IsAtomic: m.IsAtomic}); err != nil {
			return nil, err
		}
		return &fnproto.EmptyResult{}, nil
	case *fnproto.BatchPutExpiring:
		ttl, err := ttlOf(m.TTLSeconds)
		if err != nil {
			return nil, err
		}
		if _, err := c.BatchPut(ctx, &mudbv1.BatchPutRequest{StackId: id, Items: tableKeyValuesPB(m.TableKeyValues), IsAtomic: m.IsAtomic, Ttl: ttl}); err != nil {
			return nil, err
		}
		return &fnproto.EmptyResult{}, nil
	case *fnproto.BatchGet:
		r, err := c.BatchGet(ctx, &mudbv1.BatchGetRequest{StackId: id, Keys: tableKeysPB(m.TableKeys)})
		if err != nil {
			return nil, err
		}
		list := make([]fnproto.TableKeyValue, len(r.GetItems()))
		for i, it := range r.GetItems() {
			list[i] = fnproto.TableKeyValue{Table: it.GetTable(), Key: it.GetKey(), Value: it.GetValue()}
		}
		return &fnproto.TableKeyValueListResult{List: list}, nil
	case *fnproto.BatchDelete:
		if _, err := c.BatchDelete(ctx, &mudbv1.BatchDeleteRequest{StackId: id, Keys: tableKeysPB(m.TableKeys)}); err != nil {
			return nil, err
		}
		return &fnproto.EmptyResult{}, nil
	case *fnproto.BatchScan:
		r, err := c.BatchScan(ctx, &mudbv1.BatchScanRequest{StackId: id, Scans: prefixScans(m.TableKeyPrefixes, m.Limit)})
		if err != nil {
			return nil, err
		}
		var list []fnproto.TableKeyValue
		for i, res := range r.GetResults() {
			table := resultTable(res.GetTable(), m.TableKeyPrefixes, i)
			for _, kv := range res.GetItems() {
				list = append(list, fnproto.TableKeyValue{Table: table, Key: kv.GetKey(), Value: kv.GetValue()})
			}
		}
		return &fnproto.TableKeyValueListResult{List: list}, nil
	case *fnproto.BatchScanKeys:
		r, err := c.BatchScanKeys(ctx, &mudbv1.BatchScanKeysRequest{StackId: id, Scans: prefixScans(m.TableKeyPrefixes, m.Limit)})
		if err != nil {
			return nil, err
		}
		var list []fnproto.TableKey
		for i, res := range r.GetResults() {
			table := resultTable(res.GetTable(), m.TableKeyPrefixes, i)
			for _, k := range res.GetKeys() {
				list = append(list, fnproto.TableKey{Table: table, Key: k})
			}
		}
		return &fnproto.TableKeyListResult{List: list}, nil
	case *fnproto.BatchScanPage:
		r, err := c.BatchScan(ctx, &mudbv1.BatchScanRequest{StackId: id, Scans: scanSpecsPB(m.Scans)})
		if err != nil {
			return nil, err
		}
		out := make([]fnproto.TableKeyValuePage, len(r.GetResults()))
		for i, res := range r.GetResults() {
			out[i] = fnproto.TableKeyValuePage{Table: res.GetTable(), List: keyValues(res.GetItems()), NextCursor: res.GetNextCursor()}
		}
		return &fnproto.BatchScanPageResult{Results: out}, nil
	case *fnproto.BatchScanKeysPage:
		r, err := c.BatchScanKeys(ctx, &mudbv1.BatchScanKeysRequest{StackId: id, Scans: scanSpecsPB(m.Scans)})
		if err != nil {
			return nil, err
		}
		out := make([]fnproto.TableKeyPage, len(r.GetResults()))
		for i, res := range r.GetResults() {
			out[i] = fnproto.TableKeyPage{Table: res.GetTable(), Keys: res.GetKeys(), NextCursor: res.GetNextCursor()}
		}
		return &fnproto.BatchScanKeysPageResult{Results: out}, nil
	}
	return nil, &refusal{dbInvalid, "the runtime does not serve " + fnproto.KindName(fnproto.FromFunction, m.Kind())}
}

// checkTables refuses a message naming a table the deployment's manifest
// does not declare. TableList names none: muDB lists the stack's tables.
func (s *stackDB) checkTables(m fnproto.Message) error {
	var bad string
	check := func(t string) {
		if bad == "" && !s.tables[t] {
			bad = t
		}
	}
	switch m := m.(type) {
	case *fnproto.Put:
		check(m.Table)
	case *fnproto.PutExpiring:
		check(m.Table)
	case *fnproto.Get:
		check(m.Table)
	case *fnproto.Delete:
		check(m.Table)
	case *fnproto.DeleteByPrefix:
		check(m.Table)
	case *fnproto.Scan:
		check(m.Table)
	case *fnproto.ScanPage:
		check(m.Table)
	case *fnproto.ScanKeys:
		check(m.Table)
	case *fnproto.ScanKeysPage:
		check(m.Table)
	case *fnproto.CompareAndSwap:
		check(m.Table)
	case *fnproto.BatchPut:
		for i := range m.TableKeyValues {
			check(m.TableKeyValues[i].Table)
		}
	case *fnproto.BatchPutExpiring:
		for i := range m.TableKeyValues {
			check(m.TableKeyValues[i].Table)
		}
	case *fnproto.BatchGet:
		for i := range m.TableKeys {
			check(m.TableKeys[i].Table)
		}
	case *fnproto.BatchDelete:
		for i := range m.TableKeys {
			check(m.TableKeys[i].Table)
		}
	case *fnproto.BatchScan:
		for i := range m.TableKeyPrefixes {
			check(m.TableKeyPrefixes[i].Table)
		}
	case *fnproto.BatchScanKeys:
		for i := range m.TableKeyPrefixes {
			check(m.TableKeyPrefixes[i].Table)
		}
	case *fnproto.BatchScanPage:
		for i := range m.Scans {
			check(m.Scans[i].Table)
		}
	case *fnproto.BatchScanKeysPage:
		for i := range m.Scans {
			check(m.Scans[i].Table)
		}
	}
	if bad != "" {
		return &refusal{dbUndeclared, fmt.Sprintf("table %q is not declared in the stack's manifest (add a KeyValueTable service named %q)", bad, bad)}
	}
	return nil
}

// ttlOf converts a wire TTL; 0 is refused, more than protobuf's largest
// Duration (10000 years) is clamped to it.
func ttlOf(secs uint64) (*durationpb.Duration, error) {
	if secs == 0 {
		return nil, &refusal{dbInvalid, "ttl_seconds must be at least 1 (use Put or BatchPut for keys that do not expire)"}
	}
	return &durationpb.Duration{Seconds: int64(min(secs, maxDurationSeconds))}, nil
}

func keyValues(items []*mudbv1.KeyValue) []fnproto.KeyValue {
	if len(items) == 0 {
		return nil
	}
	out := make([]fnproto.KeyValue, len(items))
	for i, kv := range items {
		out[i] = fnproto.KeyValue{Key: kv.GetKey(), Value: kv.GetValue()}
	}
	return out
}

func tableKeyValuesPB(list []fnproto.TableKeyValue) []*mudbv1.TableKeyValue {
	out := make([]*mudbv1.TableKeyValue, len(list))
	for i := range list {
		out[i] = &mudbv1.TableKeyValue{Table: list[i].Table, Key: list[i].Key, Value: list[i].Value}
	}
	return out
}

func tableKeysPB(list []fnproto.TableKey) []*mudbv1.TableKey {
	out := make([]*mudbv1.TableKey, len(list))
	for i := range list {
		out[i] = &mudbv1.TableKey{Table: list[i].Table, Key: list[i].Key}
	}
	return out
}

// prefixScans turns the cursor-less batch scans into first-page scans.
func prefixScans(list []fnproto.TableKey, limit uint32) []*mudbv1.ScanSpec {
	out := make([]*mudbv1.ScanSpec, len(list))
	for i := range list {
		out[i] = &mudbv1.ScanSpec{Table: list[i].Table, KeyPrefix: list[i].Key, Limit: limit}
	}
	return out
}

func scanSpecsPB(list []fnproto.ScanSpec) []*mudbv1.ScanSpec {
	out := make([]*mudbv1.ScanSpec, len(list))
	for i := range list {
		out[i] = &mudbv1.ScanSpec{Table: list[i].Table, KeyPrefix: list[i].KeyPrefix, Limit: list[i].Limit, Cursor: list[i].Cursor}
	}
	return out
}

// resultTable is the table of result i of a batch scan: muDB's, or the
// request's when muDB leaves it empty.
func resultTable(got string, req []fnproto.TableKey, i int) string {
	if got == "" && i < len(req) {
		return req[i].Table
	}
	return got
}

// replySize is the Borsh body size of a db reply, computed without encoding
// it, so that a reply over the frame limit is refused before it is built
// into the function's stdin.
func replySize(m fnproto.Message) int {
	const u32 = 4
	bytesSize := func(b []byte) int { return u32 + len(b) }
	kvs := func(list []fnproto.KeyValue) int {
		n := u32
		for i := range list {
			n += bytesSize(list[i].Key) + bytesSize(list[i].Value)
		}
		return n
	}
	lists := func(list [][]byte) int {
		n := u32
		for _, b := range list {
			n += bytesSize(b)
		}
		return n
	}
	switch m := m.(type) {
	case *fnproto.DbError:
		return u32 + len(m.Error)
	case *fnproto.EmptyResult:
		return 0
	case *fnproto.SingleResult:
		if m.Item == nil {
			return 1
		}
		return 1 + bytesSize(*m.Item)
	case *fnproto.CasResult:
		n := 2
		if m.PreviousValue != nil {
			n += bytesSize(*m.PreviousValue)
		}
		return n
	case *fnproto.ListResult:
		return lists(m.List)
	case *fnproto.KeyValueListResult:
		return kvs(m.List)
	case *fnproto.TableKeyListResult:
		n := u32
		for i := range m.List {
			n += u32 + len(m.List[i].Table) + bytesSize(m.List[i].Key)
		}
		return n
	case *fnproto.TableKeyValueListResult:
		n := u32
		for i := range m.List {
			n += u32 + len(m.List[i].Table) + bytesSize(m.List[i].Key) + bytesSize(m.List[i].Value)
		}
		return n
	case *fnproto.KeyValuePageResult:
		return kvs(m.List) + bytesSize(m.NextCursor)
	case *fnproto.KeyPageResult:
		return lists(m.List) + bytesSize(m.NextCursor)
	case *fnproto.BatchScanPageResult:
		n := u32
		for i := range m.Results {
			n += u32 + len(m.Results[i].Table) + kvs(m.Results[i].List) + bytesSize(m.Results[i].NextCursor)
		}
		return n
	case *fnproto.BatchScanKeysPageResult:
		n := u32
		for i := range m.Results {
			n += u32 + len(m.Results[i].Table) + lists(m.Results[i].Keys) + bytesSize(m.Results[i].NextCursor)
		}
		return n
	}
	return math.MaxInt32 // not a db reply: never sent
}

// createTables registers every table the manifest declares with muDB
// (CreateTable is idempotent), before the revision serves. Without muDB
// configured it does nothing: the stack deploys and its db calls get a
// DbError saying muDB is not configured.
func (b *dbBridge) createTables(ctx context.Context, id ids.StackID, m *manifest.Manifest) error {
	if b.client == nil {
		return nil
	}
	for _, t := range m.Tables {
		_, err := b.client.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: id.Bytes(), Table: t.Name})
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		st := status.Convert(err)
		code := st.Code()
		switch code {
		case codes.InvalidArgument, codes.FailedPrecondition, codes.ResourceExhausted, codes.PermissionDenied:
		default:
			code = codes.Unavailable
		}
		return status.Errorf(code, "stack %s: muDB could not create table %q: %s: %s", id, t.Name, st.Code(), st.Message())
	}
	return nil
}
