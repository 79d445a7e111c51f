package mu

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"time"

	"github.com/muprotocol/mu/libs/fnproto"
)

// Large objects, metadata, listing pages and signed URLs.
//
// Put and Get move a whole object in one protocol frame (8 MiB by default),
// so they suit small objects. Create, PutReader, Open and GetRange move an
// object in chunks of at most ChunkSize bytes, one host call per chunk: a
// function streams objects of any size the storage service accepts while
// holding about one chunk in memory.
//
// Consistency: a reader (Open, GetRange) pins the object's etag on its first
// chunk and sends it with every later one. If the object is replaced while
// it is being read, the next chunk fails with an error wrapping
// ErrObjectChanged instead of mixing the old and new contents. A writer
// (Create, PutReader) makes the object visible only when it is committed:
// readers see the previous object, or none, until then. An upload that is
// aborted, fails, or is still open when the handler returns stores nothing.

// ErrNotFound is wrapped by the error of Open and GetRange when no object
// exists under the key.
var ErrNotFound = errors.New("mu: storage object not found")

// ErrObjectChanged is wrapped by the error of a read that found the object
// replaced since its first chunk (its etag changed).
var ErrObjectChanged = errors.New("mu: storage object changed while being read")

// ErrClosed is returned by an ObjectReader or ObjectWriter used after Close
// (or, for a writer, after Abort or a failed write).
var ErrClosed = errors.New("mu: storage stream is closed")

// maxChunk is the largest chunk the SDK moves per host call: the storage
// service's own chunk size, well under the default frame limit.
const maxChunk = 1 << 20

// chunkOverhead bounds the frame bytes of a StoragePutChunk or
// StorageRangeResult beyond its data (kind, handle, lengths, etag and
// content type of ordinary size).
const chunkOverhead = 1024

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string    // object key inside the box
	Size         int64     // total size in bytes
	ETag         string    // changes whenever the content changes; opaque
	ContentType  string    // MIME type given at upload; empty when none was given
	LastModified time.Time // when it was last written; zero when unknown
}

func objectInfo(o *fnproto.StorageObjectInfo) ObjectInfo {
	info := ObjectInfo{Key: o.Key, Size: clampSize(o.Size), ETag: o.ETag, ContentType: o.ContentType}
	if o.LastModifiedUnix != 0 && o.LastModifiedUnix <= math.MaxInt64 {
		info.LastModified = time.UnixMilli(int64(o.LastModifiedUnix))
	}
	return info
}

func clampSize(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

// ObjectPage is one page of Box.ListPage.
type ObjectPage struct {
	Objects []ObjectInfo // objects in key byte order
	Next    string       // cursor of the next page; empty when the listing is complete
}

// ChunkSize is how many bytes the box's streams move per host call: 1 MiB,
// or less when the runtime's frame limit is smaller.
func (b *Box) ChunkSize() int {
	return max(min(maxChunk, b.ctx.c.max-chunkOverhead), 1)
}

func (b *Box) storageError(op fnproto.Kind, key, msg string) error {
	return &StorageError{Op: fnproto.KindName(fnproto.FromFunction, op), Box: b.name, Key: key, Message: msg}
}

// Stat returns the metadata of the object under key; found is false if
// there is none. It reads no content.
func (b *Box) Stat(key string) (info ObjectInfo, found bool, err error) {
	m, err := b.ctx.c.exchange(b.ctx, &fnproto.StorageStat{Storage: b.name, Key: key})
	if err != nil {
		return ObjectInfo{}, false, err
	}
	switch r := m.(type) {
	case *fnproto.StorageObjectInfoResult:
		if r.Info == nil {
			return ObjectInfo{}, false, nil
		}
		return objectInfo(r.Info), true, nil
	case *fnproto.StorageError:
		return ObjectInfo{}, false, b.storageError(fnproto.KindStorageStat, key, r.Error)
	}
	return ObjectInfo{}, false, b.ctx.c.unexpected(fnproto.KindStorageStat, m)
}

// readRange is one StorageGetRange: up to n bytes from off, pinned to etag
// when it is not empty.
func (b *Box) readRange(key string, off int64, n int, etag string) (*fnproto.StorageRangeResult, error) {
	req := &fnproto.StorageGetRange{Storage: b.name, Key: key, Offset: uint64(off), Length: uint32(min(n, math.MaxUint32))}
	if etag != "" {
		req.IfMatch = &etag
	}
	m, err := b.ctx.c.exchange(b.ctx, req)
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.StorageRangeResult:
		if !r.Found {
			if etag != "" {
				return nil, fmt.Errorf("mu: storage %q %q: %w (it was deleted)", b.name, key, ErrObjectChanged)
			}
			return nil, fmt.Errorf("mu: storage %q %q: %w", b.name, key, ErrNotFound)
		}
		if etag != "" && r.ETag != etag {
			return nil, fmt.Errorf("mu: storage %q %q: %w (etag %q, now %q)", b.name, key, ErrObjectChanged, etag, r.ETag)
		}
		if len(r.Data) > n {
			return nil, b.ctx.c.protocolError(fmt.Sprintf("StorageGetRange of %d bytes answered with %d", n, len(r.Data)))
		}
		return r, nil
	case *fnproto.StorageError:
		return nil, b.storageError(fnproto.KindStorageGetRange, key, r.Error)
	}
	return nil, b.ctx.c.unexpected(fnproto.KindStorageGetRange, m)
}

