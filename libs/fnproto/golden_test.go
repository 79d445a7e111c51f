package fnproto_test

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

// golden pins the wire format: each frame is written out by hand, field by
// field, from the framing and Borsh rules, not produced by the encoder.
type golden struct {
	name string
	msg  fnproto.Message
	hex  string // spaces and newlines are ignored
}

var goldens = []golden{
	{
		name: "ExecuteFunction",
		msg: &fnproto.ExecuteFunction{Function: "greet", Request: fnproto.Request{
			Method:     "GET",
			PathParams: map[string]string{"name": "mu", "id": "7"}, // encoded sorted: id, name
			Headers:    []fnproto.Header{{Name: "a", Value: "b"}},
			Body:       []byte("hi"),
		}},
		hex: `47000000 0100
			05000000 6772656574
			03000000 474554
			02000000
			  02000000 6964 01000000 37
			  04000000 6e616d65 02000000 6d75
			00000000
			01000000 01000000 61 01000000 62
			02000000 6869`,
	},
	{
		name: "FunctionResult",
		msg: &fnproto.FunctionResult{Response: fnproto.Response{
			Status:  200,
			Headers: []fnproto.Header{{Name: "content-type", Value: "text/plain"}},
			Body:    []byte("ok"),
		}},
		hex: `2c000000 0200
			c800
			01000000 0c000000 636f6e74656e742d74797065 0a000000 746578742f706c61696e
			02000000 6f6b`,
	},
	{
		name: "Put",
		msg:  &fnproto.Put{Table: "todos", Key: []byte("k1"), Value: []byte("v"), IsAtomic: true},
		hex:  `17000000 e903  05000000 746f646f73  02000000 6b31  01000000 76  01`,
	},
	{
		name: "Get",
		msg:  &fnproto.Get{Table: "todos", Key: []byte("k1")},
		hex:  `11000000 ea03  05000000 746f646f73  02000000 6b31`,
	},
	{
		name: "SingleResult-Some",
		msg:  &fnproto.SingleResult{Item: ptr([]byte("v"))},
		hex:  `08000000 ea03  01 01000000 76`,
	},
	{
		name: "SingleResult-None",
		msg:  &fnproto.SingleResult{},
		hex:  `03000000 ea03  00`,
	},
	{
		name: "CasResult-Swapped",
		msg:  &fnproto.CasResult{PreviousValue: ptr([]byte("old")), IsSwapped: true},
		hex:  `0b000000 f003  01 03000000 6f6c64  01`,
	},
	{
		name: "CasResult-Absent",
		msg:  &fnproto.CasResult{},
		hex:  `04000000 f003  00  00`,
	},
	{
		name: "Log",
		msg:  &fnproto.Log{Body: "héllo", Level: fnproto.LogLevelWarn},
		hex:  `0d000000 0300  06000000 68c3a96c6c6f  03`,
	},
	{
		name: "StorageList",
		msg:  &fnproto.StorageList{Storage: "files", Prefix: "img/"},
		hex:  `13000000 d407  05000000 66696c6573  04000000 696d672f`,
	},
	{
		name: "HTTPResponse-TransportError",
		msg:  &fnproto.HTTPResponse{Status: 502, Error: ptr("refused")},
		hex:  `18000000 b90b  f601  00000000  00000000  01 07000000 72656675736564`,
	},
	{
		name: "EmptyResult",
		msg:  &fnproto.EmptyResult{},
		hex:  `02000000 ef03`,
	},
	{
		name: "BatchGet",
		msg:  &fnproto.BatchGet{TableKeys: []fnproto.TableKey{{Table: "t", Key: []byte("k")}}},
		hex:  `10000000 f103  01000000  01000000 74  01000000 6b`,
	},
	{
		name: "ObjectListResult",
		msg:  &fnproto.ObjectListResult{List: []fnproto.StorageObject{{Key: "a", Size: 300}}},
		hex:  `13000000 d407  01000000  01000000 61  2c01000000000000`,
	},
	// The paging and expiry messages (kinds from-function 1014…1019 and
	// to-function 1009…1012), added after the first release: the frames
	// above must keep decoding exactly as before.
	{
		name: "PutExpiring",
		msg:  &fnproto.PutExpiring{Table: "t", Key: []byte("k"), Value: []byte("v"), TTLSeconds: 60},
		hex:  `1a000000 f603  01000000 74  01000000 6b  01000000 76  00  3c00000000000000`,
	},
	{
		name: "BatchPutExpiring",
		msg: &fnproto.BatchPutExpiring{TableKeyValues: []fnproto.TableKeyValue{{Table: "t", Key: []byte("k"), Value: []byte("v")}},
			IsAtomic: true, TTLSeconds: 3600},
		hex: `1e000000 f703  01000000  01000000 74  01000000 6b  01000000 76  01  100e000000000000`,
	},
	{
		name: "ScanPage",
		msg:  &fnproto.ScanPage{Table: "t", KeyPrefix: []byte("a"), Limit: 2, Cursor: []byte("c1")},
		hex:  `16000000 f803  01000000 74  01000000 61  02000000  02000000 6331`,
	},
	{
		name: "ScanKeysPage-FirstPage",
		msg:  &fnproto.ScanKeysPage{Table: "t", Limit: 10},
		hex:  `13000000 f903  01000000 74  00000000  0a000000  00000000`,
	},
	{
		name: "BatchScanPage",
		msg:  &fnproto.BatchScanPage{Scans: []fnproto.ScanSpec{{Table: "t", KeyPrefix: []byte("a"), Limit: 5}}},
		hex:  `18000000 fa03  01000000  01000000 74  01000000 61  05000000  00000000`,
	},
	{
		name: "BatchScanKeysPage",
		msg:  &fnproto.BatchScanKeysPage{Scans: []fnproto.ScanSpec{{Table: "t", Cursor: []byte("c")}}},
		hex:  `18000000 fb03  01000000  01000000 74  00000000  00000000  01000000 63`,
	},
	{
		name: "KeyValuePageResult-More",
		msg:  &fnproto.KeyValuePageResult{List: []fnproto.KeyValue{{Key: []byte("k"), Value: []byte("v")}}, NextCursor: []byte("n")},
		hex:  `15000000 f103  01000000  01000000 6b  01000000 76  01000000 6e`,
	},
	{
		name: "KeyValuePageResult-Done",
		msg:  &fnproto.KeyValuePageResult{List: []fnproto.KeyValue{{Key: []byte("k"), Value: []byte("v")}}},
		hex:  `14000000 f103  01000000  01000000 6b  01000000 76  00000000`,
	},
	{
		name: "KeyPageResult",
		msg:  &fnproto.KeyPageResult{List: [][]byte{[]byte("k")}, NextCursor: []byte("n")},
		hex:  `10000000 f203  01000000  01000000 6b  01000000 6e`,
	},
	{
		name: "BatchScanPageResult",
		msg: &fnproto.BatchScanPageResult{Results: []fnproto.TableKeyValuePage{
			{Table: "t", List: []fnproto.KeyValue{{Key: []byte("k"), Value: []byte("v")}}, NextCursor: []byte("n")}}},
		hex: `1e000000 f303  01000000  01000000 74  01000000  01000000 6b  01000000 76  01000000 6e`,
	},
	{
		name: "BatchScanKeysPageResult",
		msg:  &fnproto.BatchScanKeysPageResult{Results: []fnproto.TableKeyPage{{Table: "t", Keys: [][]byte{[]byte("k")}}}},
		hex:  `18000000 f403  01000000  01000000 74  01000000  01000000 6b  00000000`,
	},
	// The storage kinds for objects larger than a frame (from-function
	// 2005…2011, to-function 2005…2010), added after the first release.
	{
		name: "StorageGetRange",
		msg:  &fnproto.StorageGetRange{Storage: "b", Key: "k", Offset: 1 << 20, Length: 1 << 16, IfMatch: ptr("e1")},
		hex:  `1f000000 d507  01000000 62  01000000 6b  0000100000000000  00000100  01 02000000 6531`,
	},
	{
		name: "StorageGetRange-AnyETag",
		msg:  &fnproto.StorageGetRange{Storage: "b", Key: "k", Length: 10},
		hex:  `19000000 d507  01000000 62  01000000 6b  0000000000000000  0a000000  00`,
	},
	{
		name: "StoragePutBegin",
		msg:  &fnproto.StoragePutBegin{Storage: "b", Key: "k", ContentType: "text/plain", Size: ptr(uint64(300))},
		hex:  `23000000 d607  01000000 62  01000000 6b  0a000000 746578742f706c61696e  01 2c01000000000000`,
	},
	{
		name: "StoragePutBegin-UnknownSize",
		msg:  &fnproto.StoragePutBegin{Storage: "b", Key: "k"},
		hex:  `11000000 d607  01000000 62  01000000 6b  00000000  00`,
	},
	{
		name: "StoragePutChunk",
		msg:  &fnproto.StoragePutChunk{Upload: 7, Data: []byte("abc")},
		hex:  `0d000000 d707  07000000  03000000 616263`,
	},
	{
		name: "StoragePutEnd-Abort",
		msg:  &fnproto.StoragePutEnd{Upload: 7, Abort: true},
		hex:  `07000000 d807  07000000  01`,
	},
	{
		name: "StorageListPage",
		msg:  &fnproto.StorageListPage{Storage: "b", Prefix: "p/", Limit: 2, Cursor: "c"},
		hex:  `16000000 d907  01000000 62  02000000 702f  02000000  01000000 63`,
	},
	{
		name: "StorageStat",
		msg:  &fnproto.StorageStat{Storage: "b", Key: "k"},
		hex:  `0c000000 da07  01000000 62  01000000 6b`,
	},
	{
		name: "StorageSignURL",
		msg: &fnproto.StorageSignURL{Storage: "b", Key: "k", Method: fnproto.SignURLPut, ExpiresInSeconds: 3600,
			MaxBytes: 1024, ContentType: "image/png"},
		hex: `26000000 db07  01000000 62  01000000 6b  01  100e0000  0004000000000000  09000000 696d6167652f706e67`,
	},
	{
		name: "StorageRangeResult",
		msg:  &fnproto.StorageRangeResult{Found: true, Data: []byte("hi"), TotalSize: 10, ETag: "e1", ContentType: "t/p"},
		hex:  `1e000000 d507  01  02000000 6869  0a00000000000000  02000000 6531  03000000 742f70`,
	},
	{
		name: "StorageRangeResult-NotFound",
		msg:  &fnproto.StorageRangeResult{},
		hex:  `17000000 d507  00  00000000  0000000000000000  00000000  00000000`,
	},
	{
		name: "StorageUploadResult",
		msg:  &fnproto.StorageUploadResult{Upload: 7},
		hex:  `06000000 d607  07000000`,
	},
	{
		name: "StorageObjectResult",
		msg:  &fnproto.StorageObjectResult{Size: 3, ETag: "e"},
		hex:  `0f000000 d707  0300000000000000  01000000 65`,
	},
	{
		name: "ObjectPageResult",
		msg: &fnproto.ObjectPageResult{Objects: []fnproto.StorageObjectInfo{
			{Key: "a", Size: 3, ETag: "e", ContentType: "t", LastModifiedUnix: 1000}}, NextCursor: "n"},
		hex: `2a000000 d807  01000000  01000000 61  0300000000000000  01000000 65  01000000 74  e803000000000000  01000000 6e`,
	},
	{
		name: "StorageObjectInfoResult-None",
		msg:  &fnproto.StorageObjectInfoResult{},
		hex:  `03000000 d907  00`,
	},
	{
		name: "StorageObjectInfoResult-Some",
		msg:  &fnproto.StorageObjectInfoResult{Info: &fnproto.StorageObjectInfo{Key: "a", Size: 3, ETag: "e"}},
		hex:  `21000000 d907  01  01000000 61  0300000000000000  01000000 65  00000000  0000000000000000`,
	},
	{
		name: "StorageSignedURLResult",
		msg:  &fnproto.StorageSignedURLResult{URL: "u", ExpiresAtUnix: 60},
		hex:  `0f000000 da07  01000000 75  3c00000000000000`,
	},
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func TestGolden_Encode(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			want := unhex(t, g.hex)
			got, err := fnproto.AppendFrame(nil, g.msg)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendFrame:\n got %x\nwant %x", got, want)
			}
			body, err := fnproto.Marshal(g.msg)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(body, want[6:]) {
				t.Fatalf("Marshal:\n got %x\nwant %x", body, want[6:])
			}
		})
	}
}

