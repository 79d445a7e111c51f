package fnproto

// Function → runtime messages (Direction FromFunction).

// FatalError reports that the function cannot go on; the runtime discards the
// instance and fails the request with Error.
type FatalError struct {
	Error string // error: what went wrong
}

// Kind returns KindFatalError.
func (*FatalError) Kind() Kind { return KindFatalError }

// Direction returns FromFunction.
func (*FatalError) Direction() Direction { return FromFunction }

func (m *FatalError) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("error", m.Error)
	return e.done()
}

func (m *FatalError) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Error = d.str("error")
	return d.done()
}

// FunctionResult ends one ExecuteFunction with the HTTP response.
type FunctionResult struct {
	Response Response // response: the HTTP response
}

// Kind returns KindFunctionResult.
func (*FunctionResult) Kind() Kind { return KindFunctionResult }

// Direction returns FromFunction.
func (*FunctionResult) Direction() Direction { return FromFunction }

func (m *FunctionResult) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.response("response", &m.Response)
	return e.done()
}

func (m *FunctionResult) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Response = d.response("response")
	return d.done()
}

// Log is one log line from the function. It needs no reply.
type Log struct {
	Body  string   // body: the log text
	Level LogLevel // level: severity
}

// Kind returns KindLog.
func (*Log) Kind() Kind { return KindLog }

// Direction returns FromFunction.
func (*Log) Direction() Direction { return FromFunction }

func (m *Log) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("body", m.Body)
	e.logLevel("level", m.Level)
	return e.done()
}

func (m *Log) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Body = d.str("body")
	m.Level = d.logLevel("level")
	return d.done()
}

// Put writes one key. Reply: EmptyResult or DbError.
type Put struct {
	Table    string // table: table name
	Key      []byte // key: key
	Value    []byte // value: value
	IsAtomic bool   // is_atomic: write atomically (billed as two writes)
}

// Kind returns KindPut.
func (*Put) Kind() Kind { return KindPut }

// Direction returns FromFunction.
func (*Put) Direction() Direction { return FromFunction }

func (m *Put) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key", m.Key)
	e.bytes("value", m.Value)
	e.boolean(m.IsAtomic)
	return e.done()
}

func (m *Put) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.Key = d.bytes("key")
	m.Value = d.bytes("value")
	m.IsAtomic = d.boolean("is_atomic")
	return d.done()
}

// Get reads one key. Reply: SingleResult or DbError.
type Get struct {
	Table string // table: table name
	Key   []byte // key: key
}

// Kind returns KindGet.
func (*Get) Kind() Kind { return KindGet }

// Direction returns FromFunction.
func (*Get) Direction() Direction { return FromFunction }

func (m *Get) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key", m.Key)
	return e.done()
}

func (m *Get) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.Key = d.bytes("key")
	return d.done()
}

// Delete deletes one key. Reply: EmptyResult or DbError.
type Delete struct {
	Table    string // table: table name
	Key      []byte // key: key
	IsAtomic bool   // is_atomic: delete atomically
}

// Kind returns KindDelete.
func (*Delete) Kind() Kind { return KindDelete }

// Direction returns FromFunction.
func (*Delete) Direction() Direction { return FromFunction }

func (m *Delete) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key", m.Key)
	e.boolean(m.IsAtomic)
	return e.done()
}

func (m *Delete) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.Key = d.bytes("key")
	m.IsAtomic = d.boolean("is_atomic")
	return d.done()
}

// DeleteByPrefix deletes every key with a prefix. Reply: EmptyResult or DbError.
type DeleteByPrefix struct {
	Table     string // table: table name
	KeyPrefix []byte // key_prefix: key prefix
}

// Kind returns KindDeleteByPrefix.
func (*DeleteByPrefix) Kind() Kind { return KindDeleteByPrefix }

// Direction returns FromFunction.
func (*DeleteByPrefix) Direction() Direction { return FromFunction }

