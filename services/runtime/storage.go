package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
)

// The storage bridge: a function's storage messages (fnproto class
// storage) answered by the storage service's gRPC API, scoped to the stack
// of the deployment the calling instance belongs to and to the boxes its
// manifest declares. Nothing the function sends chooses the stack.
//
// Metering is the storage service's: it reports the bytes it receives and
// sends per stack itself, so the bridge records no usage (it counts
// requests in metrics).
//
// Uploads (StoragePutBegin … StoragePutEnd) keep one Put stream open per
// upload across the messages of a call. They belong to the call: the
// per-call storageCall aborts every upload still open when the call ends,
// by cancelling its stream, which the storage service answers by storing
// nothing.

// Outcomes of a storage request, the "outcome" label of
// mu_runtime_storage_requests_total.
const (
	stOK           = "ok"           // storage answered and the reply was sent
	stFailed       = "error"        // storage answered with an error status, sent as StorageError
	stUndeclared   = "undeclared"   // a box the manifest does not declare; storage not called
	stUnconfigured = "unconfigured" // no storage service on this node
	stInvalid      = "invalid"      // refused by the runtime (bad handle, too many uploads, too large); storage not called or the stream dropped
	stTooLarge     = "too_large"    // the reply would not fit one protocol frame
	stDeadline     = "deadline"     // the call's context ended during the request
)

// storageChunk is the largest chunk the bridge sends on a Put stream: the
// storage service refuses bigger ones.
const storageChunk = 1 << 20

// rangeResultFixed is the frame size of a StorageRangeResult without its
// data, etag and content type: kind, found, three lengths and total_size.
const rangeResultFixed = 2 + 1 + 4 + 8 + 4 + 4

// storageBridge is the node's connection to the storage service, shared by
// every deployment.
type storageBridge struct {
	client     storagev1.StorageServiceClient // nil: no storage configured
	maxFrame   int                            // Config.MaxFrameSize
	maxUploads int                            // Config.MaxUploadsPerCall
	maxListed  uint32                         // Config.MaxListPage
	requests   *prometheus.CounterVec         // by kind, outcome
	abandoned  prometheus.Counter             // uploads aborted at the end of their call
}

// stackStorage is one deployment's access to storage: its stack id and the
// boxes its manifest declares. It is immutable and safe for concurrent use.
type stackStorage struct {
	b     *storageBridge
	stack []byte
	boxes map[string]bool
}

func (b *storageBridge) forStack(id ids.StackID, m *manifest.Manifest) *stackStorage {
	boxes := make(map[string]bool, len(m.Storages))
	for _, s := range m.Storages {
		boxes[s.Name] = true
	}
	return &stackStorage{b: b, stack: id.Bytes(), boxes: boxes}
}

// storageCall is the storage state of one call: its open uploads. Its
// requests come from the goroutine inside the guest; end may run on
// another (Invoke's) once the call is over, so the upload table is locked.
type storageCall struct {
	s       *stackStorage
	mu      sync.Mutex
	uploads map[uint32]*upload
	next    uint32
	ended   bool
}

// upload is one open Put stream.
type upload struct {
	stream grpc.ClientStreamingClient[storagev1.PutRequest, storagev1.PutResponse]
	cancel context.CancelFunc
	key    string
}

func (s *stackStorage) newCall() *storageCall { return &storageCall{s: s} }

// end aborts every upload the call left open: nothing of them is stored.
// Uploads begun after end (a host call racing the end of its call) are
// aborted at once.
func (c *storageCall) end() {
	c.mu.Lock()
	open := c.uploads
	c.uploads, c.ended = nil, true
	c.mu.Unlock()
	for _, u := range open {
		u.cancel()
		if c.s.b.abandoned != nil {
			c.s.b.abandoned.Inc()
		}
	}
}

// get returns the open upload h, or nil.
func (c *storageCall) get(h uint32) *upload {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uploads[h]
}

// drop ends upload h, cancelling its stream (a no-op after a close).
func (c *storageCall) drop(h uint32) {
	c.mu.Lock()
	u := c.uploads[h]
	delete(c.uploads, h)
	c.mu.Unlock()
	if u != nil {
		u.cancel()
	}
}

