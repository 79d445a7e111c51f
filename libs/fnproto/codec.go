package fnproto

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// Minimum encoded sizes of one element, used to bound element counts by the
// bytes left in the frame before anything is allocated.
const (
	minBytesItem     = 4                 // []byte: u32 length
	minHeader        = 4 + 4             // name, value
	minMapEntry      = 4 + 4             // key, value
	minKeyValue      = 4 + 4             // key, value
	minTableKey      = 4 + 4             // table, key
	minTableKeyValue = 4 + 4 + 4         // table, key, value
	minStorageObject = 4 + 8             // key, size
	minScanSpec      = 4 + 4 + 4 + 4     // table, key_prefix, limit, cursor
	minTablePage     = 4 + 4 + 4         // table, list or keys, next_cursor
	minObjectInfo    = 4 + 8 + 4 + 4 + 8 // key, size, etag, content_type, last_modified
	maxSignURLMethod = SignURLPut
	maxLogLevel      = LogLevelError
	mapKeysOnStack   = 16
)

// encoder appends Borsh values to b. The first failure is kept in err;
// compound helpers return early once err is set, so field paths added while
// unwinding always describe the first failure.
type encoder struct {
	b   []byte
	err *codecError
}

func (e *encoder) fail(sentinel error, field, format string, args ...any) {
	if e.err == nil {
		e.err = &codecError{sentinel: sentinel, encode: true, field: field, detail: fmt.Sprintf(format, args...)}
	}
}

// done returns the encoded bytes, or the first error.
func (e *encoder) done() ([]byte, error) {
	if e.err != nil {
		return e.b, e.err
	}
	return e.b, nil
}

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }

func (e *encoder) boolean(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// length writes a u32 length or count, failing when n does not fit.
func (e *encoder) length(field string, n int) bool {
	if uint64(n) > math.MaxUint32 {
		e.fail(ErrFrameTooLarge, field, "length %d exceeds the u32 range", n)
		return false
	}
	e.u32(uint32(n))
	return true
}

func (e *encoder) bytes(field string, p []byte) {
	if e.length(field, len(p)) {
		e.b = append(e.b, p...)
	}
}

func (e *encoder) str(field, s string) {
	if !utf8.ValidString(s) {
		e.fail(ErrMalformed, field, "invalid UTF-8")
		return
	}
	if e.length(field, len(s)) {
		e.b = append(e.b, s...)
	}
}

func (e *encoder) optBytes(field string, p *[]byte) {
	if p == nil {
		e.u8(0)
		return
	}
	e.u8(1)
	e.bytes(field, *p)
}

func (e *encoder) optStr(field string, s *string) {
	if s == nil {
		e.u8(0)
		return
	}
	e.u8(1)
	e.str(field, *s)
}

func (e *encoder) logLevel(field string, l LogLevel) {
	if l > maxLogLevel {
		e.fail(ErrMalformed, field, "invalid LogLevel %d (max %d)", uint8(l), uint8(maxLogLevel))
		return
	}
	e.u8(uint8(l))
}

func (e *encoder) signURLMethod(field string, m SignURLMethod) {
	if m > maxSignURLMethod {
		e.fail(ErrMalformed, field, "invalid SignURLMethod %d (max %d)", uint8(m), uint8(maxSignURLMethod))
		return
	}
	e.u8(uint8(m))
}

func (e *encoder) optU64(v *uint64) {
	if v == nil {
		e.u8(0)
		return
	}
	e.u8(1)
	e.u64(*v)
}

func (e *encoder) objectInfo(o *StorageObjectInfo) {
	e.str("key", o.Key)
	e.u64(o.Size)
	e.str("etag", o.ETag)
	e.str("content_type", o.ContentType)
	e.u64(o.LastModifiedUnix)
}

func (e *encoder) objectInfos(field string, list []StorageObjectInfo) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.objectInfo(&list[i])
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) optObjectInfo(field string, o *StorageObjectInfo) {
	if o == nil {
		e.u8(0)
		return
	}
	e.u8(1)
	e.objectInfo(o)
	if e.err != nil {
		e.err.within(field)
	}
}

