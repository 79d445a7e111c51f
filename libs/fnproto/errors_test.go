package fnproto_test

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

func TestUnmarshal_RejectsMalformedBodies(t *testing.T) {
	tests := []struct {
		name    string
		dir     fnproto.Direction
		kind    fnproto.Kind
		body    string // hex
		wantErr error
		wantMsg string // exact error text
	}{
		{
			name: "length beyond remaining", dir: fnproto.FromFunction, kind: fnproto.KindPut,
			body:    `01000000 74  a00f0000 000000000000000000000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: Put.key: length 4000 exceeds remaining 12 bytes",
		},
		{
			name: "4 GiB string in a tiny body", dir: fnproto.FromFunction, kind: fnproto.KindLog,
			body:    `ffffffff 61 02`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: Log.body: length 4294967295 exceeds remaining 2 bytes",
		},
		{
			name: "bool other than 0 and 1", dir: fnproto.FromFunction, kind: fnproto.KindPut,
			body:    `01000000 74  01000000 6b  00000000  02`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: Put.is_atomic: invalid bool 2",
		},
		{
			name: "option tag other than 0 and 1", dir: fnproto.ToFunction, kind: fnproto.KindSingleResult,
			body:    `02 01000000 76`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: SingleResult.item: invalid option tag 2",
		},
		{
			name: "option tag in HTTPResponse.error", dir: fnproto.ToFunction, kind: fnproto.KindHTTPResponse,
			body:    `c800 00000000 00000000 ff`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: HTTPResponse.error: invalid option tag 255",
		},
		{
			name: "invalid UTF-8 string", dir: fnproto.FromFunction, kind: fnproto.KindGet,
			body:    `02000000 c328  00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: Get.table: invalid UTF-8",
		},
		{
			name: "invalid UTF-8 in a nested header", dir: fnproto.ToFunction, kind: fnproto.KindExecuteFunction,
			body: `01000000 66  03000000 474554  00000000 00000000
				02000000  01000000 61 01000000 62  01000000 63 01000000 ff
				00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: ExecuteFunction.request.headers[1].value: invalid UTF-8",
		},
		{
			name: "unsorted map keys", dir: fnproto.ToFunction, kind: fnproto.KindExecuteFunction,
			body: `01000000 66  03000000 474554
				02000000  01000000 62 01000000 31  01000000 61 01000000 32
				00000000 00000000 00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: ExecuteFunction.request.path_params[1].key: keys out of order (unsorted or duplicate)",
		},
		{
			name: "duplicate map keys", dir: fnproto.ToFunction, kind: fnproto.KindExecuteFunction,
			body: `01000000 66  03000000 474554  00000000
				02000000  01000000 61 01000000 31  01000000 61 01000000 32
				00000000 00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: ExecuteFunction.request.query_params[1].key: keys out of order (unsorted or duplicate)",
		},
		{
			name: "invalid UTF-8 map key", dir: fnproto.ToFunction, kind: fnproto.KindExecuteFunction,
			body: `01000000 66  03000000 474554
				01000000  01000000 ff 01000000 31
				00000000 00000000 00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: ExecuteFunction.request.path_params[0].key: invalid UTF-8",
		},
		{
			name: "enum out of range", dir: fnproto.FromFunction, kind: fnproto.KindLog,
			body:    `01000000 61  05`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: Log.level: invalid LogLevel 5 (max 4)",
		},
		{
			name: "sign URL method out of range", dir: fnproto.FromFunction, kind: fnproto.KindStorageSignURL,
			body:    `01000000 62  01000000 6b  02  00000000  0000000000000000  00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: StorageSignURL.method: invalid SignURLMethod 2 (max 1)",
		},
		{
			name: "object info option tag", dir: fnproto.ToFunction, kind: fnproto.KindStorageObjectInfoResult,
			body:    `02`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: StorageObjectInfoResult.info: invalid option tag 2",
		},
		{
			name: "object page count over remaining", dir: fnproto.ToFunction, kind: fnproto.KindObjectPageResult,
			body:    `ffffff00  00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: ObjectPageResult.objects: count 16777215 needs at least 469762020 bytes, 4 remain",
		},
		{
			name: "trailing bytes", dir: fnproto.FromFunction, kind: fnproto.KindGet,
			body:    `01000000 74  01000000 6b  00`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: Get: 1 trailing bytes after body",
		},
		{
			name: "trailing bytes after an empty message", dir: fnproto.ToFunction, kind: fnproto.KindEmptyResult,
			body:    `0000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: EmptyResult: 2 trailing bytes after body",
		},
		{
			name: "element count beyond remaining", dir: fnproto.FromFunction, kind: fnproto.KindBatchGet,
			body:    `e8030000  01000000 74 01000000 6b`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: BatchGet.table_keys: count 1000 needs at least 8000 bytes, 10 remain",
		},
		{
			name: "huge element count", dir: fnproto.ToFunction, kind: fnproto.KindListResult,
			body:    `ffffffff 00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: ListResult.list: count 4294967295 needs at least 17179869180 bytes, 4 remain",
		},
		{
			name: "truncated fixed-size field", dir: fnproto.FromFunction, kind: fnproto.KindScan,
			body:    `01000000 74  00000000  0a00`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: Scan.limit: need 4 bytes, 2 remain",
		},
		{
			name: "truncated inside a list element", dir: fnproto.ToFunction, kind: fnproto.KindObjectListResult,
			body:    `02000000  01000000 61 0100000000000000  01000000 62 010000000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: ObjectListResult.list[1].size: need 8 bytes, 6 remain",
		},
		{
			name: "empty body for a message with fields", dir: fnproto.FromFunction, kind: fnproto.KindFatalError,
			body:    ``,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: FatalError.error: need 4 bytes, 0 remain",
		},
		{
			name: "nested response", dir: fnproto.FromFunction, kind: fnproto.KindFunctionResult,
			body:    `c800 00000000 05000000 6869`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: FunctionResult.response.body: length 5 exceeds remaining 2 bytes",
		},
		{
			name: "truncated ttl", dir: fnproto.FromFunction, kind: fnproto.KindPutExpiring,
			body:    `01000000 74  01000000 6b  00000000  00  3c000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: PutExpiring.ttl_seconds: need 8 bytes, 4 remain",
		},
		{
			name: "cursor beyond remaining", dir: fnproto.FromFunction, kind: fnproto.KindScanPage,
			body:    `01000000 74  00000000  0a000000  09000000 6331`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: ScanPage.cursor: length 9 exceeds remaining 2 bytes",
		},
		{
			name: "cursor inside a batch scan", dir: fnproto.FromFunction, kind: fnproto.KindBatchScanKeysPage,
			body:    `02000000  01000000 61 00000000 01000000 00000000  01000000 62 00000000 01000000 05000000 63`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: BatchScanKeysPage.scans[1].cursor: length 5 exceeds remaining 1 bytes",
		},
		{
			name: "scan count beyond remaining", dir: fnproto.FromFunction, kind: fnproto.KindBatchScanPage,
			body:    `03000000  01000000 61 00000000 01000000 00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: BatchScanPage.scans: count 3 needs at least 48 bytes, 17 remain",
		},
		{
			name: "key inside a page of a batch result", dir: fnproto.ToFunction, kind: fnproto.KindBatchScanKeysPageResult,
			body:    `01000000  01000000 74  02000000  01000000 6b  07000000 6c  00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: BatchScanKeysPageResult.results[0].keys[1]: length 7 exceeds remaining 5 bytes",
		},
		{
			name: "next_cursor missing", dir: fnproto.ToFunction, kind: fnproto.KindKeyValuePageResult,
			body:    `00000000`,
			wantErr: fnproto.ErrMalformed,
			wantMsg: "fnproto: KeyValuePageResult.next_cursor: need 4 bytes, 0 remain",
		},
		{
			name: "unknown kind", dir: fnproto.ToFunction, kind: 42,
			body:    ``,
			wantErr: fnproto.ErrUnknownKind,
			wantMsg: "fnproto: unknown to-function kind 42",
		},
		{
			name: "kind of the other direction", dir: fnproto.ToFunction, kind: fnproto.KindLog,
			body:    `01000000 61 02`,
			wantErr: fnproto.ErrUnknownKind,
			wantMsg: "fnproto: unknown to-function kind 3",
		},
		{
			name: "invalid direction", dir: 0, kind: 1,
			body:    ``,
			wantErr: fnproto.ErrUnknownKind,
			wantMsg: "fnproto: invalid direction 0 (kind 1)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := unhex(t, tc.body)
			m, err := fnproto.Unmarshal(tc.dir, tc.kind, body)
			if err == nil {
				t.Fatalf("Unmarshal = %#v, want error", m)
			}
			if m != nil {
				t.Errorf("Unmarshal returned a message with the error: %#v", m)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tc.wantErr)
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("error text\n got %q\nwant %q", err, tc.wantMsg)
			}

			// The same body inside a frame: ParseFrame reports the same error
			// and the frame's size, so a caller can skip it.
			frame := append([]byte{0, 0, 0, 0, byte(tc.kind), byte(tc.kind >> 8)}, body...)
			frame[0] = byte(len(body) + 2)
			frame[1] = byte((len(body) + 2) >> 8)
			_, n, perr := fnproto.ParseFrame(tc.dir, frame, 0)
			if perr == nil || perr.Error() != err.Error() {
				t.Errorf("ParseFrame error = %v, want %v", perr, err)
			}
			if n != len(frame) {
				t.Errorf("ParseFrame n = %d, want %d", n, len(frame))
			}
		})
	}
}