// serve answers one storage message. Failures the function should see come
// back as a StorageError reply; the error result is only ever ctx's error,
// when the call's deadline or cancellation ended the request.
func (c *storageCall) serve(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
	b := c.s.b
	kind := fnproto.KindName(fnproto.FromFunction, m.Kind())
	reply, err := c.call(ctx, m)
	if err != nil {
		if ctx.Err() != nil {
			b.count(kind, stDeadline)
			return nil, ctx.Err()
		}
		if r, ok := err.(*refusal); ok {
			b.count(kind, r.outcome)
			return b.storageError(r.msg), nil
		}
		b.count(kind, stFailed)
		return b.storageError(serviceErrorText("storage", err)), nil
	}
	if n := storageReplySize(reply) + 2; n > b.maxFrame {
		b.count(kind, stTooLarge)
		return b.storageError(fmt.Sprintf("the %s reply of %d bytes exceeds the function protocol's frame limit of %d bytes; %s",
			kind, n, b.maxFrame, tooLargeAdvice(m))), nil
	}
	b.count(kind, stOK)
	return reply, nil
}

func tooLargeAdvice(m fnproto.Message) string {
	switch m.(type) {
	case *fnproto.StorageList:
		return "list with StorageListPage (the SDK's Box.ListPage or Box.Objects)"
	case *fnproto.StorageGet:
		return "read it in ranges with StorageGetRange (the SDK's Box.Open or Box.GetRange)"
	}
	return "ask for less per request"
}

func (b *storageBridge) count(kind, outcome string) { countRequest(b.requests, kind, outcome) }

// storageError makes a StorageError whose text is valid UTF-8 and leaves
// room in the frame.
func (b *storageBridge) storageError(msg string) *fnproto.StorageError {
	return &fnproto.StorageError{Error: hostErrorText(msg, b.maxFrame)}
}

// boxOf is the box a message names, or "" for the messages that name none
// (chunks and ends of uploads, which are checked at their begin).
func boxOf(m fnproto.Message) string {
	switch m := m.(type) {
	case *fnproto.StoragePut:
		return m.Storage
	case *fnproto.StorageGet:
		return m.Storage
	case *fnproto.StorageDelete:
		return m.Storage
	case *fnproto.StorageList:
		return m.Storage
	case *fnproto.StorageGetRange:
		return m.Storage
	case *fnproto.StoragePutBegin:
		return m.Storage
	case *fnproto.StorageListPage:
		return m.Storage
	case *fnproto.StorageStat:
		return m.Storage
	case *fnproto.StorageSignURL:
		return m.Storage
	}
	return ""
}

