package fnproto

// Runtime → function messages (Direction ToFunction).

// ExecuteFunction asks the function to handle one HTTP request. The SDK dispatches on Function
// (the exported function's name) and replies with FunctionResult.
type ExecuteFunction struct {
	Function string  // function: name of the exported function to run
	Request  Request // request: the HTTP request to handle
}

// Kind returns KindExecuteFunction.
func (*ExecuteFunction) Kind() Kind { return KindExecuteFunction }

// Direction returns ToFunction.
func (*ExecuteFunction) Direction() Direction { return ToFunction }

func (m *ExecuteFunction) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("function", m.Function)
	e.request("request", &m.Request)
	return e.done()
}

func (m *ExecuteFunction) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Function = d.str("function")
	m.Request = d.request("request")
	return d.done()
}

// DbError answers a database operation that failed.
type DbError struct {
	Error string // error: what went wrong
}

// Kind returns KindDbError.
func (*DbError) Kind() Kind { return KindDbError }

// Direction returns ToFunction.
func (*DbError) Direction() Direction { return ToFunction }

func (m *DbError) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("error", m.Error)
	return e.done()
}

func (m *DbError) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Error = d.str("error")
	return d.done()
}

// SingleResult answers Get: the value, or nil when the key does not exist.
type SingleResult struct {
	Item *[]byte // item: nil = key not found (Option)
}

// Kind returns KindSingleResult.
func (*SingleResult) Kind() Kind { return KindSingleResult }

// Direction returns ToFunction.
func (*SingleResult) Direction() Direction { return ToFunction }

func (m *SingleResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.optBytes("item", m.Item)
	return e.done()
}

func (m *SingleResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Item = d.optBytes("item")
	return d.done()
}

// ListResult is a database reply carrying a list of byte strings: values,
// keys or table names, depending on the operation it answers.
type ListResult struct {
	List [][]byte // list: values, keys or table names
}

// Kind returns KindListResult.
func (*ListResult) Kind() Kind { return KindListResult }

// Direction returns ToFunction.
func (*ListResult) Direction() Direction { return ToFunction }

func (m *ListResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.bytesList("list", m.List)
	return e.done()
}

func (m *ListResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.List = d.bytesList("list")
	return d.done()
}

// KeyValueListResult is a database reply carrying key/value entries (Scan).
type KeyValueListResult struct {
	List []KeyValue // list: entries
}

// Kind returns KindKeyValueListResult.
func (*KeyValueListResult) Kind() Kind { return KindKeyValueListResult }

// Direction returns ToFunction.
func (*KeyValueListResult) Direction() Direction { return ToFunction }

func (m *KeyValueListResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.keyValues("list", m.List)
	return e.done()
}

func (m *KeyValueListResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.List = d.keyValues("list")
	return d.done()
}

// TableKeyListResult is a database reply carrying keys with their tables.
type TableKeyListResult struct {
	List []TableKey // list: keys with their tables
}

// Kind returns KindTableKeyListResult.
func (*TableKeyListResult) Kind() Kind { return KindTableKeyListResult }

// Direction returns ToFunction.
func (*TableKeyListResult) Direction() Direction { return ToFunction }

func (m *TableKeyListResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeys("list", m.List)
	return e.done()
}

func (m *TableKeyListResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.List = d.tableKeys("list")
	return d.done()
}

// TableKeyValueListResult is a database reply carrying entries with their tables.
type TableKeyValueListResult struct {
	List []TableKeyValue // list: entries with their tables
}

// Kind returns KindTableKeyValueListResult.
func (*TableKeyValueListResult) Kind() Kind { return KindTableKeyValueListResult }

// Direction returns ToFunction.
func (*TableKeyValueListResult) Direction() Direction { return ToFunction }

func (m *TableKeyValueListResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeyValues("list", m.List)
	return e.done()
}

func (m *TableKeyValueListResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.List = d.tableKeyValues("list")
	return d.done()
}