func TestEncode_RejectsUnrepresentableMessages(t *testing.T) {
	bad := "a\xffb"
	var nilPut *fnproto.Put
	tests := []struct {
		name    string
		msg     fnproto.Message
		wantErr error
		wantMsg string
	}{
		{"nil message", nil, fnproto.ErrMalformed, "fnproto: nil message"},
		{"typed nil message", nilPut, fnproto.ErrMalformed, "fnproto: encode Put: nil message"},
		{"invalid UTF-8 field", &fnproto.Put{Table: bad}, fnproto.ErrMalformed, "fnproto: encode Put.table: invalid UTF-8"},
		{"LogLevel out of range", &fnproto.Log{Body: "x", Level: 9}, fnproto.ErrMalformed, "fnproto: encode Log.level: invalid LogLevel 9 (max 4)"},
		{"SignURLMethod out of range", &fnproto.StorageSignURL{Method: 3}, fnproto.ErrMalformed, "fnproto: encode StorageSignURL.method: invalid SignURLMethod 3 (max 1)"},
		{
			"invalid UTF-8 in nested header",
			&fnproto.ExecuteFunction{Request: fnproto.Request{Headers: []fnproto.Header{{Name: "a"}, {Name: "b", Value: bad}}}},
			fnproto.ErrMalformed, "fnproto: encode ExecuteFunction.request.headers[1].value: invalid UTF-8",
		},
		{
			"invalid UTF-8 map value",
			&fnproto.ExecuteFunction{Request: fnproto.Request{QueryParams: map[string]string{"z": "ok", "a": bad}}},
			fnproto.ErrMalformed, "fnproto: encode ExecuteFunction.request.query_params[0].value: invalid UTF-8",
		},
		{
			"invalid UTF-8 in list element",
			&fnproto.BatchDelete{TableKeys: []fnproto.TableKey{{Table: "ok"}, {Table: "ok"}, {Table: bad}}},
			fnproto.ErrMalformed, "fnproto: encode BatchDelete.table_keys[2].table: invalid UTF-8",
		},
		{
			"invalid UTF-8 table of a batch scan page",
			&fnproto.BatchScanPageResult{Results: []fnproto.TableKeyValuePage{{Table: "ok"}, {Table: bad}}},
			fnproto.ErrMalformed, "fnproto: encode BatchScanPageResult.results[1].table: invalid UTF-8",
		},
		{
			"invalid UTF-8 table of a scan spec",
			&fnproto.BatchScanKeysPage{Scans: []fnproto.ScanSpec{{Table: bad}}},
			fnproto.ErrMalformed, "fnproto: encode BatchScanKeysPage.scans[0].table: invalid UTF-8",
		},
		{
			"invalid UTF-8 option string",
			&fnproto.HTTPResponse{Error: &bad},
			fnproto.ErrMalformed, "fnproto: encode HTTPResponse.error: invalid UTF-8",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := fnproto.AppendFrame(dst, tc.msg)
			if err == nil {
				t.Fatalf("AppendFrame succeeded: %x", out)
			}
			if string(out) != "keep" {
				t.Errorf("AppendFrame on error returned %q, want dst unchanged", out)
			}
			if !errors.Is(err, tc.wantErr) || err.Error() != tc.wantMsg {
				t.Errorf("AppendFrame error = %q (wraps %v: %t), want %q", err, tc.wantErr, errors.Is(err, tc.wantErr), tc.wantMsg)
			}
			if _, err := fnproto.Marshal(tc.msg); err == nil || err.Error() != tc.wantMsg {
				t.Errorf("Marshal error = %v, want %q", err, tc.wantMsg)
			}
		})
	}
}