// call checks m against the deployment and runs it on the storage service.
func (c *storageCall) call(ctx context.Context, m fnproto.Message) (fnproto.Message, error) {
	s := c.s
	if s.b.client == nil {
		return nil, &refusal{stUnconfigured, "storage is not configured on this runtime node (" + fnproto.KindName(fnproto.FromFunction, m.Kind()) + ")"}
	}
	switch m.(type) {
	case *fnproto.StoragePutChunk, *fnproto.StoragePutEnd:
	default:
		if box := boxOf(m); !s.boxes[box] {
			return nil, &refusal{stUndeclared, fmt.Sprintf("box %q is not declared in the stack's manifest (add a Storage service named %q)", box, box)}
		}
	}
	cl, id := s.b.client, s.stack
	switch m := m.(type) {
	case *fnproto.StoragePut:
		if err := c.putWhole(ctx, m.Storage, m.Key, m.Data); err != nil {
			return nil, err
		}
		return &fnproto.StorageEmptyResult{}, nil
	case *fnproto.StorageGet:
		return c.getWhole(ctx, m)
	case *fnproto.StorageDelete:
		if _, err := cl.Delete(ctx, &storagev1.DeleteRequest{StackId: id, Box: m.Storage, Key: m.Key}); err != nil {
			return nil, err
		}
		return &fnproto.StorageEmptyResult{}, nil
	case *fnproto.StorageList:
		return c.listAll(ctx, m)
	case *fnproto.StorageGetRange:
		return c.getRange(ctx, m)
	case *fnproto.StorageStat:
		info, err := c.stat(ctx, m.Storage, m.Key)
		if err != nil {
			return nil, err
		}
		return &fnproto.StorageObjectInfoResult{Info: info}, nil
	case *fnproto.StorageListPage:
		r, err := cl.List(ctx, &storagev1.ListRequest{StackId: id, Box: m.Storage, Prefix: m.Prefix, MaxKeys: min(m.Limit, s.b.maxListed), PageToken: m.Cursor})
		if err != nil {
			return nil, err
		}
		out := &fnproto.ObjectPageResult{NextCursor: r.GetNextPageToken()}
		if len(r.GetObjects()) > 0 {
			out.Objects = make([]fnproto.StorageObjectInfo, len(r.GetObjects()))
			for i, o := range r.GetObjects() {
				out.Objects[i] = objectInfoOf(o)
			}
		}
		return out, nil
	case *fnproto.StorageSignURL:
		method := storagev1.SignURLMethod_SIGN_URL_METHOD_GET
		if m.Method == fnproto.SignURLPut {
			method = storagev1.SignURLMethod_SIGN_URL_METHOD_PUT
		}
		r, err := cl.SignURL(ctx, &storagev1.SignURLRequest{StackId: id, Box: m.Storage, Key: m.Key, Method: method,
			ExpiresInSeconds: m.ExpiresInSeconds, MaxBytes: m.MaxBytes, ContentType: m.ContentType})
		if err != nil {
			return nil, err
		}
		out := &fnproto.StorageSignedURLResult{URL: r.GetUrl()}
		if t := r.GetExpiresAt(); t != nil && t.GetSeconds() > 0 {
			out.ExpiresAtUnix = uint64(t.GetSeconds())
		}
		return out, nil
	case *fnproto.StoragePutBegin:
		return c.begin(ctx, m)
	case *fnproto.StoragePutChunk:
		u := c.get(m.Upload)
		if u == nil {
			return nil, &refusal{stInvalid, fmt.Sprintf("upload %d is not open in this call (never begun, already ended, or failed)", m.Upload)}
		}
		if err := sendChunks(u.stream, m.Data); err != nil {
			c.drop(m.Upload)
			return nil, err
		}
		return &fnproto.StorageEmptyResult{}, nil
	case *fnproto.StoragePutEnd:
		u := c.get(m.Upload)
		if u == nil {
			return nil, &refusal{stInvalid, fmt.Sprintf("upload %d is not open in this call (never begun, already ended, or failed)", m.Upload)}
		}
		if m.Abort {
			c.drop(m.Upload)
			return &fnproto.StorageEmptyResult{}, nil
		}
		r, err := u.stream.CloseAndRecv()
		c.drop(m.Upload)
		if err != nil {
			return nil, err
		}
		return &fnproto.StorageObjectResult{Size: r.GetObject().GetSize(), ETag: r.GetObject().GetEtag()}, nil
	}
	return nil, &refusal{stInvalid, "the runtime does not serve " + fnproto.KindName(fnproto.FromFunction, m.Kind())}
}

func objectInfoOf(o *storagev1.ObjectInfo) fnproto.StorageObjectInfo {
	info := fnproto.StorageObjectInfo{Key: o.GetKey(), Size: o.GetSize(), ETag: o.GetEtag(), ContentType: o.GetContentType()}
	if t := o.GetLastModified(); t != nil {
		if ms := t.AsTime().UnixMilli(); ms > 0 {
			info.LastModifiedUnix = uint64(ms)
		}
	}
	return info
}

// openPut opens a Put stream and sends its header. The stream's context is
// a child of ctx (the call's), cancelled by the returned function.
func (c *storageCall) openPut(ctx context.Context, box, key, contentType string, size *uint64) (*upload, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := c.s.b.client.Put(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	hdr := &storagev1.PutHeader{StackId: c.s.stack, Box: box, Key: key, ContentType: contentType, Size: size}
	if err := stream.Send(&storagev1.PutRequest{Payload: &storagev1.PutRequest_Header{Header: hdr}}); err != nil {
		err = streamError(stream, err)
		cancel()
		return nil, err
	}
	return &upload{stream: stream, cancel: cancel, key: key}, nil
}

// sendChunks sends data in chunks of at most storageChunk bytes.
func sendChunks(stream grpc.ClientStreamingClient[storagev1.PutRequest, storagev1.PutResponse], data []byte) error {
	for len(data) > 0 {
		n := min(len(data), storageChunk)
		if err := stream.Send(&storagev1.PutRequest{Payload: &storagev1.PutRequest_Chunk{Chunk: data[:n]}}); err != nil {
			return streamError(stream, err)
		}
		data = data[n:]
	}
	return nil
}

// streamError turns a Send failure into the service's own error: Send
// reports io.EOF when the server ended the stream, and the status comes
// from CloseAndRecv.
func streamError(stream grpc.ClientStreamingClient[storagev1.PutRequest, storagev1.PutResponse], err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.CloseAndRecv(); rerr != nil {
			return rerr
		}
		return status.Error(codes.Internal, "the storage service ended the upload early")
	}
	return err
}