// GetRange returns up to length bytes of the object under key, starting at
// offset, and the object's metadata: fewer only when the object ends
// first, none when offset is its size. It reads in chunks of ChunkSize, all
// of the same content (a replacement midway fails with ErrObjectChanged).
// A missing object is an error wrapping ErrNotFound; an offset past the end
// is a *StorageError.
func (b *Box) GetRange(key string, offset int64, length int) ([]byte, ObjectInfo, error) {
	if offset < 0 || length < 0 {
		return nil, ObjectInfo{}, fmt.Errorf("mu: storage GetRange %q %q: negative offset %d or length %d", b.name, key, offset, length)
	}
	chunk := b.ChunkSize()
	var (
		out  []byte
		info ObjectInfo
		etag string
	)
	for first := true; first || len(out) < length; first = false {
		r, err := b.readRange(key, offset+int64(len(out)), min(length-len(out), chunk), etag)
		if err != nil {
			return nil, ObjectInfo{}, err
		}
		if first {
			info = ObjectInfo{Key: key, Size: clampSize(r.TotalSize), ETag: r.ETag, ContentType: r.ContentType}
			etag = r.ETag
			want := min(int64(length), max(info.Size-offset, 0))
			out = make([]byte, 0, want)
			length = int(want)
		}
		out = append(out, r.Data...)
		if len(r.Data) == 0 {
			break // the object ended (it cannot shrink: the etag is pinned)
		}
	}
	return out, info, nil
}

// ObjectReader reads one object in chunks: an io.Reader, io.Seeker,
// io.ReaderAt and io.Closer. It holds at most one chunk (Box.ChunkSize) and
// is pinned to the content it opened: once the object is replaced, reads
// fail with an error wrapping ErrObjectChanged. It is not safe for
// concurrent use, and only valid while its handler runs.
type ObjectReader struct {
	b    *Box
	key  string
	info ObjectInfo
	pos  int64  // offset of the next Read
	buf  []byte // bytes buffered, starting at offset bOff
	bOff int64
	err  error // sticky: closed or changed
}

// Open opens the object under key for reading. It reads the first chunk to
// learn the object's size and etag; a missing object is an error wrapping
// ErrNotFound.
func (b *Box) Open(key string) (*ObjectReader, error) {
	r, err := b.readRange(key, 0, b.ChunkSize(), "")
	if err != nil {
		return nil, err
	}
	return &ObjectReader{
		b: b, key: key, buf: r.Data,
		info: ObjectInfo{Key: key, Size: clampSize(r.TotalSize), ETag: r.ETag, ContentType: r.ContentType},
	}, nil
}

// Info returns the metadata of the object as opened (its LastModified is
// zero; use Box.Stat for it).
func (r *ObjectReader) Info() ObjectInfo { return r.info }

// Read reads the next bytes of the object; io.EOF at its end.
func (r *ObjectReader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes from off, as io.ReaderAt: fewer only at the end
// of the object, with io.EOF.
func (r *ObjectReader) ReadAt(p []byte, off int64) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if off < 0 {
		return 0, fmt.Errorf("mu: storage %q %q: negative offset %d", r.b.name, r.key, off)
	}
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= r.info.Size {
			return n, io.EOF
		}
		if at < r.bOff || at >= r.bOff+int64(len(r.buf)) {
			if err := r.fill(at); err != nil {
				return n, err
			}
		}
		n += copy(p[n:], r.buf[at-r.bOff:])
	}
	return n, nil
}