func (m *DeleteByPrefix) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key_prefix", m.KeyPrefix)
	return e.done()
}

func (m *DeleteByPrefix) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.KeyPrefix = d.bytes("key_prefix")
	return d.done()
}

// Scan lists entries by key prefix. Reply: KeyValueListResult or DbError.
type Scan struct {
	Table     string // table: table name
	KeyPrefix []byte // key_prefix: key prefix
	Limit     uint32 // limit: maximum number of entries
}

// Kind returns KindScan.
func (*Scan) Kind() Kind { return KindScan }

// Direction returns FromFunction.
func (*Scan) Direction() Direction { return FromFunction }

func (m *Scan) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key_prefix", m.KeyPrefix)
	e.u32(m.Limit)
	return e.done()
}

func (m *Scan) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.KeyPrefix = d.bytes("key_prefix")
	m.Limit = d.u32("limit")
	return d.done()
}

// ScanKeys lists keys by prefix. Reply: a list result or DbError.
type ScanKeys struct {
	Table     string // table: table name
	KeyPrefix []byte // key_prefix: key prefix
	Limit     uint32 // limit: maximum number of keys
}

// Kind returns KindScanKeys.
func (*ScanKeys) Kind() Kind { return KindScanKeys }

// Direction returns FromFunction.
func (*ScanKeys) Direction() Direction { return FromFunction }

func (m *ScanKeys) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key_prefix", m.KeyPrefix)
	e.u32(m.Limit)
	return e.done()
}

func (m *ScanKeys) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.KeyPrefix = d.bytes("key_prefix")
	m.Limit = d.u32("limit")
	return d.done()
}

// TableList lists the stack's tables by name prefix. Reply: a list result or
// DbError.
type TableList struct {
	TablePrefix string // table_prefix: table name prefix
}

// Kind returns KindTableList.
func (*TableList) Kind() Kind { return KindTableList }

// Direction returns FromFunction.
func (*TableList) Direction() Direction { return FromFunction }

func (m *TableList) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table_prefix", m.TablePrefix)
	return e.done()
}

func (m *TableList) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.TablePrefix = d.str("table_prefix")
	return d.done()
}

// BatchPut writes several keys. Reply: EmptyResult or DbError.
type BatchPut struct {
	TableKeyValues []TableKeyValue // table_key_values: entries to write
	IsAtomic       bool            // is_atomic: write all atomically
}

// Kind returns KindBatchPut.
func (*BatchPut) Kind() Kind { return KindBatchPut }

// Direction returns FromFunction.
func (*BatchPut) Direction() Direction { return FromFunction }

func (m *BatchPut) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeyValues("table_key_values", m.TableKeyValues)
	e.boolean(m.IsAtomic)
	return e.done()
}

func (m *BatchPut) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.TableKeyValues = d.tableKeyValues("table_key_values")
	m.IsAtomic = d.boolean("is_atomic")
	return d.done()
}

// BatchGet reads several keys. Reply: a list result or DbError.
type BatchGet struct {
	TableKeys []TableKey // table_keys: keys to read
}

// Kind returns KindBatchGet.
func (*BatchGet) Kind() Kind { return KindBatchGet }

// Direction returns FromFunction.
func (*BatchGet) Direction() Direction { return FromFunction }

func (m *BatchGet) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeys("table_keys", m.TableKeys)
	return e.done()
}

func (m *BatchGet) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.TableKeys = d.tableKeys("table_keys")
	return d.done()
}

// BatchDelete deletes several keys. Reply: EmptyResult or DbError.
type BatchDelete struct {
	TableKeys []TableKey // table_keys: keys to delete
}

// Kind returns KindBatchDelete.
func (*BatchDelete) Kind() Kind { return KindBatchDelete }

// Direction returns FromFunction.
func (*BatchDelete) Direction() Direction { return FromFunction }