// putWhole answers the old StoragePut: one Put stream for the whole object.
func (c *storageCall) putWhole(ctx context.Context, box, key string, data []byte) error {
	size := uint64(len(data))
	u, err := c.openPut(ctx, box, key, "", &size)
	if err != nil {
		return err
	}
	defer u.cancel()
	if err := sendChunks(u.stream, data); err != nil {
		return err
	}
	_, err = u.stream.CloseAndRecv()
	return err
}

func (c *storageCall) begin(ctx context.Context, m *fnproto.StoragePutBegin) (fnproto.Message, error) {
	c.mu.Lock()
	n := len(c.uploads)
	c.mu.Unlock()
	if n >= c.s.b.maxUploads {
		return nil, &refusal{stInvalid, fmt.Sprintf("%d uploads are open in this call, the most the runtime allows (max_uploads_per_call); end one first", n)}
	}
	u, err := c.openPut(ctx, m.Storage, m.Key, m.ContentType, m.Size)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		u.cancel()
		return nil, context.Canceled
	}
	if c.uploads == nil {
		c.uploads = make(map[uint32]*upload, c.s.b.maxUploads)
	}
	c.next++
	c.uploads[c.next] = u
	return &fnproto.StorageUploadResult{Upload: c.next}, nil
}

// openGet starts a Get stream and reads its info message. The caller must
// call the returned cancel function.
func (c *storageCall) openGet(ctx context.Context, req *storagev1.GetRequest) (grpc.ServerStreamingClient[storagev1.GetResponse], *storagev1.GetInfo, context.CancelFunc, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := c.s.b.client.Get(sctx, req)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.Internal, "the storage service ended a Get without the object's info")
		}
		return nil, nil, nil, err
	}
	info := first.GetInfo()
	if info == nil {
		cancel()
		return nil, nil, nil, status.Error(codes.Internal, "the storage service's Get began with a chunk, not the object's info")
	}
	return stream, info, cancel, nil
}

// readChunks reads the stream's chunks into a buffer of up to want bytes;
// it stops early at the end of the stream.
func readChunks(stream grpc.ServerStreamingClient[storagev1.GetResponse], want uint64) ([]byte, error) {
	buf := make([]byte, 0, want)
	for uint64(len(buf)) < want {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		chunk := msg.GetChunk()
		if room := want - uint64(len(buf)); uint64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		buf = append(buf, chunk...)
	}
	return buf, nil
}

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// stat reads an object's metadata with a Get of no bytes.
func (c *storageCall) stat(ctx context.Context, box, key string) (*fnproto.StorageObjectInfo, error) {
	zero := uint64(0)
	_, info, cancel, err := c.openGet(ctx, &storagev1.GetRequest{StackId: c.s.stack, Box: box, Key: key, Length: &zero})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	cancel()
	o := objectInfoOf(info.GetObject())
	if o.Key == "" {
		o.Key = key
	}
	return &o, nil
}

// getWhole answers the old StorageGet: the whole object, if it fits a frame.
func (c *storageCall) getWhole(ctx context.Context, m *fnproto.StorageGet) (fnproto.Message, error) {
	stream, info, cancel, err := c.openGet(ctx, &storagev1.GetRequest{StackId: c.s.stack, Box: m.Storage, Key: m.Key})
	if err != nil {
		if isNotFound(err) {
			return &fnproto.StorageGetResult{}, nil
		}
		return nil, err
	}
	defer cancel()
	size := info.GetLength()
	if limit := uint64(c.s.b.maxFrame - (2 + 1 + 4)); size > limit {
		return nil, &refusal{stTooLarge, fmt.Sprintf("object %q of %d bytes does not fit one function protocol frame (%d bytes); read it in ranges with StorageGetRange (the SDK's Box.Open or Box.GetRange)",
			m.Key, size, c.s.b.maxFrame)}
	}
	data, err := readChunks(stream, size)
	if err != nil {
		return nil, err
	}
	return &fnproto.StorageGetResult{Data: &data}, nil
}