func TestKindName(t *testing.T) {
	tests := []struct {
		dir  fnproto.Direction
		kind fnproto.Kind
		want string
	}{
		{fnproto.ToFunction, 1, "ExecuteFunction"},
		{fnproto.FromFunction, 1, "FatalError"},
		{fnproto.ToFunction, 1001, "DbError"},
		{fnproto.FromFunction, 1001, "Put"},
		{fnproto.ToFunction, 3001, "HTTPResponse"},
		{fnproto.FromFunction, 3001, "HTTPRequest"},
		{fnproto.FromFunction, 2004, "StorageList"},
		{fnproto.ToFunction, 2, "Kind(2)"},
		{0, 1, "Kind(1)"},
	}
	for _, tc := range tests {
		if got := fnproto.KindName(tc.dir, tc.kind); got != tc.want {
			t.Errorf("KindName(%v, %d) = %q, want %q", tc.dir, tc.kind, got, tc.want)
		}
	}
	for _, m := range roundTripCases() {
		if name := fnproto.KindName(m.in.Direction(), m.in.Kind()); !strings.HasPrefix(m.name, name) {
			t.Errorf("KindName(%v, %d) = %q for case %q", m.in.Direction(), m.in.Kind(), name, m.name)
		}
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		dir  fnproto.Direction
		kind fnproto.Kind
		want fnproto.Class
	}{
		{fnproto.ToFunction, fnproto.KindExecuteFunction, fnproto.ClassControl},
		{fnproto.FromFunction, fnproto.KindLog, fnproto.ClassControl},
		{fnproto.FromFunction, fnproto.KindPut, fnproto.ClassDb},
		{fnproto.FromFunction, fnproto.KindCompareAndSwap, fnproto.ClassDb},
		{fnproto.ToFunction, fnproto.KindCasResult, fnproto.ClassDb},
		{fnproto.FromFunction, fnproto.KindStorageList, fnproto.ClassStorage},
		{fnproto.ToFunction, fnproto.KindStorageError, fnproto.ClassStorage},
		{fnproto.FromFunction, fnproto.KindHTTPRequest, fnproto.ClassHTTP},
		{fnproto.ToFunction, fnproto.KindHTTPResponse, fnproto.ClassHTTP},
		{fnproto.FromFunction, fnproto.KindPutExpiring, fnproto.ClassDb},
		{fnproto.FromFunction, fnproto.KindBatchScanKeysPage, fnproto.ClassDb},
		{fnproto.ToFunction, fnproto.KindBatchScanKeysPageResult, fnproto.ClassDb},
		{fnproto.FromFunction, fnproto.KindStorageGetRange, fnproto.ClassStorage},
		{fnproto.FromFunction, fnproto.KindStorageSignURL, fnproto.ClassStorage},
		{fnproto.ToFunction, fnproto.KindStorageRangeResult, fnproto.ClassStorage},
		{fnproto.ToFunction, fnproto.KindStorageSignedURLResult, fnproto.ClassStorage},
		{fnproto.FromFunction, 2012, 0}, // one past StorageSignURL
		{fnproto.ToFunction, 2011, 0},   // one past StorageSignedURLResult
		{fnproto.FromFunction, 1020, 0}, // one past BatchScanKeysPage
		{fnproto.ToFunction, 1013, 0},   // one past BatchScanKeysPageResult
		{fnproto.ToFunction, 2, 0},
		{fnproto.FromFunction, 0xffff, 0},
		{0, 1, 0},
		{3, 1, 0},
	}
	for _, tc := range tests {
		if got := fnproto.ClassOf(tc.dir, tc.kind); got != tc.want {
			t.Errorf("ClassOf(%v, %d) = %v, want %v", tc.dir, tc.kind, got, tc.want)
		}
	}
	// Every known pair has a class, and only known pairs do.
	for _, dir := range []fnproto.Direction{fnproto.ToFunction, fnproto.FromFunction} {
		for k := 0; k <= 0xffff; k++ {
			known := fnproto.KindName(dir, fnproto.Kind(k)) != "Kind("+strconv.Itoa(k)+")"
			if c := fnproto.ClassOf(dir, fnproto.Kind(k)); known != (c != 0) {
				t.Errorf("ClassOf(%v, %d) = %v, KindName known = %t", dir, k, c, known)
			}
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = fnproto.ClassOf(fnproto.FromFunction, fnproto.KindGet) }); allocs != 0 {
		t.Errorf("ClassOf allocated %.1f times", allocs)
	}
}