// EmptyResult answers a database operation that succeeded without a result
// (Put, Delete, DeleteByPrefix, BatchPut, BatchDelete).
type EmptyResult struct{}

// Kind returns KindEmptyResult.
func (*EmptyResult) Kind() Kind { return KindEmptyResult }

// Direction returns ToFunction.
func (*EmptyResult) Direction() Direction { return ToFunction }

func (m *EmptyResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	return b, nil
}

func (m *EmptyResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	return d.done()
}

// CasResult answers CompareAndSwap.
type CasResult struct {
	PreviousValue *[]byte // previous_value: value before the operation; nil = the key did not exist (Option)
	IsSwapped     bool    // is_swapped: whether the new value was written
}

// Kind returns KindCasResult.
func (*CasResult) Kind() Kind { return KindCasResult }

// Direction returns ToFunction.
func (*CasResult) Direction() Direction { return ToFunction }

func (m *CasResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.optBytes("previous_value", m.PreviousValue)
	e.boolean(m.IsSwapped)
	return e.done()
}

func (m *CasResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.PreviousValue = d.optBytes("previous_value")
	m.IsSwapped = d.boolean("is_swapped")
	return d.done()
}

// StorageError answers a storage operation that failed.
type StorageError struct {
	Error string // error: what went wrong
}

// Kind returns KindStorageError.
func (*StorageError) Kind() Kind { return KindStorageError }

// Direction returns ToFunction.
func (*StorageError) Direction() Direction { return ToFunction }

func (m *StorageError) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("error", m.Error)
	return e.done()
}

func (m *StorageError) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Error = d.str("error")
	return d.done()
}

// StorageGetResult answers StorageGet.
type StorageGetResult struct {
	Data *[]byte // data: object contents; nil = not found (Option)
}

// Kind returns KindStorageGetResult.
func (*StorageGetResult) Kind() Kind { return KindStorageGetResult }

// Direction returns ToFunction.
func (*StorageGetResult) Direction() Direction { return ToFunction }

func (m *StorageGetResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.optBytes("data", m.Data)
	return e.done()
}

func (m *StorageGetResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Data = d.optBytes("data")
	return d.done()
}

// StorageEmptyResult answers a storage operation that succeeded without a result
// (StoragePut, StorageDelete).
type StorageEmptyResult struct{}

// Kind returns KindStorageEmptyResult.
func (*StorageEmptyResult) Kind() Kind { return KindStorageEmptyResult }

// Direction returns ToFunction.
func (*StorageEmptyResult) Direction() Direction { return ToFunction }

func (m *StorageEmptyResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	return b, nil
}

func (m *StorageEmptyResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	return d.done()
}

// ObjectListResult answers StorageList.
type ObjectListResult struct {
	List []StorageObject // list: objects whose key starts with the prefix
}

// Kind returns KindObjectListResult.
func (*ObjectListResult) Kind() Kind { return KindObjectListResult }

// Direction returns ToFunction.
func (*ObjectListResult) Direction() Direction { return ToFunction }

func (m *ObjectListResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.storageObjects("list", m.List)
	return e.done()
}

func (m *ObjectListResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.List = d.storageObjects("list")
	return d.done()
}

// HTTPResponse answers HTTPRequest (wire name HttpResponse). When the request
// could not be made at all, Error is set and the other fields are zero.
type HTTPResponse struct {
	Status  uint16   // status: HTTP status code
	Headers []Header // headers: response headers
	Body    []byte   // body: response body
	Error   *string  // error: transport error; nil on success (Option)
}

// Kind returns KindHTTPResponse.
func (*HTTPResponse) Kind() Kind { return KindHTTPResponse }

// Direction returns ToFunction.
func (*HTTPResponse) Direction() Direction { return ToFunction }

func (m *HTTPResponse) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.u16(m.Status)
	e.headers("headers", m.Headers)
	e.bytes("body", m.Body)
	e.optStr("error", m.Error)
	return e.done()
}

func (m *HTTPResponse) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Status = d.u16("status")
	m.Headers = d.headers("headers")
	m.Body = d.bytes("body")
	m.Error = d.optStr("error")
	return d.done()
}