func (m *BatchDelete) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeys("table_keys", m.TableKeys)
	return e.done()
}

func (m *BatchDelete) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.TableKeys = d.tableKeys("table_keys")
	return d.done()
}

// BatchScan scans several prefixes. Reply: a list result or DbError.
type BatchScan struct {
	TableKeyPrefixes []TableKey // table_key_prefixes: table and key prefix pairs
	Limit            uint32     // limit: maximum number of entries
}

// Kind returns KindBatchScan.
func (*BatchScan) Kind() Kind { return KindBatchScan }

// Direction returns FromFunction.
func (*BatchScan) Direction() Direction { return FromFunction }

func (m *BatchScan) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeys("table_key_prefixes", m.TableKeyPrefixes)
	e.u32(m.Limit)
	return e.done()
}

func (m *BatchScan) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.TableKeyPrefixes = d.tableKeys("table_key_prefixes")
	m.Limit = d.u32("limit")
	return d.done()
}

// BatchScanKeys scans several prefixes for keys. Reply: a list result or DbError.
type BatchScanKeys struct {
	TableKeyPrefixes []TableKey // table_key_prefixes: table and key prefix pairs
	Limit            uint32     // limit: maximum number of keys
}

// Kind returns KindBatchScanKeys.
func (*BatchScanKeys) Kind() Kind { return KindBatchScanKeys }

// Direction returns FromFunction.
func (*BatchScanKeys) Direction() Direction { return FromFunction }

func (m *BatchScanKeys) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeys("table_key_prefixes", m.TableKeyPrefixes)
	e.u32(m.Limit)
	return e.done()
}

func (m *BatchScanKeys) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.TableKeyPrefixes = d.tableKeys("table_key_prefixes")
	m.Limit = d.u32("limit")
	return d.done()
}

// CompareAndSwap writes NewValue if the key currently holds PreviousValue (nil:
// if the key does not exist). Reply: CasResult or DbError.
type CompareAndSwap struct {
	Table         string  // table: table name
	Key           []byte  // key: key
	NewValue      []byte  // new_value: value to write
	PreviousValue *[]byte // previous_value: expected current value; nil = expect absent (Option)
}

// Kind returns KindCompareAndSwap.
func (*CompareAndSwap) Kind() Kind { return KindCompareAndSwap }

// Direction returns FromFunction.
func (*CompareAndSwap) Direction() Direction { return FromFunction }

func (m *CompareAndSwap) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key", m.Key)
	e.bytes("new_value", m.NewValue)
	e.optBytes("previous_value", m.PreviousValue)
	return e.done()
}

func (m *CompareAndSwap) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.Key = d.bytes("key")
	m.NewValue = d.bytes("new_value")
	m.PreviousValue = d.optBytes("previous_value")
	return d.done()
}

// StoragePut writes one object. Reply: StorageEmptyResult or StorageError.
type StoragePut struct {
	Storage string // storage: storage box name
	Key     string // key: object key
	Data    []byte // data: contents
}

// Kind returns KindStoragePut.
func (*StoragePut) Kind() Kind { return KindStoragePut }

// Direction returns FromFunction.
func (*StoragePut) Direction() Direction { return FromFunction }

func (m *StoragePut) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("key", m.Key)
	e.bytes("data", m.Data)
	return e.done()
}

func (m *StoragePut) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Key = d.str("key")
	m.Data = d.bytes("data")
	return d.done()
}

// StorageGet reads one object. Reply: StorageGetResult or StorageError.
type StorageGet struct {
	Storage string // storage: storage box name
	Key     string // key: object key
}

// Kind returns KindStorageGet.
func (*StorageGet) Kind() Kind { return KindStorageGet }

// Direction returns FromFunction.
func (*StorageGet) Direction() Direction { return FromFunction }

func (m *StorageGet) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("key", m.Key)
	return e.done()
}