// getRange answers StorageGetRange, capping the read so the reply fits a
// frame, and returning no data when if_match differs from the etag.
func (c *storageCall) getRange(ctx context.Context, m *fnproto.StorageGetRange) (fnproto.Message, error) {
	base := c.s.b.maxFrame - rangeResultFixed
	want := uint64(min(int64(m.Length), int64(max(base, 0))))
	stream, info, cancel, err := c.openGet(ctx, &storagev1.GetRequest{StackId: c.s.stack, Box: m.Storage, Key: m.Key, Offset: m.Offset, Length: &want})
	if err != nil {
		if isNotFound(err) {
			return &fnproto.StorageRangeResult{}, nil
		}
		return nil, err
	}
	defer cancel()
	obj := info.GetObject()
	out := &fnproto.StorageRangeResult{Found: true, TotalSize: obj.GetSize(), ETag: obj.GetEtag(), ContentType: obj.GetContentType()}
	if m.IfMatch != nil && *m.IfMatch != out.ETag {
		return out, nil // changed: the function sees the new etag and no data
	}
	room := base - len(out.ETag) - len(out.ContentType)
	if room < 0 {
		return nil, &refusal{stTooLarge, fmt.Sprintf("the metadata of object %q does not fit one function protocol frame", m.Key)}
	}
	n := min(info.GetLength(), want, uint64(room))
	if out.Data, err = readChunks(stream, n); err != nil {
		return nil, err
	}
	return out, nil
}

// listAll answers the old StorageList: every page, as long as the listing
// fits a frame.
func (c *storageCall) listAll(ctx context.Context, m *fnproto.StorageList) (fnproto.Message, error) {
	out := &fnproto.ObjectListResult{}
	size, token := 2+4, ""
	for {
		r, err := c.s.b.client.List(ctx, &storagev1.ListRequest{StackId: c.s.stack, Box: m.Storage, Prefix: m.Prefix, PageToken: token})
		if err != nil {
			return nil, err
		}
		for _, o := range r.GetObjects() {
			size += 4 + len(o.GetKey()) + 8
			if size > c.s.b.maxFrame {
				return nil, &refusal{stTooLarge, fmt.Sprintf("the listing of prefix %q exceeds the function protocol's frame limit of %d bytes; list with StorageListPage (the SDK's Box.ListPage or Box.Objects)",
					m.Prefix, c.s.b.maxFrame)}
			}
			out.List = append(out.List, fnproto.StorageObject{Key: o.GetKey(), Size: o.GetSize()})
		}
		if token = r.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// storageReplySize is the Borsh body size of a storage reply, computed
// without encoding it.
func storageReplySize(m fnproto.Message) int {
	const u32, u64 = 4, 8
	info := func(o *fnproto.StorageObjectInfo) int {
		return u32 + len(o.Key) + u64 + u32 + len(o.ETag) + u32 + len(o.ContentType) + u64
	}
	switch m := m.(type) {
	case *fnproto.StorageError:
		return u32 + len(m.Error)
	case *fnproto.StorageEmptyResult:
		return 0
	case *fnproto.StorageGetResult:
		if m.Data == nil {
			return 1
		}
		return 1 + u32 + len(*m.Data)
	case *fnproto.ObjectListResult:
		n := u32
		for i := range m.List {
			n += u32 + len(m.List[i].Key) + u64
		}
		return n
	case *fnproto.StorageRangeResult:
		return 1 + u32 + len(m.Data) + u64 + u32 + len(m.ETag) + u32 + len(m.ContentType)
	case *fnproto.StorageUploadResult:
		return u32
	case *fnproto.StorageObjectResult:
		return u64 + u32 + len(m.ETag)
	case *fnproto.ObjectPageResult:
		n := u32 + u32 + len(m.NextCursor)
		for i := range m.Objects {
			n += info(&m.Objects[i])
		}
		return n
	case *fnproto.StorageObjectInfoResult:
		if m.Info == nil {
			return 1
		}
		return 1 + info(m.Info)
	case *fnproto.StorageSignedURLResult:
		return u32 + len(m.URL) + u64
	}
	return math.MaxInt32 // not a storage reply: never sent
}

// createBoxes creates every box the manifest declares, with its public
// flag (CreateBox is idempotent and sets the flag of an existing box),
// before the revision serves. Without storage configured it does nothing:
// the stack deploys and its storage calls get a StorageError.
func (b *storageBridge) createBoxes(ctx context.Context, id ids.StackID, m *manifest.Manifest) error {
	if b.client == nil {
		return nil
	}
	for _, s := range m.Storages {
		_, err := b.client.CreateBox(ctx, &storagev1.CreateBoxRequest{StackId: id.Bytes(), Box: s.Name, Public: s.Public})
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		st := status.Convert(err)
		code := st.Code()
		switch code {
		case codes.InvalidArgument, codes.FailedPrecondition, codes.ResourceExhausted, codes.PermissionDenied:
		default:
			code = codes.Unavailable
		}
		return status.Errorf(code, "stack %s: storage could not create box %q: %s: %s", id, s.Name, st.Code(), st.Message())
	}
	return nil
}
