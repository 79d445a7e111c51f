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
	KindStorageError            Kind = 2001 // StorageError
	KindStorageGetResult        Kind = 2002 // StorageGetResult
	KindStorageEmptyResult      Kind = 2003 // StorageEmptyResult
	KindObjectListResult        Kind = 2004 // ObjectListResult
	KindHTTPResponse            Kind = 3001 // HTTPResponse
)

// Function → runtime kinds (Direction FromFunction).
const (
	KindFatalError     Kind = 1    // FatalError
	KindFunctionResult Kind = 2    // FunctionResult
	KindLog            Kind = 3    // Log
	KindPut            Kind = 1001 // Put
	KindGet            Kind = 1002 // Get
	KindDelete         Kind = 1003 // Delete
	KindDeleteByPrefix Kind = 1004 // DeleteByPrefix
	KindScan           Kind = 1005 // Scan
	KindScanKeys       Kind = 1006 // ScanKeys
	KindTableList      Kind = 1007 // TableList
	KindBatchPut       Kind = 1008 // BatchPut
	KindBatchGet       Kind = 1009 // BatchGet
	KindBatchDelete    Kind = 1010 // BatchDelete
	KindBatchScan      Kind = 1011 // BatchScan
	KindBatchScanKeys  Kind = 1012 // BatchScanKeys
	KindCompareAndSwap Kind = 1013 // CompareAndSwap
	KindStoragePut     Kind = 2001 // StoragePut
	KindStorageGet     Kind = 2002 // StorageGet
	KindStorageDelete  Kind = 2003 // StorageDelete
	KindStorageList    Kind = 2004 // StorageList
	KindHTTPRequest    Kind = 3001 // HTTPRequest
)

// KindName returns the Go type name of the message with kind k in direction
// dir ("Put", "DbError", "HTTPResponse", …), or "Kind(n)" when the pair is
// unknown. It is meant for errors and logs and never allocates for known
// kinds.
func KindName(dir Direction, k Kind) string {
	if n := kindName(dir, k); n != "" {
		return n
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

func kindName(dir Direction, k Kind) string {
	switch dir {
	case ToFunction:
		switch k {
		case KindExecuteFunction:
			return "ExecuteFunction"
		case KindDbError:
			return "DbError"
		case KindSingleResult:
			return "SingleResult"
		case KindListResult:
			return "ListResult"
		case KindKeyValueListResult:
			return "KeyValueListResult"
		case KindTableKeyListResult:
			return "TableKeyListResult"
		case KindTableKeyValueListResult:
			return "TableKeyValueListResult"
		case KindEmptyResult:
			return "EmptyResult"
		case KindCasResult:
			return "CasResult"
		case KindStorageError:
			return "StorageError"
		case KindStorageGetResult:
			return "StorageGetResult"
		case KindStorageEmptyResult:
			return "StorageEmptyResult"
		case KindObjectListResult:
			return "ObjectListResult"
		case KindHTTPResponse:
			return "HTTPResponse"
		}
	case FromFunction:
		switch k {
		case KindFatalError:
			return "FatalError"
		case KindFunctionResult:
			return "FunctionResult"
		case KindLog:
			return "Log"
		case KindPut:
			return "Put"
		case KindGet:
			return "Get"
		case KindDelete:
			return "Delete"
		case KindDeleteByPrefix:
			return "DeleteByPrefix"
		case KindScan:
			return "Scan"
		case KindScanKeys:
			return "ScanKeys"
		case KindTableList:
			return "TableList"
		case KindBatchPut:
			return "BatchPut"
		case KindBatchGet:
			return "BatchGet"
		case KindBatchDelete:
			return "BatchDelete"
		case KindBatchScan:
			return "BatchScan"
		case KindBatchScanKeys:
			return "BatchScanKeys"
		case KindCompareAndSwap:
			return "CompareAndSwap"
		case KindStoragePut:
			return "StoragePut"
		case KindStorageGet:
			return "StorageGet"
		case KindStorageDelete:
			return "StorageDelete"
		case KindStorageList:
			return "StorageList"
		case KindHTTPRequest:
			return "HTTPRequest"
		}
	}
	return ""
}

// newMessage returns a zero message of the given direction and kind, or nil
// when the pair is unknown.
func newMessage(dir Direction, k Kind) Message {
	switch dir {
	case ToFunction:
		switch k {
		case KindExecuteFunction:
			return new(ExecuteFunction)
		case KindDbError:
			return new(DbError)
		case KindSingleResult:
			return new(SingleResult)
		case KindListResult:
			return new(ListResult)
		case KindKeyValueListResult:
			return new(KeyValueListResult)
		case KindTableKeyListResult:
			return new(TableKeyListResult)
		case KindTableKeyValueListResult:
			return new(TableKeyValueListResult)
		case KindEmptyResult:
			return new(EmptyResult)
		case KindCasResult:
			return new(CasResult)
		case KindStorageError:
			return new(StorageError)
		case KindStorageGetResult:
			return new(StorageGetResult)
		case KindStorageEmptyResult:
			return new(StorageEmptyResult)
		case KindObjectListResult:
			return new(ObjectListResult)
		case KindHTTPResponse:
			return new(HTTPResponse)
		}
	case FromFunction:
		switch k {
		case KindFatalError:
			return new(FatalError)
		case KindFunctionResult:
			return new(FunctionResult)
		case KindLog:
			return new(Log)
		case KindPut:
			return new(Put)
		case KindGet:
			return new(Get)
		case KindDelete:
			return new(Delete)
		case KindDeleteByPrefix:
			return new(DeleteByPrefix)
		case KindScan:
			return new(Scan)
		case KindScanKeys:
			return new(ScanKeys)
		case KindTableList:
			return new(TableList)
		case KindBatchPut:
			return new(BatchPut)
		case KindBatchGet:
			return new(BatchGet)
		case KindBatchDelete:
			return new(BatchDelete)
		case KindBatchScan:
			return new(BatchScan)
		case KindBatchScanKeys:
			return new(BatchScanKeys)
		case KindCompareAndSwap:
			return new(CompareAndSwap)
		case KindStoragePut:
			return new(StoragePut)
		case KindStorageGet:
			return new(StorageGet)
		case KindStorageDelete:
			return new(StorageDelete)
		case KindStorageList:
			return new(StorageList)
		case KindHTTPRequest:
			return new(HTTPRequest)
		}
	}
	return nil
}