func (m *StorageGet) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Key = d.str("key")
	return d.done()
}

// StorageDelete deletes one object. Reply: StorageEmptyResult or StorageError.
type StorageDelete struct {
	Storage string // storage: storage box name
	Key     string // key: object key
}

// Kind returns KindStorageDelete.
func (*StorageDelete) Kind() Kind { return KindStorageDelete }

// Direction returns FromFunction.
func (*StorageDelete) Direction() Direction { return FromFunction }

func (m *StorageDelete) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("key", m.Key)
	return e.done()
}

func (m *StorageDelete) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Key = d.str("key")
	return d.done()
}

// StorageList lists objects by key prefix. Reply: ObjectListResult or StorageError.
type StorageList struct {
	Storage string // storage: storage box name
	Prefix  string // prefix: key prefix
}

// Kind returns KindStorageList.
func (*StorageList) Kind() Kind { return KindStorageList }

// Direction returns FromFunction.
func (*StorageList) Direction() Direction { return FromFunction }

func (m *StorageList) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("prefix", m.Prefix)
	return e.done()
}

func (m *StorageList) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Prefix = d.str("prefix")
	return d.done()
}

// HTTPRequest makes an outgoing HTTP request (wire name HttpRequest).
// Reply: HTTPResponse.
type HTTPRequest struct {
	Method  string   // method: HTTP method
	URL     string   // url: absolute URL
	Headers []Header // headers: request headers
	Body    []byte   // body: request body
}

// Kind returns KindHTTPRequest.
func (*HTTPRequest) Kind() Kind { return KindHTTPRequest }

// Direction returns FromFunction.
func (*HTTPRequest) Direction() Direction { return FromFunction }

func (m *HTTPRequest) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("method", m.Method)
	e.str("url", m.URL)
	e.headers("headers", m.Headers)
	e.bytes("body", m.Body)
	return e.done()
}

func (m *HTTPRequest) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Method = d.str("method")
	m.URL = d.str("url")
	m.Headers = d.headers("headers")
	m.Body = d.bytes("body")
	return d.done()
}

// PutExpiring is Put with a time to live: the key disappears TTLSeconds
// after the write. Reply: EmptyResult or DbError (a TTLSeconds of 0 is
// refused with DbError).
type PutExpiring struct {
	Table      string // table: table name
	Key        []byte // key: key
	Value      []byte // value: value
	IsAtomic   bool   // is_atomic: write atomically (billed as two writes)
	TTLSeconds uint64 // ttl_seconds: time to live in seconds, at least 1
}

// Kind returns KindPutExpiring.
func (*PutExpiring) Kind() Kind { return KindPutExpiring }

// Direction returns FromFunction.
func (*PutExpiring) Direction() Direction { return FromFunction }

func (m *PutExpiring) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key", m.Key)
	e.bytes("value", m.Value)
	e.boolean(m.IsAtomic)
	e.u64(m.TTLSeconds)
	return e.done()
}

func (m *PutExpiring) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.Key = d.bytes("key")
	m.Value = d.bytes("value")
	m.IsAtomic = d.boolean("is_atomic")
	m.TTLSeconds = d.u64("ttl_seconds")
	return d.done()
}

// BatchPutExpiring is BatchPut with one time to live for every entry.
// Reply: EmptyResult or DbError (a TTLSeconds of 0 is refused with DbError).
type BatchPutExpiring struct {
	TableKeyValues []TableKeyValue // table_key_values: entries to write
	IsAtomic       bool            // is_atomic: write all atomically
	TTLSeconds     uint64          // ttl_seconds: time to live of every entry in seconds, at least 1
}

// Kind returns KindBatchPutExpiring.
func (*BatchPutExpiring) Kind() Kind { return KindBatchPutExpiring }

// Direction returns FromFunction.
func (*BatchPutExpiring) Direction() Direction { return FromFunction }

