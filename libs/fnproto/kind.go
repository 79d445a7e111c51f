package fnproto

import "strconv"

// Kind is the u16 message kind that follows a frame's length. Kind numbers
// are only unique within one Direction.
type Kind uint16

// Direction says which side wrote a frame. The zero value is not a valid
// direction.
type Direction uint8

const (
	// ToFunction is the runtime → function direction (the function's stdin).
	ToFunction Direction = iota + 1
	// FromFunction is the function → runtime direction (the function's stdout).
	FromFunction
)

// String returns "to-function", "from-function" or "Direction(n)".
func (d Direction) String() string {
	switch d {
	case ToFunction:
		return "to-function"
	case FromFunction:
		return "from-function"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// Runtime → function kinds (Direction ToFunction).
const (
	KindExecuteFunction         Kind = 1    // ExecuteFunction
	KindDbError                 Kind = 1001 // DbError
	KindSingleResult            Kind = 1002 // SingleResult
	KindListResult              Kind = 1003 // ListResult
	KindKeyValueListResult      Kind = 1004 // KeyValueListResult
	KindTableKeyListResult      Kind = 1005 // TableKeyListResult
	KindTableKeyValueListResult Kind = 1006 // TableKeyValueListResult
	KindEmptyResult             Kind = 1007 // EmptyResult
	KindCasResult               Kind = 1008 // CasResult
	KindKeyValuePageResult      Kind = 1009 // KeyValuePageResult
	KindKeyPageResult           Kind = 1010 // KeyPageResult
	KindBatchScanPageResult     Kind = 1011 // BatchScanPageResult
	KindBatchScanKeysPageResult Kind = 1012 // BatchScanKeysPageResult
	KindStorageError            Kind = 2001 // StorageError
	KindStorageGetResult        Kind = 2002 // StorageGetResult
	KindStorageEmptyResult      Kind = 2003 // StorageEmptyResult
	KindObjectListResult        Kind = 2004 // ObjectListResult
	KindStorageRangeResult      Kind = 2005 // StorageRangeResult
	KindStorageUploadResult     Kind = 2006 // StorageUploadResult
	KindStorageObjectResult     Kind = 2007 // StorageObjectResult
	KindObjectPageResult        Kind = 2008 // ObjectPageResult
	KindStorageObjectInfoResult Kind = 2009 // StorageObjectInfoResult
	KindStorageSignedURLResult  Kind = 2010 // StorageSignedURLResult
	KindHTTPResponse            Kind = 3001 // HTTPResponse
)

// Function → runtime kinds (Direction FromFunction).
const (
	KindFatalError        Kind = 1    // FatalError
	KindFunctionResult    Kind = 2    // FunctionResult
	KindLog               Kind = 3    // Log
	KindPut               Kind = 1001 // Put
	KindGet               Kind = 1002 // Get
	KindDelete            Kind = 1003 // Delete
	KindDeleteByPrefix    Kind = 1004 // DeleteByPrefix
	KindScan              Kind = 1005 // Scan
	KindScanKeys          Kind = 1006 // ScanKeys
	KindTableList         Kind = 1007 // TableList
	KindBatchPut          Kind = 1008 // BatchPut
	KindBatchGet          Kind = 1009 // BatchGet
	KindBatchDelete       Kind = 1010 // BatchDelete
	KindBatchScan         Kind = 1011 // BatchScan
	KindBatchScanKeys     Kind = 1012 // BatchScanKeys
	KindCompareAndSwap    Kind = 1013 // CompareAndSwap
	KindPutExpiring       Kind = 1014 // PutExpiring
	KindBatchPutExpiring  Kind = 1015 // BatchPutExpiring
	KindScanPage          Kind = 1016 // ScanPage
	KindScanKeysPage      Kind = 1017 // ScanKeysPage
	KindBatchScanPage     Kind = 1018 // BatchScanPage
	KindBatchScanKeysPage Kind = 1019 // BatchScanKeysPage
	KindStoragePut        Kind = 2001 // StoragePut
	KindStorageGet        Kind = 2002 // StorageGet
	KindStorageDelete     Kind = 2003 // StorageDelete
	KindStorageList       Kind = 2004 // StorageList
	KindStorageGetRange   Kind = 2005 // StorageGetRange
	KindStoragePutBegin   Kind = 2006 // StoragePutBegin
	KindStoragePutChunk   Kind = 2007 // StoragePutChunk
	KindStoragePutEnd     Kind = 2008 // StoragePutEnd
	KindStorageListPage   Kind = 2009 // StorageListPage
	KindStorageStat       Kind = 2010 // StorageStat
	KindStorageSignURL    Kind = 2011 // StorageSignURL
	KindHTTPRequest       Kind = 3001 // HTTPRequest
)

// Class says which part of the runtime a message belongs to. A request and
// its replies share a class: Put (FromFunction) and DbError (ToFunction) are
// both ClassDb. The zero Class is not valid; ClassOf returns it for an
// unknown (direction, kind) pair.
type Class uint8

const (
	// ClassControl is the call itself: ExecuteFunction, and FatalError,
	// FunctionResult and Log from the function.
	ClassControl Class = iota + 1
	// ClassDb is muDB: the operations Put … CompareAndSwap and PutExpiring …
	// BatchScanKeysPage, and their replies DbError … CasResult and
	// KeyValuePageResult … BatchScanKeysPageResult.
	ClassDb
	// ClassStorage is storage boxes: StoragePut … StorageSignURL and their
	// replies StorageError … StorageSignedURLResult.
	ClassStorage
	// ClassHTTP is outbound HTTP: HTTPRequest and HTTPResponse.
	ClassHTTP
)

// String returns "control", "db", "storage", "http" or "Class(n)".
func (c Class) String() string {
	switch c {
	case ClassControl:
		return "control"
	case ClassDb:
		return "db"
	case ClassStorage:
		return "storage"
	case ClassHTTP:
		return "http"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// kindInfo is one row of the kind table.
type kindInfo struct {
	dir   Direction
	kind  Kind
	name  string // the Go type name, used in errors and logs
	class Class
	new   func() Message // a zero message of this kind
}

// kinds is the protocol's one table of messages: every (direction, kind)
// pair with its name, class and constructor. KindName, ClassOf and the
// decoders all read it; adding a message is adding its type and a row here.
var kinds = [...]kindInfo{
	// Runtime → function.
	{ToFunction, KindExecuteFunction, "ExecuteFunction", ClassControl, newOf[ExecuteFunction]},
	{ToFunction, KindDbError, "DbError", ClassDb, newOf[DbError]},
	{ToFunction, KindSingleResult, "SingleResult", ClassDb, newOf[SingleResult]},
	{ToFunction, KindListResult, "ListResult", ClassDb, newOf[ListResult]},
	{ToFunction, KindKeyValueListResult, "KeyValueListResult", ClassDb, newOf[KeyValueListResult]},
	{ToFunction, KindTableKeyListResult, "TableKeyListResult", ClassDb, newOf[TableKeyListResult]},
	{ToFunction, KindTableKeyValueListResult, "TableKeyValueListResult", ClassDb, newOf[TableKeyValueListResult]},
	{ToFunction, KindEmptyResult, "EmptyResult", ClassDb, newOf[EmptyResult]},
	{ToFunction, KindCasResult, "CasResult", ClassDb, newOf[CasResult]},
	{ToFunction, KindKeyValuePageResult, "KeyValuePageResult", ClassDb, newOf[KeyValuePageResult]},
	{ToFunction, KindKeyPageResult, "KeyPageResult", ClassDb, newOf[KeyPageResult]},
	{ToFunction, KindBatchScanPageResult, "BatchScanPageResult", ClassDb, newOf[BatchScanPageResult]},
	{ToFunction, KindBatchScanKeysPageResult, "BatchScanKeysPageResult", ClassDb, newOf[BatchScanKeysPageResult]},
	{ToFunction, KindStorageError, "StorageError", ClassStorage, newOf[StorageError]},
	{ToFunction, KindStorageGetResult, "StorageGetResult", ClassStorage, newOf[StorageGetResult]},
	{ToFunction, KindStorageEmptyResult, "StorageEmptyResult", ClassStorage, newOf[StorageEmptyResult]},
	{ToFunction, KindObjectListResult, "ObjectListResult", ClassStorage, newOf[ObjectListResult]},
	{ToFunction, KindStorageRangeResult, "StorageRangeResult", ClassStorage, newOf[StorageRangeResult]},
	{ToFunction, KindStorageUploadResult, "StorageUploadResult", ClassStorage, newOf[StorageUploadResult]},
	{ToFunction, KindStorageObjectResult, "StorageObjectResult", ClassStorage, newOf[StorageObjectResult]},
	{ToFunction, KindObjectPageResult, "ObjectPageResult", ClassStorage, newOf[ObjectPageResult]},
	{ToFunction, KindStorageObjectInfoResult, "StorageObjectInfoResult", ClassStorage, newOf[StorageObjectInfoResult]},
	{ToFunction, KindStorageSignedURLResult, "StorageSignedURLResult", ClassStorage, newOf[StorageSignedURLResult]},
	{ToFunction, KindHTTPResponse, "HTTPResponse", ClassHTTP, newOf[HTTPResponse]},

	// Function → runtime.
	{FromFunction, KindFatalError, "FatalError", ClassControl, newOf[FatalError]},
	{FromFunction, KindFunctionResult, "FunctionResult", ClassControl, newOf[FunctionResult]},
	{FromFunction, KindLog, "Log", ClassControl, newOf[Log]},
	{FromFunction, KindPut, "Put", ClassDb, newOf[Put]},
	{FromFunction, KindGet, "Get", ClassDb, newOf[Get]},
	{FromFunction, KindDelete, "Delete", ClassDb, newOf[Delete]},
	{FromFunction, KindDeleteByPrefix, "DeleteByPrefix", ClassDb, newOf[DeleteByPrefix]},
	{FromFunction, KindScan, "Scan", ClassDb, newOf[Scan]},
	{FromFunction, KindScanKeys, "ScanKeys", ClassDb, newOf[ScanKeys]},
	{FromFunction, KindTableList, "TableList", ClassDb, newOf[TableList]},
	{FromFunction, KindBatchPut, "BatchPut", ClassDb, newOf[BatchPut]},
	{FromFunction, KindBatchGet, "BatchGet", ClassDb, newOf[BatchGet]},
	{FromFunction, KindBatchDelete, "BatchDelete", ClassDb, newOf[BatchDelete]},
	{FromFunction, KindBatchScan, "BatchScan", ClassDb, newOf[BatchScan]},
	{FromFunction, KindBatchScanKeys, "BatchScanKeys", ClassDb, newOf[BatchScanKeys]},
	{FromFunction, KindCompareAndSwap, "CompareAndSwap", ClassDb, newOf[CompareAndSwap]},
	{FromFunction, KindPutExpiring, "PutExpiring", ClassDb, newOf[PutExpiring]},
	{FromFunction, KindBatchPutExpiring, "BatchPutExpiring", ClassDb, newOf[BatchPutExpiring]},
	{FromFunction, KindScanPage, "ScanPage", ClassDb, newOf[ScanPage]},
	{FromFunction, KindScanKeysPage, "ScanKeysPage", ClassDb, newOf[ScanKeysPage]},
	{FromFunction, KindBatchScanPage, "BatchScanPage", ClassDb, newOf[BatchScanPage]},
	{FromFunction, KindBatchScanKeysPage, "BatchScanKeysPage", ClassDb, newOf[BatchScanKeysPage]},
	{FromFunction, KindStoragePut, "StoragePut", ClassStorage, newOf[StoragePut]},
	{FromFunction, KindStorageGet, "StorageGet", ClassStorage, newOf[StorageGet]},
	{FromFunction, KindStorageDelete, "StorageDelete", ClassStorage, newOf[StorageDelete]},
	{FromFunction, KindStorageList, "StorageList", ClassStorage, newOf[StorageList]},
	{FromFunction, KindStorageGetRange, "StorageGetRange", ClassStorage, newOf[StorageGetRange]},
	{FromFunction, KindStoragePutBegin, "StoragePutBegin", ClassStorage, newOf[StoragePutBegin]},
	{FromFunction, KindStoragePutChunk, "StoragePutChunk", ClassStorage, newOf[StoragePutChunk]},
	{FromFunction, KindStoragePutEnd, "StoragePutEnd", ClassStorage, newOf[StoragePutEnd]},
	{FromFunction, KindStorageListPage, "StorageListPage", ClassStorage, newOf[StorageListPage]},
	{FromFunction, KindStorageStat, "StorageStat", ClassStorage, newOf[StorageStat]},
	{FromFunction, KindStorageSignURL, "StorageSignURL", ClassStorage, newOf[StorageSignURL]},
	{FromFunction, KindHTTPRequest, "HTTPRequest", ClassHTTP, newOf[HTTPRequest]},
}

// newOf returns a new zero *T as a Message.
func newOf[T any, P interface {
	*T
	Message
}]() Message {
	return P(new(T))
}

// indexSize bounds kind numbers, so that finding a row is one array load.
const indexSize = 4096

// index maps (direction, kind) to 1 + the row's position in kinds, or 0.
var index = buildIndex()

func buildIndex() *[2][indexSize]uint8 {
	var ix [2][indexSize]uint8
	if len(kinds) > 255 {
		panic("fnproto: kind table too long for its index")
	}
	for i, e := range kinds {
		if e.dir != ToFunction && e.dir != FromFunction || e.kind >= indexSize || ix[e.dir-1][e.kind] != 0 {
			panic("fnproto: kind table: bad or duplicate row " + e.name)
		}
		ix[e.dir-1][e.kind] = uint8(i + 1)
	}
	return &ix
}

// lookup returns the table row of (dir, k), or nil when the pair is unknown.
func lookup(dir Direction, k Kind) *kindInfo {
	if dir != ToFunction && dir != FromFunction || k >= indexSize {
		return nil
	}
	if i := index[dir-1][k]; i != 0 {
		return &kinds[i-1]
	}
	return nil
}

// KindName returns the Go type name of the message with kind k in direction
// dir ("Put", "DbError", "HTTPResponse", …), or "Kind(n)" when the pair is
// unknown. It is meant for errors and logs and never allocates for known
// kinds.
func KindName(dir Direction, k Kind) string {
	if e := lookup(dir, k); e != nil {
		return e.name
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// ClassOf returns the class of the message with kind k in direction dir, or
// the zero Class when the pair is unknown. It never allocates, so a host can
// dispatch on it for every message.
func ClassOf(dir Direction, k Kind) Class {
	if e := lookup(dir, k); e != nil {
		return e.class
	}
	return 0
}

// newMessage returns a zero message of the given direction and kind, or nil
// when the pair is unknown.
func newMessage(dir Direction, k Kind) Message {
	if e := lookup(dir, k); e != nil {
		return e.new()
	}
	return nil
}