// fill reads the chunk starting at off into the buffer.
func (r *ObjectReader) fill(off int64) error {
	res, err := r.b.readRange(r.key, off, r.b.ChunkSize(), r.info.ETag)
	if err != nil {
		if errors.Is(err, ErrObjectChanged) {
			r.err = err
		}
		return err
	}
	if len(res.Data) == 0 {
		return io.ErrUnexpectedEOF // the size said more follows
	}
	r.buf, r.bOff = res.Data, off
	return nil
}

// Seek sets the offset of the next Read, as io.Seeker. Seeking reads
// nothing; the next Read fetches the chunk there.
func (r *ObjectReader) Seek(offset int64, whence int) (int64, error) {
	if r.err != nil {
		return 0, r.err
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.info.Size + offset
	default:
		return 0, fmt.Errorf("mu: storage Seek: invalid whence %d", whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("mu: storage Seek: negative position %d", abs)
	}
	r.pos = abs
	return abs, nil
}

// Close releases the buffer; later reads fail with ErrClosed. The runtime
// holds nothing for an open reader, so a reader left open costs nothing.
func (r *ObjectReader) Close() error {
	r.buf, r.err = nil, ErrClosed
	return nil
}

// PutOption adjusts Box.PutReader.
type PutOption func(*putOptions)

type putOptions struct {
	contentType string
	size        *uint64
}

// WithContentType stores contentType with the object (served on public
// reads and signed downloads); the default is application/octet-stream.
func WithContentType(contentType string) PutOption {
	return func(o *putOptions) { o.contentType = contentType }
}

// WithSize declares the object's size in advance: a body of another size
// fails the upload and stores nothing.
func WithSize(n int64) PutOption {
	return func(o *putOptions) {
		if n >= 0 {
			u := uint64(n)
			o.size = &u
		}
	}
}

// ObjectWriter uploads one object in chunks: an io.Writer and io.Closer.
// Nothing is visible under the key until Close (or Commit) succeeds; Abort,
// a failed write, or the handler returning first stores nothing. It
// buffers at most one chunk (Box.ChunkSize). It is not safe for concurrent
// use, and only valid while its handler runs.
type ObjectWriter struct {
	b      *Box
	key    string
	ctype  string // content type given at Create
	upload uint32
	buf    []byte
	n      int64 // bytes accepted by Write
	info   ObjectInfo
	err    error // sticky failure
	done   bool  // ended: committed, aborted or failed
}

// usable reports why w cannot take more bytes, or nil.
func (w *ObjectWriter) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return ErrClosed
	}
	return nil
}

// Create starts an upload of the object under key. The runtime limits how
// many uploads a call may have open at once; Create fails with a
// *StorageError past it (or for a box the manifest does not declare).
func (b *Box) Create(key, contentType string) (*ObjectWriter, error) {
	return b.create(key, putOptions{contentType: contentType})
}

func (b *Box) create(key string, o putOptions) (*ObjectWriter, error) {
	m, err := b.ctx.c.exchange(b.ctx, &fnproto.StoragePutBegin{Storage: b.name, Key: key, ContentType: o.contentType, Size: o.size})
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.StorageUploadResult:
		return &ObjectWriter{b: b, key: key, ctype: o.contentType, upload: r.Upload}, nil
	case *fnproto.StorageError:
		return nil, b.storageError(fnproto.KindStoragePutBegin, key, r.Error)
	}
	return nil, b.ctx.c.unexpected(fnproto.KindStoragePutBegin, m)
}

// Write buffers p and sends every full chunk; an error ends the upload
// (nothing is stored) and is returned by every later call.
func (w *ObjectWriter) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	chunk := w.b.ChunkSize()
	if w.buf == nil {
		w.buf = make([]byte, 0, min(chunk, max(len(p), 4096)))
	}
	written := 0
	for len(p) > 0 {
		if len(w.buf) == 0 && len(p) >= chunk {
			// A whole chunk of the caller's: send it without copying.
			if err := w.send(p[:chunk]); err != nil {
				return written, err
			}
			p, written = p[chunk:], written+chunk
			continue
		}
		k := min(chunk-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p, written = p[k:], written+k
		if len(w.buf) == chunk {
			if err := w.send(w.buf); err != nil {
				return written, err
			}
			w.buf = w.buf[:0]
		}
	}
	return written, nil
}