// KeyValuePageResult answers ScanPage: one page of entries in key byte order
// and where to continue. An empty NextCursor means the scan is complete.
type KeyValuePageResult struct {
	List       []KeyValue // list: entries
	NextCursor []byte     // next_cursor: opaque; empty when the scan is complete
}

// Kind returns KindKeyValuePageResult.
func (*KeyValuePageResult) Kind() Kind { return KindKeyValuePageResult }

// Direction returns ToFunction.
func (*KeyValuePageResult) Direction() Direction { return ToFunction }

func (m *KeyValuePageResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.keyValues("list", m.List)
	e.bytes("next_cursor", m.NextCursor)
	return e.done()
}

func (m *KeyValuePageResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.List = d.keyValues("list")
	m.NextCursor = d.bytes("next_cursor")
	return d.done()
}

// KeyPageResult answers ScanKeysPage: one page of keys in byte order and
// where to continue. An empty NextCursor means the scan is complete.
type KeyPageResult struct {
	List       [][]byte // list: keys
	NextCursor []byte   // next_cursor: opaque; empty when the scan is complete
}

// Kind returns KindKeyPageResult.
func (*KeyPageResult) Kind() Kind { return KindKeyPageResult }

// Direction returns ToFunction.
func (*KeyPageResult) Direction() Direction { return ToFunction }

func (m *KeyPageResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.bytesList("list", m.List)
	e.bytes("next_cursor", m.NextCursor)
	return e.done()
}

func (m *KeyPageResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.List = d.bytesList("list")
	m.NextCursor = d.bytes("next_cursor")
	return d.done()
}

// BatchScanPageResult answers BatchScanPage: Results[i] is the page of
// Scans[i].
type BatchScanPageResult struct {
	Results []TableKeyValuePage // results: one page per requested scan, in order
}

// Kind returns KindBatchScanPageResult.
func (*BatchScanPageResult) Kind() Kind { return KindBatchScanPageResult }

// Direction returns ToFunction.
func (*BatchScanPageResult) Direction() Direction { return ToFunction }

func (m *BatchScanPageResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeyValuePages("results", m.Results)
	return e.done()
}

func (m *BatchScanPageResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Results = d.tableKeyValuePages("results")
	return d.done()
}

// BatchScanKeysPageResult answers BatchScanKeysPage: Results[i] is the page
// of Scans[i].
type BatchScanKeysPageResult struct {
	Results []TableKeyPage // results: one page per requested scan, in order
}

// Kind returns KindBatchScanKeysPageResult.
func (*BatchScanKeysPageResult) Kind() Kind { return KindBatchScanKeysPageResult }

// Direction returns ToFunction.
func (*BatchScanKeysPageResult) Direction() Direction { return ToFunction }

func (m *BatchScanKeysPageResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeyPages("results", m.Results)
	return e.done()
}

func (m *BatchScanKeysPageResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Results = d.tableKeyPages("results")
	return d.done()
}

// StorageRangeResult answers StorageGetRange. Found is false when no object
// exists under the key (every other field is then zero). Otherwise Data is
// the bytes from the requested offset (possibly fewer than asked; none at
// the end of the object), TotalSize the object's whole size, and ETag and
// ContentType its current metadata. When the request's if_match differed
// from ETag, Data is empty: the caller compares ETag with what it expected.
type StorageRangeResult struct {
	Found       bool   // found: whether the object exists
	Data        []byte // data: the bytes read
	TotalSize   uint64 // total_size: size of the whole object
	ETag        string // etag: the object's current etag
	ContentType string // content_type: the object's MIME type; empty when none was given
}

// Kind returns KindStorageRangeResult.
func (*StorageRangeResult) Kind() Kind { return KindStorageRangeResult }

// Direction returns ToFunction.
func (*StorageRangeResult) Direction() Direction { return ToFunction }

func (m *StorageRangeResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.boolean(m.Found)
	e.bytes("data", m.Data)
	e.u64(m.TotalSize)
	e.str("etag", m.ETag)
	e.str("content_type", m.ContentType)
	return e.done()
}