func (m *BatchPutExpiring) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.tableKeyValues("table_key_values", m.TableKeyValues)
	e.boolean(m.IsAtomic)
	e.u64(m.TTLSeconds)
	return e.done()
}

func (m *BatchPutExpiring) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.TableKeyValues = d.tableKeyValues("table_key_values")
	m.IsAtomic = d.boolean("is_atomic")
	m.TTLSeconds = d.u64("ttl_seconds")
	return d.done()
}

// ScanPage reads one page of the entries whose key starts with KeyPrefix.
// Reply: KeyValuePageResult or DbError.
type ScanPage struct {
	Table     string // table: table name
	KeyPrefix []byte // key_prefix: key prefix
	Limit     uint32 // limit: maximum entries in this page (the runtime caps it)
	Cursor    []byte // cursor: empty for the first page, else the previous page's next_cursor
}

// Kind returns KindScanPage.
func (*ScanPage) Kind() Kind { return KindScanPage }

// Direction returns FromFunction.
func (*ScanPage) Direction() Direction { return FromFunction }

func (m *ScanPage) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key_prefix", m.KeyPrefix)
	e.u32(m.Limit)
	e.bytes("cursor", m.Cursor)
	return e.done()
}

func (m *ScanPage) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.KeyPrefix = d.bytes("key_prefix")
	m.Limit = d.u32("limit")
	m.Cursor = d.bytes("cursor")
	return d.done()
}

// ScanKeysPage reads one page of the keys that start with KeyPrefix.
// Reply: KeyPageResult or DbError.
type ScanKeysPage struct {
	Table     string // table: table name
	KeyPrefix []byte // key_prefix: key prefix
	Limit     uint32 // limit: maximum keys in this page (the runtime caps it)
	Cursor    []byte // cursor: empty for the first page, else the previous page's next_cursor
}

// Kind returns KindScanKeysPage.
func (*ScanKeysPage) Kind() Kind { return KindScanKeysPage }

// Direction returns FromFunction.
func (*ScanKeysPage) Direction() Direction { return FromFunction }

func (m *ScanKeysPage) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("table", m.Table)
	e.bytes("key_prefix", m.KeyPrefix)
	e.u32(m.Limit)
	e.bytes("cursor", m.Cursor)
	return e.done()
}

func (m *ScanKeysPage) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Table = d.str("table")
	m.KeyPrefix = d.bytes("key_prefix")
	m.Limit = d.u32("limit")
	m.Cursor = d.bytes("cursor")
	return d.done()
}

// BatchScanPage reads one page of each of several scans, each with its own
// table, prefix, limit and cursor. Reply: BatchScanPageResult or DbError.
type BatchScanPage struct {
	Scans []ScanSpec // scans: the scans, answered in order
}

// Kind returns KindBatchScanPage.
func (*BatchScanPage) Kind() Kind { return KindBatchScanPage }

// Direction returns FromFunction.
func (*BatchScanPage) Direction() Direction { return FromFunction }

func (m *BatchScanPage) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.scanSpecs("scans", m.Scans)
	return e.done()
}

func (m *BatchScanPage) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Scans = d.scanSpecs("scans")
	return d.done()
}

// BatchScanKeysPage is BatchScanPage for keys only. Reply:
// BatchScanKeysPageResult or DbError.
type BatchScanKeysPage struct {
	Scans []ScanSpec // scans: the scans, answered in order
}

// Kind returns KindBatchScanKeysPage.
func (*BatchScanKeysPage) Kind() Kind { return KindBatchScanKeysPage }

// Direction returns FromFunction.
func (*BatchScanKeysPage) Direction() Direction { return FromFunction }

func (m *BatchScanKeysPage) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.scanSpecs("scans", m.Scans)
	return e.done()
}

func (m *BatchScanKeysPage) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Scans = d.scanSpecs("scans")
	return d.done()
}