// ReadFrom copies r into the upload chunk by chunk, as io.ReaderFrom.
func (w *ObjectWriter) ReadFrom(r io.Reader) (int64, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	chunk := w.b.ChunkSize()
	if cap(w.buf) < chunk {
		w.buf = append(make([]byte, 0, chunk), w.buf...)
	}
	var total int64
	for {
		n, err := r.Read(w.buf[len(w.buf):chunk])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		if len(w.buf) == chunk {
			if serr := w.send(w.buf); serr != nil {
				return total, serr
			}
			w.buf = w.buf[:0]
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (w *ObjectWriter) send(data []byte) error {
	m, err := w.b.ctx.c.exchange(w.b.ctx, &fnproto.StoragePutChunk{Upload: w.upload, Data: data})
	if err != nil {
		w.err = err
		return err
	}
	switch r := m.(type) {
	case *fnproto.StorageEmptyResult:
		w.n += int64(len(data))
		return nil
	case *fnproto.StorageError:
		w.err = w.b.storageError(fnproto.KindStoragePutChunk, w.key, r.Error)
		w.done = true // the runtime has dropped the upload
		return w.err
	}
	w.err = w.b.ctx.c.unexpected(fnproto.KindStoragePutChunk, m)
	return w.err
}

// Commit sends what is buffered and stores the object, replacing any
// previous one; it returns the stored object's metadata. Calling it again
// returns the same result.
func (w *ObjectWriter) Commit() (ObjectInfo, error) {
	if w.done {
		if w.err != nil {
			return ObjectInfo{}, w.err
		}
		return w.info, nil
	}
	if w.err == nil && len(w.buf) > 0 {
		_ = w.send(w.buf)
		w.buf = w.buf[:0]
	}
	if w.err != nil {
		if !w.done {
			_ = w.abort()
		}
		return ObjectInfo{}, w.err
	}
	w.done = true
	m, err := w.b.ctx.c.exchange(w.b.ctx, &fnproto.StoragePutEnd{Upload: w.upload})
	w.buf = nil
	if err != nil {
		w.err = err
		return ObjectInfo{}, err
	}
	switch r := m.(type) {
	case *fnproto.StorageObjectResult:
		// The commit reply carries no modification time: LastModified
		// stays zero (Stat has it).
		w.info = ObjectInfo{Key: w.key, Size: clampSize(r.Size), ETag: r.ETag, ContentType: w.ctype}
		return w.info, nil
	case *fnproto.StorageError:
		w.err = w.b.storageError(fnproto.KindStoragePutEnd, w.key, r.Error)
		return ObjectInfo{}, w.err
	}
	w.err = w.b.ctx.c.unexpected(fnproto.KindStoragePutEnd, m)
	return ObjectInfo{}, w.err
}

// Close commits the upload, as Commit, and returns its error.
func (w *ObjectWriter) Close() error {
	_, err := w.Commit()
	return err
}

// Abort discards the upload: nothing is stored and the previous object, if
// any, stays. Aborting a committed or failed upload does nothing. Commit
// after Abort fails with ErrClosed.
func (w *ObjectWriter) Abort() error {
	if w.done {
		return nil
	}
	err := w.abort()
	if w.err == nil {
		w.err = ErrClosed
	}
	return err
}

func (w *ObjectWriter) abort() error {
	w.done, w.buf = true, nil
	m, err := w.b.ctx.c.exchange(w.b.ctx, &fnproto.StoragePutEnd{Upload: w.upload, Abort: true})
	if err != nil {
		return err
	}
	switch r := m.(type) {
	case *fnproto.StorageEmptyResult:
		return nil
	case *fnproto.StorageError:
		return w.b.storageError(fnproto.KindStoragePutEnd, w.key, r.Error)
	}
	return w.b.ctx.c.unexpected(fnproto.KindStoragePutEnd, m)
}

// PutReader stores everything r yields under key, replacing any object
// there, streaming it in chunks (see Create); it returns the stored
// object's metadata. If reading r fails, the upload is aborted and nothing
// is stored.
func (b *Box) PutReader(key string, r io.Reader, opts ...PutOption) (ObjectInfo, error) {
	var o putOptions
	for _, opt := range opts {
		opt(&o)
	}
	w, err := b.create(key, o)
	if err != nil {
		return ObjectInfo{}, err
	}
	if _, err := w.ReadFrom(r); err != nil {
		if !w.done {
			_ = w.Abort()
		}
		return ObjectInfo{}, err
	}
	return w.Commit()
}

// ListPage returns one page of up to limit objects whose key starts with
// prefix, in key byte order, with their metadata, starting after cursor
// (empty for the first page). limit <= 0 asks for the runtime's default
// page; the runtime caps it (1000). ObjectPage.Next is the cursor of the
// next page, empty when the listing is complete. A cursor is a position,
// not a snapshot, as for table scans.
func (b *Box) ListPage(prefix string, limit int, cursor string) (ObjectPage, error) {
	m, err := b.ctx.c.exchange(b.ctx, &fnproto.StorageListPage{Storage: b.name, Prefix: prefix, Limit: wireLimit(limit), Cursor: cursor})
	if err != nil {
		return ObjectPage{}, err
	}
	switch r := m.(type) {
	case *fnproto.ObjectPageResult:
		page := ObjectPage{Next: r.NextCursor}
		if len(r.Objects) > 0 {
			page.Objects = make([]ObjectInfo, len(r.Objects))
			for i := range r.Objects {
				page.Objects[i] = objectInfo(&r.Objects[i])
			}
		}
		return page, nil
	case *fnproto.StorageError:
		return ObjectPage{}, b.storageError(fnproto.KindStorageListPage, prefix, r.Error)
	}
	return ObjectPage{}, b.ctx.c.unexpected(fnproto.KindStorageListPage, m)
}

// Objects iterates over every object whose key starts with prefix, in key
// order, reading one page per host call as the loop advances (a loop that
// breaks early reads no further pages). A failure is yielded once, with a
// zero ObjectInfo, and ends the iteration.
//
//	for obj, err := range ctx.Storage("photos").Objects("2024/") {
//		if err != nil {
//			return nil, err
//		}
//		...
//	}
func (b *Box) Objects(prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		cursor := ""
		for {
			p, err := b.ListPage(prefix, 0, cursor)
			if err != nil {
				yield(ObjectInfo{}, err)
				return
			}
			for _, o := range p.Objects {
				if !yield(o, nil) {
					return
				}
			}
			if p.Next == "" {
				return
			}
			cursor = p.Next
		}
	}
}

// SignURLOptions are the PUT-only settings of Box.SignURL.
type SignURLOptions struct {
	// MaxBytes is the largest body the URL accepts; 0 means the storage
	// service's object limit.
	MaxBytes int64
	// ContentType is stored with the uploaded object, whatever the
	// uploader's Content-Type header says; empty keeps the header's.
	ContentType string
}

// SignURL returns a URL of the storage service's HTTP API that lets anyone
// holding it download (method "GET") or upload (method "PUT") the object
// under key, without other credentials, for expiresIn (rounded up to whole
// seconds; 0 means the service's default of one hour). The object need not
// exist yet. opts applies to PUT only and may be nil. Use it to let a
// browser move large files directly, without passing them through the
// function.
func (b *Box) SignURL(key, method string, expiresIn time.Duration, opts *SignURLOptions) (string, error) {
	req := &fnproto.StorageSignURL{Storage: b.name, Key: key}
	switch method {
	case "GET":
		req.Method = fnproto.SignURLGet
	case "PUT":
		req.Method = fnproto.SignURLPut
	default:
		return "", fmt.Errorf("mu: storage SignURL %q %q: method %q (want GET or PUT)", b.name, key, method)
	}
	if expiresIn < 0 {
		return "", fmt.Errorf("mu: storage SignURL %q %q: negative expiry %v", b.name, key, expiresIn)
	}
	secs := (expiresIn + time.Second - 1) / time.Second
	req.ExpiresInSeconds = uint32(min(int64(secs), math.MaxUint32))
	if opts != nil {
		if opts.MaxBytes < 0 {
			return "", fmt.Errorf("mu: storage SignURL %q %q: negative MaxBytes %d", b.name, key, opts.MaxBytes)
		}
		req.MaxBytes, req.ContentType = uint64(opts.MaxBytes), opts.ContentType
	}
	m, err := b.ctx.c.exchange(b.ctx, req)
	if err != nil {
		return "", err
	}
	switch r := m.(type) {
	case *fnproto.StorageSignedURLResult:
		return r.URL, nil
	case *fnproto.StorageError:
		return "", b.storageError(fnproto.KindStorageSignURL, key, r.Error)
	}
	return "", b.ctx.c.unexpected(fnproto.KindStorageSignURL, m)
}