func (m *StorageRangeResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Found = d.boolean("found")
	m.Data = d.bytes("data")
	m.TotalSize = d.u64("total_size")
	m.ETag = d.str("etag")
	m.ContentType = d.str("content_type")
	return d.done()
}

// StorageUploadResult answers StoragePutBegin with the upload's handle,
// valid until StoragePutEnd, a failed StoragePutChunk or the end of the
// call.
type StorageUploadResult struct {
	Upload uint32 // upload: handle for StoragePutChunk and StoragePutEnd
}

// Kind returns KindStorageUploadResult.
func (*StorageUploadResult) Kind() Kind { return KindStorageUploadResult }

// Direction returns ToFunction.
func (*StorageUploadResult) Direction() Direction { return ToFunction }

func (m *StorageUploadResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.u32(m.Upload)
	return e.done()
}

func (m *StorageUploadResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Upload = d.u32("upload")
	return d.done()
}

// StorageObjectResult answers a committing StoragePutEnd: the stored
// object's size and etag.
type StorageObjectResult struct {
	Size uint64 // size: bytes stored
	ETag string // etag: the new object's etag
}

// Kind returns KindStorageObjectResult.
func (*StorageObjectResult) Kind() Kind { return KindStorageObjectResult }

// Direction returns ToFunction.
func (*StorageObjectResult) Direction() Direction { return ToFunction }

func (m *StorageObjectResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.u64(m.Size)
	e.str("etag", m.ETag)
	return e.done()
}

func (m *StorageObjectResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Size = d.u64("size")
	m.ETag = d.str("etag")
	return d.done()
}

// ObjectPageResult answers StorageListPage: one page of objects in key byte
// order and where to continue. An empty NextCursor means the listing is
// complete.
type ObjectPageResult struct {
	Objects    []StorageObjectInfo // objects: the page
	NextCursor string              // next_cursor: opaque; empty when the listing is complete
}

// Kind returns KindObjectPageResult.
func (*ObjectPageResult) Kind() Kind { return KindObjectPageResult }

// Direction returns ToFunction.
func (*ObjectPageResult) Direction() Direction { return ToFunction }

func (m *ObjectPageResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.objectInfos("objects", m.Objects)
	e.str("next_cursor", m.NextCursor)
	return e.done()
}

func (m *ObjectPageResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Objects = d.objectInfos("objects")
	m.NextCursor = d.str("next_cursor")
	return d.done()
}

// StorageObjectInfoResult answers StorageStat: the object's metadata, or
// nil when no object exists under the key.
type StorageObjectInfoResult struct {
	Info *StorageObjectInfo // info: nil = not found (Option)
}

// Kind returns KindStorageObjectInfoResult.
func (*StorageObjectInfoResult) Kind() Kind { return KindStorageObjectInfoResult }

// Direction returns ToFunction.
func (*StorageObjectInfoResult) Direction() Direction { return ToFunction }

func (m *StorageObjectInfoResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.optObjectInfo("info", m.Info)
	return e.done()
}

func (m *StorageObjectInfoResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Info = d.optObjectInfo("info")
	return d.done()
}

// StorageSignedURLResult answers StorageSignURL.
type StorageSignedURLResult struct {
	URL           string // url: absolute URL of the storage service's HTTP API
	ExpiresAtUnix uint64 // expires_at_unix: when the URL stops working, Unix seconds
}

// Kind returns KindStorageSignedURLResult.
func (*StorageSignedURLResult) Kind() Kind { return KindStorageSignedURLResult }

// Direction returns ToFunction.
func (*StorageSignedURLResult) Direction() Direction { return ToFunction }

func (m *StorageSignedURLResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("url", m.URL)
	e.u64(m.ExpiresAtUnix)
	return e.done()
}

func (m *StorageSignedURLResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.URL = d.str("url")
	m.ExpiresAtUnix = d.u64("expires_at_unix")
	return d.done()
}
