package fnproto

import "strconv"

// Request is the HTTP request a function is asked to handle, carried by
// ExecuteFunction. Fields are encoded in declaration order.
type Request struct {
	Method      string            // HTTP method, e.g. "GET"
	PathParams  map[string]string // values of the endpoint's path template variables
	QueryParams map[string]string // query string parameters
	Headers     []Header          // request headers, in order; names may repeat
	Body        []byte            // request body
}

// Response is the HTTP response a function returns in FunctionResult.
type Response struct {
	Status  uint16   // HTTP status code
	Headers []Header // response headers, in order; names may repeat
	Body    []byte   // response body
}

// Header is one HTTP header line.
type Header struct {
	Name  string
	Value string
}

// KeyValue is one database entry returned by a scan.
type KeyValue struct {
	Key   []byte
	Value []byte
}

// TableKey addresses one key (or, in BatchScan, one key prefix) in a table.
type TableKey struct {
	Table string
	Key   []byte
}

// TableKeyValue is one database entry together with its table.
type TableKeyValue struct {
	Table string
	Key   []byte
	Value []byte
}

// StorageObject describes one object in a storage box.
type StorageObject struct {
	Key  string // object key inside the box
	Size uint64 // size in bytes
}

// LogLevel is the severity of a Log message, a u8 enum on the wire.
type LogLevel uint8

// Log levels, in wire order. Values above LogLevelError are rejected by both
// the encoder and the decoder.
const (
	LogLevelTrace LogLevel = 0
	LogLevelDebug LogLevel = 1
	LogLevelInfo  LogLevel = 2
	LogLevelWarn  LogLevel = 3
	LogLevelError LogLevel = 4
)

// String returns "trace", "debug", "info", "warn", "error" or "LogLevel(n)".
func (l LogLevel) String() string {
	switch l {
	case LogLevelTrace:
		return "trace"
	case LogLevelDebug:
		return "debug"
	case LogLevelInfo:
		return "info"
	case LogLevelWarn:
		return "warn"
	case LogLevelError:
		return "error"
	}
	return "LogLevel(" + strconv.Itoa(int(l)) + ")"
}

// Message is one protocol message. Every message type M implements it on
// *M, and values are always passed as *M. The unexported methods seal the
// interface: only this package's types are messages.
type Message interface {
	// Kind returns the message's kind within its direction.
	Kind() Kind
	// Direction returns the direction the message travels in.
	Direction() Direction

	// appendBody appends the Borsh body to b.
	appendBody(b []byte) ([]byte, error)
	// decodeBody fills the (zero) message from a complete body.
	decodeBody(b []byte) error
}

// ScanSpec is one scan of a BatchScanPage or BatchScanKeysPage: a table, a
// key prefix, a page size and where to continue.
type ScanSpec struct {
	Table     string // table: table name
	KeyPrefix []byte // key_prefix: only keys starting with these bytes
	Limit     uint32 // limit: maximum entries in this page
	Cursor    []byte // cursor: empty for the first page, else a NextCursor of the previous page
}

// TableKeyValuePage is one scan's page in a BatchScanPageResult.
type TableKeyValuePage struct {
	Table      string     // table: the scanned table
	List       []KeyValue // list: entries in key byte order
	NextCursor []byte     // next_cursor: empty when the scan is complete
}

// TableKeyPage is one key scan's page in a BatchScanKeysPageResult.
type TableKeyPage struct {
	Table      string   // table: the scanned table
	Keys       [][]byte // keys: keys in byte order
	NextCursor []byte   // next_cursor: empty when the scan is complete
}

// StorageObjectInfo describes one stored object with its metadata, as the
// storage kinds added after the first release report it (StorageObject,
// of the old StorageList, carries only key and size).
type StorageObjectInfo struct {
	Key              string // key: object key inside the box
	Size             uint64 // size: total size in bytes
	ETag             string // etag: changes whenever the content changes; opaque
	ContentType      string // content_type: MIME type given at upload; empty when none was
	LastModifiedUnix uint64 // last_modified_unix_ms: when it was last written, Unix milliseconds
}

// SignURLMethod is what a signed URL allows, a u8 enum on the wire.
type SignURLMethod uint8

// Signed URL methods, in wire order. Values above SignURLPut are rejected by
// both the encoder and the decoder.
const (
	SignURLGet SignURLMethod = 0 // download the object (HTTP GET)
	SignURLPut SignURLMethod = 1 // upload the object (HTTP PUT), up to max_bytes
)

// String returns "GET", "PUT" or "SignURLMethod(n)".
func (m SignURLMethod) String() string {
	switch m {
	case SignURLGet:
		return "GET"
	case SignURLPut:
		return "PUT"
	}
	return "SignURLMethod(" + strconv.Itoa(int(m)) + ")"
}
