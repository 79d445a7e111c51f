// Package backend is where the storage service keeps its objects: an S3
// bucket (minio-go) in production, a local directory for `mu run`. Both
// implement Backend and pass the same contract tests (backendtest).
//
// Backends know nothing of stacks or boxes: they store flat object names
// that the layout package builds and validates.
package backend

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) for an object that does not exist.
var ErrNotFound = errors.New("object not found")

// ErrOutOfRange is returned (wrapped) by Get for an offset past the end.
var ErrOutOfRange = errors.New("offset past the end of the object")

// Info describes a stored object.
type Info struct {
	// Name is the object's full name.
	Name string
	// Size in bytes.
	Size int64
	// ETag is the hex MD5 of the content for objects stored in one piece,
	// S3's "<md5 of part md5s>-<parts>" for multipart ones; opaque to
	// callers, and different whenever the content differs.
	ETag string
	// ContentType as given to Put ("" when none was).
	ContentType string
	// LastModified is when the object was written.
	LastModified time.Time
	// Meta is the small user metadata given to Put, keys in lower case.
	// List leaves it nil.
	Meta map[string]string
}

// PutOptions are stored with an object.
type PutOptions struct {
	ContentType string
	// Meta is user metadata: a few short ASCII keys (lower case, letters,
	// digits and '-') and ASCII values.
	Meta map[string]string
}

// Backend stores objects by name. Implementations are safe for concurrent
// use; every method that does I/O honours ctx.
type Backend interface {
	// Put stores r's bytes under name, replacing any object there. The new
	// object becomes visible only once r returned io.EOF and every byte is
	// stored; if r returns another error or ctx ends, Put fails with it and
	// stores nothing (a previous object stays). Memory use is bounded by
	// the backend's part size, whatever the object's size.
	Put(ctx context.Context, name string, r io.Reader, opts PutOptions) (Info, error)
	// Get opens length bytes of name from offset (length < 0: to the end;
	// a range past the end is cut there) and returns the whole object's
	// Info. The reader streams; the caller must close it. An offset equal
	// to the size gives an empty reader; past it, ErrOutOfRange.
	Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, Info, error)
	// Stat returns the object's Info, or ErrNotFound.
	Stat(ctx context.Context, name string) (Info, error)
	// Delete removes name; a missing object is no error.
	Delete(ctx context.Context, name string) error
	// List returns up to max objects (max > 0) whose names start with
	// prefix and sort after startAfter ("" for the first page), in byte
	// order, and whether more may follow.
	List(ctx context.Context, prefix, startAfter string, max int) (objs []Info, more bool, err error)
	// DeletePrefix removes every object whose name starts with prefix and
	// returns how many objects and bytes it removed.
	DeletePrefix(ctx context.Context, prefix string) (objects int64, bytes int64, err error)
}