// strMap writes a map sorted by key. Up to mapKeysOnStack keys are sorted in
// a stack array, so small maps encode without allocating.
func (e *encoder) strMap(field string, m map[string]string) {
	if e.err != nil || !e.length(field, len(m)) || len(m) == 0 {
		return
	}
	var stack [mapKeysOnStack]string
	keys := stack[:0]
	if len(m) > len(stack) {
		keys = make([]string, 0, len(m))
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		e.str("key", k)
		e.str("value", m[k])
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) headers(field string, hs []Header) {
	if e.err != nil || !e.length(field, len(hs)) {
		return
	}
	for i := range hs {
		e.str("name", hs[i].Name)
		e.str("value", hs[i].Value)
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) bytesList(field string, list [][]byte) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.bytes("", list[i])
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) keyValues(field string, list []KeyValue) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.bytes("key", list[i].Key)
		e.bytes("value", list[i].Value)
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) tableKeys(field string, list []TableKey) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.str("table", list[i].Table)
		e.bytes("key", list[i].Key)
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) tableKeyValues(field string, list []TableKeyValue) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.str("table", list[i].Table)
		e.bytes("key", list[i].Key)
		e.bytes("value", list[i].Value)
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) storageObjects(field string, list []StorageObject) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.str("key", list[i].Key)
		e.u64(list[i].Size)
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) scanSpecs(field string, list []ScanSpec) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.str("table", list[i].Table)
		e.bytes("key_prefix", list[i].KeyPrefix)
		e.u32(list[i].Limit)
		e.bytes("cursor", list[i].Cursor)
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) tableKeyValuePages(field string, list []TableKeyValuePage) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.str("table", list[i].Table)
		e.keyValues("list", list[i].List)
		e.bytes("next_cursor", list[i].NextCursor)
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) tableKeyPages(field string, list []TableKeyPage) {
	if e.err != nil || !e.length(field, len(list)) {
		return
	}
	for i := range list {
		e.str("table", list[i].Table)
		e.bytesList("keys", list[i].Keys)
		e.bytes("next_cursor", list[i].NextCursor)
		if e.err != nil {
			e.err.withinIndex(field, i)
			return
		}
	}
}

func (e *encoder) request(field string, r *Request) {
	if e.err != nil {
		return
	}
	e.str("method", r.Method)
	e.strMap("path_params", r.PathParams)
	e.strMap("query_params", r.QueryParams)
	e.headers("headers", r.Headers)
	e.bytes("body", r.Body)
	if e.err != nil {
		e.err.within(field)
	}
}

func (e *encoder) response(field string, r *Response) {
	if e.err != nil {
		return
	}
	e.u16(r.Status)
	e.headers("headers", r.Headers)
	e.bytes("body", r.Body)
	if e.err != nil {
		e.err.within(field)
	}
}

// decoder reads Borsh values from the front of b. The first failure is kept
// in err and every later read returns a zero value, so message decoders read
// their fields straight through and check once at the end.
type decoder struct {
	b   []byte
	err *codecError
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = &codecError{sentinel: ErrMalformed, field: field, detail: fmt.Sprintf(format, args...)}
	}
}

// done reports the first failure, or trailing bytes after the body.
func (d *decoder) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return &codecError{sentinel: ErrMalformed, detail: fmt.Sprintf("%d trailing bytes after body", len(d.b))}
	}
	return nil
}