func TestStringers(t *testing.T) {
	if got := fnproto.ToFunction.String(); got != "to-function" {
		t.Errorf("ToFunction.String() = %q", got)
	}
	if got := fnproto.FromFunction.String(); got != "from-function" {
		t.Errorf("FromFunction.String() = %q", got)
	}
	if got := fnproto.Direction(7).String(); got != "Direction(7)" {
		t.Errorf("Direction(7).String() = %q", got)
	}
	classes := []string{"Class(0)", "control", "db", "storage", "http", "Class(5)"}
	for i, w := range classes {
		if got := fnproto.Class(i).String(); got != w {
			t.Errorf("Class(%d).String() = %q, want %q", i, got, w)
		}
	}
	for i, w := range []string{"GET", "PUT", "SignURLMethod(2)"} {
		if got := fnproto.SignURLMethod(i).String(); got != w {
			t.Errorf("SignURLMethod(%d).String() = %q, want %q", i, got, w)
		}
	}
	want := []string{"trace", "debug", "info", "warn", "error", "LogLevel(5)"}
	for i, w := range want {
		if got := fnproto.LogLevel(i).String(); got != w {
			t.Errorf("LogLevel(%d).String() = %q, want %q", i, got, w)
		}
	}
}

// TestUnmarshal_EveryTruncationAndExtensionFails cuts every round-trip body
// at every length and appends a byte: each must be rejected as malformed.
func TestUnmarshal_EveryTruncationAndExtensionFails(t *testing.T) {
	for _, tc := range roundTripCases() {
		body, err := fnproto.Marshal(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		dir, kind := tc.in.Direction(), tc.in.Kind()
		for i := range len(body) {
			m, err := fnproto.Unmarshal(dir, kind, body[:i])
			if !errors.Is(err, fnproto.ErrMalformed) || m != nil {
				t.Fatalf("%s cut to %d of %d bytes: (%v, %v), want ErrMalformed", tc.name, i, len(body), m, err)
			}
			if !strings.HasPrefix(err.Error(), "fnproto: "+fnproto.KindName(dir, kind)) {
				t.Fatalf("%s cut to %d bytes: error %q does not name the message", tc.name, i, err)
			}
		}
		_, err = fnproto.Unmarshal(dir, kind, append(body, 0))
		if want := "fnproto: " + fnproto.KindName(dir, kind) + ": 1 trailing bytes after body"; err == nil || err.Error() != want {
			t.Fatalf("%s plus one byte: %v, want %q", tc.name, err, want)
		}
	}
}

// TestEncode_TypedNilOfEveryKind passes a nil *M of every message type.
func TestEncode_TypedNilOfEveryKind(t *testing.T) {
	for _, tc := range roundTripCases() {
		m := reflect.Zero(reflect.TypeOf(tc.in)).Interface().(fnproto.Message)
		_, err := fnproto.AppendFrame(nil, m)
		want := "fnproto: encode " + fnproto.KindName(m.Direction(), m.Kind()) + ": nil message"
		if !errors.Is(err, fnproto.ErrMalformed) || err.Error() != want {
			t.Errorf("%s: AppendFrame(nil %T) = %v, want %q", tc.name, m, err, want)
		}
	}
}