// The storage kinds added after the first release (from-function
// 2005…2011): ranged reads, chunked uploads, paged listing with metadata,
// stat and signed URLs, so a function can move objects larger than one
// frame with bounded memory.

// StorageGetRange reads up to Length bytes of an object from Offset. The
// runtime may return fewer bytes than asked (it caps a read to fit one
// frame); a reader advances by len(data) and stops at total_size. When
// IfMatch is set and the object's etag differs, the reply carries no data
// and the current etag, so a reader going chunk by chunk sees that the
// object changed under it. Reply: StorageRangeResult or StorageError (an
// offset past the end is a StorageError).
type StorageGetRange struct {
	Storage string  // storage: storage box name
	Key     string  // key: object key
	Offset  uint64  // offset: first byte to read
	Length  uint32  // length: most bytes to read (the runtime caps it)
	IfMatch *string // if_match: expected etag; nil reads whatever is stored (Option)
}

// Kind returns KindStorageGetRange.
func (*StorageGetRange) Kind() Kind { return KindStorageGetRange }

// Direction returns FromFunction.
func (*StorageGetRange) Direction() Direction { return FromFunction }

func (m *StorageGetRange) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("key", m.Key)
	e.u64(m.Offset)
	e.u32(m.Length)
	e.optStr("if_match", m.IfMatch)
	return e.done()
}

func (m *StorageGetRange) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Key = d.str("key")
	m.Offset = d.u64("offset")
	m.Length = d.u32("length")
	m.IfMatch = d.optStr("if_match")
	return d.done()
}

// StoragePutBegin starts a chunked upload of one object. Reply:
// StorageUploadResult (the handle for StoragePutChunk and StoragePutEnd) or
// StorageError. Nothing is visible under the key until StoragePutEnd
// commits it; an upload not ended when the call ends is aborted and stores
// nothing. The runtime caps the uploads one call may have open.
type StoragePutBegin struct {
	Storage     string  // storage: storage box name
	Key         string  // key: object key
	ContentType string  // content_type: MIME type stored with the object; empty = application/octet-stream
	Size        *uint64 // size: the total size if known; a body of another size fails the upload (Option)
}

// Kind returns KindStoragePutBegin.
func (*StoragePutBegin) Kind() Kind { return KindStoragePutBegin }

// Direction returns FromFunction.
func (*StoragePutBegin) Direction() Direction { return FromFunction }

func (m *StoragePutBegin) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("key", m.Key)
	e.str("content_type", m.ContentType)
	e.optU64(m.Size)
	return e.done()
}

func (m *StoragePutBegin) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Key = d.str("key")
	m.ContentType = d.str("content_type")
	m.Size = d.optU64("size")
	return d.done()
}

// StoragePutChunk appends the next bytes to an open upload. Reply:
// StorageEmptyResult or StorageError; after a StorageError the upload is
// over (nothing is stored) and its handle unknown.
type StoragePutChunk struct {
	Upload uint32 // upload: handle from StorageUploadResult
	Data   []byte // data: next bytes of the object
}

// Kind returns KindStoragePutChunk.
func (*StoragePutChunk) Kind() Kind { return KindStoragePutChunk }

// Direction returns FromFunction.
func (*StoragePutChunk) Direction() Direction { return FromFunction }

func (m *StoragePutChunk) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.u32(m.Upload)
	e.bytes("data", m.Data)
	return e.done()
}

func (m *StoragePutChunk) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Upload = d.u32("upload")
	m.Data = d.bytes("data")
	return d.done()
}

// StoragePutEnd ends an upload: with Abort false it commits the object
// (replacing any previous one) and is answered by StorageObjectResult; with
// Abort true it discards what was sent and is answered by
// StorageEmptyResult. Either way the handle is released. A failed commit
// is a StorageError and stores nothing.
type StoragePutEnd struct {
	Upload uint32 // upload: handle from StorageUploadResult
	Abort  bool   // abort: discard the upload instead of committing it
}