// fixed consumes n bytes (n > 0), or fails and returns nil.
func (d *decoder) fixed(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail(field, "need %d bytes, %d remain", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8(field string) uint8 {
	if p := d.fixed(field, 1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16(field string) uint16 {
	if p := d.fixed(field, 2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32(field string) uint32 {
	if p := d.fixed(field, 4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64(field string) uint64 {
	if p := d.fixed(field, 8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) boolean(field string) bool {
	if d.err != nil {
		return false
	}
	switch v := d.u8(field); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(field, "invalid bool %d", v)
		return false
	}
}

// option reads an Option tag and reports whether a value follows.
func (d *decoder) option(field string) bool {
	if d.err != nil {
		return false
	}
	switch v := d.u8(field); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(field, "invalid option tag %d", v)
		return false
	}
}

// raw consumes a u32-length-prefixed run of bytes and returns a view of it
// (aliasing the input), after checking the length against what remains.
func (d *decoder) raw(field string) []byte {
	if d.err != nil {
		return nil
	}
	n := d.u32(field)
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.b)) {
		d.fail(field, "length %d exceeds remaining %d bytes", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// bytes reads a []byte and returns a copy; length 0 decodes to nil.
func (d *decoder) bytes(field string) []byte {
	p := d.raw(field)
	if len(p) == 0 {
		return nil
	}
	out := make([]byte, len(p))
	copy(out, p)
	return out
}

func (d *decoder) str(field string) string {
	p := d.raw(field)
	if len(p) == 0 {
		return ""
	}
	if !utf8.Valid(p) {
		d.fail(field, "invalid UTF-8")
		return ""
	}
	return string(p)
}

func (d *decoder) optBytes(field string) *[]byte {
	if !d.option(field) {
		return nil
	}
	p := d.bytes(field)
	if d.err != nil {
		return nil
	}
	return &p
}

func (d *decoder) optStr(field string) *string {
	if !d.option(field) {
		return nil
	}
	s := d.str(field)
	if d.err != nil {
		return nil
	}
	return &s
}

func (d *decoder) logLevel(field string) LogLevel {
	v := d.u8(field)
	if d.err == nil && LogLevel(v) > maxLogLevel {
		d.fail(field, "invalid LogLevel %d (max %d)", v, uint8(maxLogLevel))
		return 0
	}
	return LogLevel(v)
}

func (d *decoder) signURLMethod(field string) SignURLMethod {
	v := d.u8(field)
	if d.err == nil && SignURLMethod(v) > maxSignURLMethod {
		d.fail(field, "invalid SignURLMethod %d (max %d)", v, uint8(maxSignURLMethod))
		return 0
	}
	return SignURLMethod(v)
}

func (d *decoder) optU64(field string) *uint64 {
	if !d.option(field) {
		return nil
	}
	v := d.u64(field)
	if d.err != nil {
		return nil
	}
	return &v
}

func (d *decoder) objectInfo(o *StorageObjectInfo) {
	o.Key = d.str("key")
	o.Size = d.u64("size")
	o.ETag = d.str("etag")
	o.ContentType = d.str("content_type")
	o.LastModifiedUnix = d.u64("last_modified_unix_ms")
}

func (d *decoder) objectInfos(field string) []StorageObjectInfo {
	n := d.count(field, minObjectInfo)
	if n == 0 {
		return nil
	}
	list := make([]StorageObjectInfo, n)
	for i := range list {
		d.objectInfo(&list[i])
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) optObjectInfo(field string) *StorageObjectInfo {
	if !d.option(field) {
		return nil
	}
	var o StorageObjectInfo
	d.objectInfo(&o)
	if d.err != nil {
		d.err.within(field)
		return nil
	}
	return &o
}

// count reads a u32 element count and checks that count elements of at
// least minSize bytes each fit in what remains, so the caller may allocate
// count elements.
func (d *decoder) count(field string, minSize int) int {
	n := d.u32(field)
	if d.err != nil {
		return 0
	}
	if need := uint64(n) * uint64(minSize); need > uint64(len(d.b)) {
		d.fail(field, "count %d needs at least %d bytes, %d remain", n, need, len(d.b))
		return 0
	}
	return int(n)
}

// strView consumes a string and returns a view of its bytes (aliasing the
// input) after checking that they are UTF-8.
func (d *decoder) strView(field string) []byte {
	p := d.raw(field)
	if d.err == nil && !utf8.Valid(p) {
		d.fail(field, "invalid UTF-8")
		return nil
	}
	return p
}

// The string collections (maps and header lists) are decoded in two passes:
// the first validates every length, the UTF-8 and the key order without
// allocating; the second copies the whole encoded collection into one string
// and cuts every key, value, name and value out of it. One allocation then
// holds all the strings of a collection instead of one per string.

// cut returns the length-prefixed string at s[*off:] and advances *off past
// it. s was validated by the first pass.
func cut(s string, off *int) string {
	o := *off
	n := int(uint32(s[o]) | uint32(s[o+1])<<8 | uint32(s[o+2])<<16 | uint32(s[o+3])<<24)
	*off = o + 4 + n
	return s[o+4 : o+4+n]
}

func (d *decoder) strMap(field string) map[string]string {
	n := d.count(field, minMapEntry)
	if n == 0 {
		return nil
	}
	start := d.b
	var prev []byte
	for i := range n {
		k := d.strView("key")
		if d.err == nil && i > 0 && string(k) <= string(prev) {
			d.fail("key", "keys out of order (unsorted or duplicate)")
		}
		d.strView("value")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
		prev = k
	}
	block := string(start[:len(start)-len(d.b)])
	m := make(map[string]string, n)
	off := 0
	for range n {
		k := cut(block, &off)
		m[k] = cut(block, &off)
	}
	return m
}

func (d *decoder) headers(field string) []Header {
	n := d.count(field, minHeader)
	if n == 0 {
		return nil
	}
	start := d.b
	for i := range n {
		d.strView("name")
		d.strView("value")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	block := string(start[:len(start)-len(d.b)])
	hs := make([]Header, n)
	off := 0
	for i := range hs {
		hs[i].Name = cut(block, &off)
		hs[i].Value = cut(block, &off)
	}
	return hs
}

func (d *decoder) bytesList(field string) [][]byte {
	n := d.count(field, minBytesItem)
	if n == 0 {
		return nil
	}
	list := make([][]byte, n)
	for i := range list {
		list[i] = d.bytes("")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) keyValues(field string) []KeyValue {
	n := d.count(field, minKeyValue)
	if n == 0 {
		return nil
	}
	list := make([]KeyValue, n)
	for i := range list {
		list[i].Key = d.bytes("key")
		list[i].Value = d.bytes("value")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) tableKeys(field string) []TableKey {
	n := d.count(field, minTableKey)
	if n == 0 {
		return nil
	}
	list := make([]TableKey, n)
	for i := range list {
		list[i].Table = d.str("table")
		list[i].Key = d.bytes("key")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) tableKeyValues(field string) []TableKeyValue {
	n := d.count(field, minTableKeyValue)
	if n == 0 {
		return nil
	}
	list := make([]TableKeyValue, n)
	for i := range list {
		list[i].Table = d.str("table")
		list[i].Key = d.bytes("key")
		list[i].Value = d.bytes("value")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) storageObjects(field string) []StorageObject {
	n := d.count(field, minStorageObject)
	if n == 0 {
		return nil
	}
	list := make([]StorageObject, n)
	for i := range list {
		list[i].Key = d.str("key")
		list[i].Size = d.u64("size")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) scanSpecs(field string) []ScanSpec {
	n := d.count(field, minScanSpec)
	if n == 0 {
		return nil
	}
	list := make([]ScanSpec, n)
	for i := range list {
		list[i].Table = d.str("table")
		list[i].KeyPrefix = d.bytes("key_prefix")
		list[i].Limit = d.u32("limit")
		list[i].Cursor = d.bytes("cursor")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) tableKeyValuePages(field string) []TableKeyValuePage {
	n := d.count(field, minTablePage)
	if n == 0 {
		return nil
	}
	list := make([]TableKeyValuePage, n)
	for i := range list {
		list[i].Table = d.str("table")
		list[i].List = d.keyValues("list")
		list[i].NextCursor = d.bytes("next_cursor")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) tableKeyPages(field string) []TableKeyPage {
	n := d.count(field, minTablePage)
	if n == 0 {
		return nil
	}
	list := make([]TableKeyPage, n)
	for i := range list {
		list[i].Table = d.str("table")
		list[i].Keys = d.bytesList("keys")
		list[i].NextCursor = d.bytes("next_cursor")
		if d.err != nil {
			d.err.withinIndex(field, i)
			return nil
		}
	}
	return list
}

func (d *decoder) request(field string) Request {
	var r Request
	if d.err != nil {
		return r
	}
	r.Method = d.str("method")
	r.PathParams = d.strMap("path_params")
	r.QueryParams = d.strMap("query_params")
	r.Headers = d.headers("headers")
	r.Body = d.bytes("body")
	if d.err != nil {
		d.err.within(field)
		return Request{}
	}
	return r
}

func (d *decoder) response(field string) Response {
	var r Response
	if d.err != nil {
		return r
	}
	r.Status = d.u16("status")
	r.Headers = d.headers("headers")
	r.Body = d.bytes("body")
	if d.err != nil {
		d.err.within(field)
		return Response{}
	}
	return r
}
