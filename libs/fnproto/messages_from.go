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
