package mu

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrProtocol reports that the runtime's messages did not follow the
// protocol (a reply of the wrong kind, an undecodable or oversized frame, a
// stream that ended inside a frame or while a reply was awaited). The stream
// is out of step from then on: every later host call fails with the same
// error, the request ends with a FatalError and Serve returns the error.
var ErrProtocol = errors.New("mu: protocol error")

// ErrCallEnded is returned by host calls (database, storage, HTTP) made on
// a Context whose handler has already returned.
var ErrCallEnded = errors.New("mu: host call on a Context whose handler has returned")

// DBError is a failure reported by the database service or by the runtime
// on its behalf (a DbError reply): a table the stack's manifest does not
// declare, a key or value over muDB's size limits, a bad cursor, muDB
// unreachable, or a reply too large for one protocol frame. A runtime with
// no muDB configured answers every database call with one.
type DBError struct {
	Op      string // protocol operation: "Put", "Get", "BatchScan", …
	Table   string // table name; empty for batch operations and TableList
	Message string // the service's description
}

func (e *DBError) Error() string {
	if e.Table != "" {
		return "mu: db " + e.Op + " " + strconv.Quote(e.Table) + ": " + e.Message
	}
	return "mu: db " + e.Op + ": " + e.Message
}

// StorageError is a failure reported by the storage service (a StorageError
// reply).
type StorageError struct {
	Op      string // protocol operation: "StoragePut", "StorageGet", …
	Box     string // storage box name
	Key     string // object key or prefix
	Message string // the service's description
}

func (e *StorageError) Error() string {
	return "mu: storage " + e.Op + " " + strconv.Quote(e.Box) + " " + strconv.Quote(e.Key) + ": " + e.Message
}

// FetchError reports an outgoing HTTP request that could not be made at all
// (an HTTPResponse carrying an error). A response with any status, 4xx and
// 5xx included, is not an error.
type FetchError struct {
	Method  string
	URL     string
	Message string
}

func (e *FetchError) Error() string {
	return "mu: fetch " + e.Method + " " + e.URL + ": " + e.Message
}

// StatusError makes a handler answer with an HTTP error status instead of
// failing the request: a handler error that wraps a *StatusError is sent as
// a text/plain response with Status and Message. Create one with Errorf.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return strconv.Itoa(e.Status) + " " + e.Message
}

// Errorf returns a *StatusError with the given status and formatted message,
// for handlers that answer "not found", "bad request" and the like:
//
//	return nil, mu.Errorf(404, "no todo %q", id)
func Errorf(status int, format string, args ...any) error {
	return &StatusError{Status: status, Message: fmt.Sprintf(format, args...)}
}
