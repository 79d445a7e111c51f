package fnproto_test

import (
	"bytes"
	"reflect"
	"strconv"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

func ptr[T any](v T) *T { return &v }

// roundTripCase is one message to encode and decode. want is what decoding
// yields when it differs from in (empty slices and maps decode to nil).
type roundTripCase struct {
	name string
	in   fnproto.Message
	want fnproto.Message
}

// roundTripCases covers every message kind of both directions at least once.
func roundTripCases() []roundTripCase {
	return []roundTripCase{
		// Runtime → function.
		{name: "ExecuteFunction/full", in: &fnproto.ExecuteFunction{
			Function: "greet_user",
			Request: fnproto.Request{
				Method:      "POST",
				PathParams:  map[string]string{"name": "Zoë", "id": "42", "": "empty-key", "émoji": "🚀"},
				QueryParams: map[string]string{"z": "last", "a": "first", "m": ""},
				Headers:     []fnproto.Header{{Name: "Content-Type", Value: "application/json"}, {Name: "X-Dup", Value: "1"}, {Name: "X-Dup", Value: "2"}},
				Body:        []byte(`{"hello":"wörld"}` + "\x00\xff"),
			},
		}},
		{name: "ExecuteFunction/empty", in: &fnproto.ExecuteFunction{}},
		{name: "ExecuteFunction/empty-collections-decode-nil",
			in: &fnproto.ExecuteFunction{Function: "f", Request: fnproto.Request{
				Method: "GET", PathParams: map[string]string{}, QueryParams: map[string]string{},
				Headers: []fnproto.Header{}, Body: []byte{},
			}},
			want: &fnproto.ExecuteFunction{Function: "f", Request: fnproto.Request{Method: "GET"}},
		},
		{name: "DbError", in: &fnproto.DbError{Error: "table \"todos\" not found — ☹"}},
		{name: "SingleResult/some", in: &fnproto.SingleResult{Item: ptr([]byte("value\x00\x01"))}},
		{name: "SingleResult/some-empty", in: &fnproto.SingleResult{Item: ptr([]byte{})}, want: &fnproto.SingleResult{Item: ptr([]byte(nil))}},
		{name: "SingleResult/none", in: &fnproto.SingleResult{}},
		{name: "ListResult", in: &fnproto.ListResult{List: [][]byte{[]byte("a"), nil, []byte("ccc")}}},
		{name: "ListResult/empty", in: &fnproto.ListResult{List: [][]byte{}}, want: &fnproto.ListResult{}},
		{name: "KeyValueListResult", in: &fnproto.KeyValueListResult{List: []fnproto.KeyValue{
			{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte{0xff, 0x00}, Value: nil},
		}}},
		{name: "TableKeyListResult", in: &fnproto.TableKeyListResult{List: []fnproto.TableKey{
			{Table: "todos", Key: []byte("1")}, {Table: "ユーザー", Key: []byte("2")},
		}}},
		{name: "TableKeyValueListResult", in: &fnproto.TableKeyValueListResult{List: []fnproto.TableKeyValue{
			{Table: "todos", Key: []byte("1"), Value: []byte("buy milk")}, {Table: "t", Key: nil, Value: []byte{0}},
		}}},
		{name: "EmptyResult", in: &fnproto.EmptyResult{}},
		{name: "CasResult/swapped", in: &fnproto.CasResult{PreviousValue: ptr([]byte("old")), IsSwapped: true}},
		{name: "CasResult/absent", in: &fnproto.CasResult{}},
		{name: "KeyValuePageResult", in: &fnproto.KeyValuePageResult{
			List: []fnproto.KeyValue{{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte{0xff}, Value: nil}}, NextCursor: []byte{0, 1, 0xff},
		}},
		{name: "KeyValuePageResult/done-empty", in: &fnproto.KeyValuePageResult{List: []fnproto.KeyValue{}, NextCursor: []byte{}},
			want: &fnproto.KeyValuePageResult{}},
		{name: "KeyPageResult", in: &fnproto.KeyPageResult{List: [][]byte{[]byte("a"), nil, []byte("c")}, NextCursor: []byte("next")}},
		{name: "BatchScanPageResult", in: &fnproto.BatchScanPageResult{Results: []fnproto.TableKeyValuePage{
			{Table: "todos", List: []fnproto.KeyValue{{Key: []byte("1"), Value: []byte("x")}}, NextCursor: []byte("c")},
			{Table: "ユーザー"},
		}}},
		{name: "BatchScanKeysPageResult", in: &fnproto.BatchScanKeysPageResult{Results: []fnproto.TableKeyPage{
			{Table: "a", Keys: [][]byte{[]byte("1"), []byte("2")}, NextCursor: []byte("c")},
			{Table: "b", Keys: [][]byte{}},
		}}, want: &fnproto.BatchScanKeysPageResult{Results: []fnproto.TableKeyPage{
			{Table: "a", Keys: [][]byte{[]byte("1"), []byte("2")}, NextCursor: []byte("c")},
			{Table: "b"},
		}}},
		{name: "StorageError", in: &fnproto.StorageError{Error: "box \"attachments\" is full"}},
		{name: "StorageGetResult/found", in: &fnproto.StorageGetResult{Data: ptr(bytes.Repeat([]byte{0xab}, 300))}},
		{name: "StorageGetResult/not-found", in: &fnproto.StorageGetResult{}},
		{name: "StorageEmptyResult", in: &fnproto.StorageEmptyResult{}},
		{name: "ObjectListResult", in: &fnproto.ObjectListResult{List: []fnproto.StorageObject{
			{Key: "img/a.png", Size: 1 << 40}, {Key: "日本/b", Size: 0},
		}}},
		{name: "StorageRangeResult", in: &fnproto.StorageRangeResult{Found: true, Data: bytes.Repeat([]byte{0xcd}, 1000), TotalSize: 1 << 40, ETag: "\"9b2cf535f27731c9\"", ContentType: "image/png"}},
		{name: "StorageRangeResult/end-of-object", in: &fnproto.StorageRangeResult{Found: true, Data: []byte{}, TotalSize: 5, ETag: "e"},
			want: &fnproto.StorageRangeResult{Found: true, TotalSize: 5, ETag: "e"}},
		{name: "StorageRangeResult/not-found", in: &fnproto.StorageRangeResult{}},
		{name: "StorageUploadResult", in: &fnproto.StorageUploadResult{Upload: 4294967295}},
		{name: "StorageObjectResult", in: &fnproto.StorageObjectResult{Size: 64 << 20, ETag: "etag-ü"}},
		{name: "ObjectPageResult", in: &fnproto.ObjectPageResult{Objects: []fnproto.StorageObjectInfo{
			{Key: "img/a.png", Size: 1 << 40, ETag: "e1", ContentType: "image/png", LastModifiedUnix: 1767225600000}, {Key: "日本/b"},
		}, NextCursor: "opaque-token"}},
		{name: "ObjectPageResult/last-empty", in: &fnproto.ObjectPageResult{Objects: []fnproto.StorageObjectInfo{}}, want: &fnproto.ObjectPageResult{}},
		{name: "StorageObjectInfoResult/found", in: &fnproto.StorageObjectInfoResult{Info: &fnproto.StorageObjectInfo{Key: "k", Size: 9, ETag: "x", ContentType: "text/plain", LastModifiedUnix: 1}}},
		{name: "StorageObjectInfoResult/not-found", in: &fnproto.StorageObjectInfoResult{}},
		{name: "StorageSignedURLResult", in: &fnproto.StorageSignedURLResult{URL: "https://s.example/signed/abc/box/k?sig=x", ExpiresAtUnix: 1767225600}},
		{name: "HTTPResponse/ok", in: &fnproto.HTTPResponse{
			Status: 404, Headers: []fnproto.Header{{Name: "Server", Value: "x"}}, Body: []byte("not found"),
		}},
		{name: "HTTPResponse/transport-error", in: &fnproto.HTTPResponse{Error: ptr("dial tcp: connection refused")}},
		{name: "HTTPResponse/empty-error", in: &fnproto.HTTPResponse{Status: 1, Error: ptr("")}},

		// Function → runtime.
		{name: "FatalError", in: &fnproto.FatalError{Error: "panic: index out of range"}},
		{name: "FunctionResult", in: &fnproto.FunctionResult{Response: fnproto.Response{
			Status: 201, Headers: []fnproto.Header{{Name: "Location", Value: "/todos/1"}, {Name: "Set-Cookie", Value: "a=b"}},
			Body: []byte("créé"),
		}}},
		{name: "FunctionResult/empty", in: &fnproto.FunctionResult{}},
		{name: "Log/info", in: &fnproto.Log{Body: "hello, 世界", Level: fnproto.LogLevelInfo}},
		{name: "Log/error", in: &fnproto.Log{Body: "", Level: fnproto.LogLevelError}},
		{name: "Log/trace", in: &fnproto.Log{Body: "t", Level: fnproto.LogLevelTrace}},
		{name: "Put", in: &fnproto.Put{Table: "todos", Key: []byte("key-1"), Value: []byte("value-1"), IsAtomic: true}},
		{name: "Put/empty-value", in: &fnproto.Put{Table: "t", Key: []byte{0}, Value: []byte{}}, want: &fnproto.Put{Table: "t", Key: []byte{0}}},
		{name: "Get", in: &fnproto.Get{Table: "todos", Key: []byte("key-1")}},
		{name: "Delete", in: &fnproto.Delete{Table: "todos", Key: []byte("key-1"), IsAtomic: true}},
		{name: "DeleteByPrefix", in: &fnproto.DeleteByPrefix{Table: "todos", KeyPrefix: []byte("user/7/")}},
		{name: "Scan", in: &fnproto.Scan{Table: "todos", KeyPrefix: []byte("a"), Limit: 4294967295}},
		{name: "ScanKeys", in: &fnproto.ScanKeys{Table: "todos", KeyPrefix: nil, Limit: 10}},
		{name: "TableList", in: &fnproto.TableList{TablePrefix: "to"}},
		{name: "BatchPut", in: &fnproto.BatchPut{TableKeyValues: []fnproto.TableKeyValue{
			{Table: "a", Key: []byte("1"), Value: []byte("x")}, {Table: "b", Key: []byte("2"), Value: []byte("y")},
		}, IsAtomic: true}},
		{name: "BatchGet", in: &fnproto.BatchGet{TableKeys: []fnproto.TableKey{{Table: "a", Key: []byte("1")}, {Table: "a", Key: []byte("2")}}}},
		{name: "BatchDelete", in: &fnproto.BatchDelete{TableKeys: []fnproto.TableKey{{Table: "z", Key: []byte("9")}}}},
		{name: "BatchScan", in: &fnproto.BatchScan{TableKeyPrefixes: []fnproto.TableKey{{Table: "a", Key: []byte("p/")}, {Table: "b"}}, Limit: 100}},
		{name: "BatchScanKeys", in: &fnproto.BatchScanKeys{TableKeyPrefixes: []fnproto.TableKey{{Table: "a", Key: []byte("p/")}}, Limit: 7}},
		{name: "CompareAndSwap/expect-value", in: &fnproto.CompareAndSwap{Table: "c", Key: []byte("n"), NewValue: []byte("2"), PreviousValue: ptr([]byte("1"))}},
		{name: "CompareAndSwap/expect-absent", in: &fnproto.CompareAndSwap{Table: "c", Key: []byte("n"), NewValue: []byte("1")}},
		{name: "PutExpiring", in: &fnproto.PutExpiring{Table: "sessions", Key: []byte("s1"), Value: []byte("u7"), IsAtomic: true, TTLSeconds: 1<<64 - 1}},
		{name: "PutExpiring/zero-ttl", in: &fnproto.PutExpiring{Table: "t", Key: []byte("k")}},
		{name: "BatchPutExpiring", in: &fnproto.BatchPutExpiring{TableKeyValues: []fnproto.TableKeyValue{
			{Table: "a", Key: []byte("1"), Value: []byte("x")}, {Table: "b", Key: []byte("2")},
		}, TTLSeconds: 86400}},
		{name: "ScanPage", in: &fnproto.ScanPage{Table: "todos", KeyPrefix: []byte("u/"), Limit: 1000, Cursor: []byte{0xde, 0xad}}},
		{name: "ScanKeysPage", in: &fnproto.ScanKeysPage{Table: "todos", Limit: 4294967295, Cursor: []byte("c")}},
		{name: "BatchScanPage", in: &fnproto.BatchScanPage{Scans: []fnproto.ScanSpec{
			{Table: "a", KeyPrefix: []byte("p/"), Limit: 3, Cursor: []byte("c")}, {Table: "b"},
		}}},
		{name: "BatchScanKeysPage", in: &fnproto.BatchScanKeysPage{Scans: []fnproto.ScanSpec{{Table: "a", Limit: 1}}}},
		{name: "StoragePut", in: &fnproto.StoragePut{Storage: "attachments", Key: "photos/ünï.jpg", Data: []byte{0xff, 0xd8, 0xff}}},
		{name: "StorageGet", in: &fnproto.StorageGet{Storage: "attachments", Key: "photos/a.jpg"}},
		{name: "StorageDelete", in: &fnproto.StorageDelete{Storage: "attachments", Key: "photos/a.jpg"}},
		{name: "StorageList", in: &fnproto.StorageList{Storage: "attachments", Prefix: "photos/"}},
		{name: "StorageGetRange", in: &fnproto.StorageGetRange{Storage: "videos", Key: "a/b.mp4", Offset: 1<<64 - 1, Length: 1 << 20, IfMatch: ptr("e1")}},
		{name: "StorageGetRange/any-etag", in: &fnproto.StorageGetRange{Storage: "videos", Key: "a", Length: 0}},
		{name: "StorageGetRange/empty-etag", in: &fnproto.StorageGetRange{Storage: "v", Key: "a", IfMatch: ptr("")}},
		{name: "StoragePutBegin", in: &fnproto.StoragePutBegin{Storage: "videos", Key: "a/b.mp4", ContentType: "video/mp4", Size: ptr(uint64(64 << 20))}},
		{name: "StoragePutBegin/unknown-size", in: &fnproto.StoragePutBegin{Storage: "videos", Key: "k"}},
		{name: "StoragePutChunk", in: &fnproto.StoragePutChunk{Upload: 3, Data: bytes.Repeat([]byte{1, 2, 3}, 100)}},
		{name: "StoragePutEnd/commit", in: &fnproto.StoragePutEnd{Upload: 3}},
		{name: "StoragePutEnd/abort", in: &fnproto.StoragePutEnd{Upload: 3, Abort: true}},
		{name: "StorageListPage", in: &fnproto.StorageListPage{Storage: "files", Prefix: "ünï/", Limit: 1000, Cursor: "tok"}},
		{name: "StorageStat", in: &fnproto.StorageStat{Storage: "files", Key: "a"}},
		{name: "StorageSignURL/get", in: &fnproto.StorageSignURL{Storage: "files", Key: "a", Method: fnproto.SignURLGet, ExpiresInSeconds: 60}},
		{name: "StorageSignURL/put", in: &fnproto.StorageSignURL{Storage: "files", Key: "a", Method: fnproto.SignURLPut, MaxBytes: 1 << 30, ContentType: "image/jpeg"}},
		{name: "HTTPRequest", in: &fnproto.HTTPRequest{
			Method: "GET", URL: "https://example.com/ä?q=1",
			Headers: []fnproto.Header{{Name: "Accept", Value: "*/*"}}, Body: nil,
		}},
	}
}

func TestRoundTrip_EveryKind(t *testing.T) {
	for _, tc := range roundTripCases() {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = tc.in
			}
			body, err := fnproto.Marshal(tc.in)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := fnproto.Unmarshal(tc.in.Direction(), tc.in.Kind(), body)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Unmarshal(Marshal(m)) = %#v, want %#v", got, want)
			}
			again, err := fnproto.Marshal(got)
			if err != nil {
				t.Fatalf("Marshal(decoded): %v", err)
			}
			if !bytes.Equal(again, body) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, body)
			}

			// The framed form carries the same body after a correct header.
			frame, err := fnproto.AppendFrame([]byte("prefix"), tc.in)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			if string(frame[:6]) != "prefix" {
				t.Fatalf("AppendFrame clobbered dst: %q", frame[:6])
			}
			frame = frame[6:]
			m, n, err := fnproto.ParseFrame(tc.in.Direction(), frame, 0)
			if err != nil || n != len(frame) {
				t.Fatalf("ParseFrame = (_, %d, %v), want (_, %d, nil)", n, err, len(frame))
			}
			if !reflect.DeepEqual(m, want) {
				t.Fatalf("ParseFrame = %#v, want %#v", m, want)
			}
			if !bytes.Equal(frame[6:], body) {
				t.Fatalf("frame body %x differs from Marshal %x", frame[6:], body)
			}
		})
	}
}

// TestRoundTrip_CasesCoverEveryKind keeps roundTripCases complete when a kind
// is added.
func TestRoundTrip_CasesCoverEveryKind(t *testing.T) {
	covered := map[fnproto.Direction]map[fnproto.Kind]bool{fnproto.ToFunction: {}, fnproto.FromFunction: {}}
	for _, tc := range roundTripCases() {
		covered[tc.in.Direction()][tc.in.Kind()] = true
	}
	total := 0
	for _, dir := range []fnproto.Direction{fnproto.ToFunction, fnproto.FromFunction} {
		for k := 0; k <= 0xffff; k++ {
			name := fnproto.KindName(dir, fnproto.Kind(k))
			if name == "Kind("+strconv.Itoa(k)+")" {
				continue
			}
			total++
			if !covered[dir][fnproto.Kind(k)] {
				t.Errorf("no round-trip case for %s %s (%d)", dir, name, k)
			}
		}
	}
	if total != 24+34 {
		t.Errorf("found %d known kinds, want 58 (24 to-function + 34 from-function)", total)
	}
}