func TestGolden_Decode(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			frame := unhex(t, g.hex)
			m, n, err := fnproto.ParseFrame(g.msg.Direction(), frame, 0)
			if err != nil {
				t.Fatalf("ParseFrame: %v", err)
			}
			if n != len(frame) {
				t.Fatalf("ParseFrame consumed %d bytes, want %d", n, len(frame))
			}
			if !reflect.DeepEqual(m, g.msg) {
				t.Fatalf("ParseFrame = %#v, want %#v", m, g.msg)
			}
		})
	}
}

// TestGolden_MapEncodingIsDeterministic encodes a map with many keys
// repeatedly: Go randomises map iteration, the wire order must not change.
func TestGolden_MapEncodingIsDeterministic(t *testing.T) {
	params := map[string]string{}
	for _, k := range []string{"zeta", "alpha", "Beta", "ä", "a", "", "m", "mm", "b/", "b", "~", "0", "9", "é", "z", "y", "x", "w", "v", "u"} {
		params[k] = "v-" + k
	}
	m := &fnproto.ExecuteFunction{Request: fnproto.Request{PathParams: params, QueryParams: params}}
	first, err := fnproto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		again, err := fnproto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("map encoding changed between runs")
		}
	}
	// And the decoder accepts it, which it only does for strictly sorted keys.
	if _, err := fnproto.Unmarshal(fnproto.ToFunction, fnproto.KindExecuteFunction, first); err != nil {
		t.Fatal(err)
	}
}