// Kind returns KindStoragePutEnd.
func (*StoragePutEnd) Kind() Kind { return KindStoragePutEnd }

// Direction returns FromFunction.
func (*StoragePutEnd) Direction() Direction { return FromFunction }

func (m *StoragePutEnd) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.u32(m.Upload)
	e.boolean(m.Abort)
	return e.done()
}

func (m *StoragePutEnd) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Upload = d.u32("upload")
	m.Abort = d.boolean("abort")
	return d.done()
}

// StorageListPage lists one page of the objects whose key starts with
// Prefix, in key byte order, with their metadata. Reply: ObjectPageResult
// or StorageError.
type StorageListPage struct {
	Storage string // storage: storage box name
	Prefix  string // prefix: key prefix; empty lists the whole box
	Limit   uint32 // limit: most objects in this page; 0 = the runtime's default (the runtime caps it)
	Cursor  string // cursor: empty for the first page, else the previous page's next_cursor
}

// Kind returns KindStorageListPage.
func (*StorageListPage) Kind() Kind { return KindStorageListPage }

// Direction returns FromFunction.
func (*StorageListPage) Direction() Direction { return FromFunction }

func (m *StorageListPage) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("prefix", m.Prefix)
	e.u32(m.Limit)
	e.str("cursor", m.Cursor)
	return e.done()
}

func (m *StorageListPage) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Prefix = d.str("prefix")
	m.Limit = d.u32("limit")
	m.Cursor = d.str("cursor")
	return d.done()
}

// StorageStat reads an object's metadata without its content. Reply:
// StorageObjectInfoResult or StorageError.
type StorageStat struct {
	Storage string // storage: storage box name
	Key     string // key: object key
}

// Kind returns KindStorageStat.
func (*StorageStat) Kind() Kind { return KindStorageStat }

// Direction returns FromFunction.
func (*StorageStat) Direction() Direction { return FromFunction }

func (m *StorageStat) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("key", m.Key)
	return e.done()
}

func (m *StorageStat) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Key = d.str("key")
	return d.done()
}

// StorageSignURL asks for a URL of the storage service's HTTP API that lets
// its holder GET or PUT one object of the box without other credentials
// until it expires (direct browser downloads and uploads). The object need
// not exist yet. Reply: StorageSignedURLResult or StorageError.
type StorageSignURL struct {
	Storage          string        // storage: storage box name
	Key              string        // key: object key
	Method           SignURLMethod // method: u8 enum, GET (0) or PUT (1)
	ExpiresInSeconds uint32        // expires_in_seconds: lifetime; 0 = the storage service's default
	MaxBytes         uint64        // max_bytes: PUT only, the largest body accepted; 0 = the service's limit
	ContentType      string        // content_type: PUT only, stored with the object; empty = the upload's header
}

// Kind returns KindStorageSignURL.
func (*StorageSignURL) Kind() Kind { return KindStorageSignURL }

// Direction returns FromFunction.
func (*StorageSignURL) Direction() Direction { return FromFunction }

func (m *StorageSignURL) appendBody(b []byte) ([]byte, error) {
	if m == nil {
		return b, errNilMessage()
	}
	e := encoder{b: b}
	e.str("storage", m.Storage)
	e.str("key", m.Key)
	e.signURLMethod("method", m.Method)
	e.u32(m.ExpiresInSeconds)
	e.u64(m.MaxBytes)
	e.str("content_type", m.ContentType)
	return e.done()
}

func (m *StorageSignURL) decodeBody(b []byte) error {
	d := decoder{b: b}
	m.Storage = d.str("storage")
	m.Key = d.str("key")
	m.Method = d.signURLMethod("method")
	m.ExpiresInSeconds = d.u32("expires_in_seconds")
	m.MaxBytes = d.u64("max_bytes")
	m.ContentType = d.str("content_type")
	return d.done()
}
