package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/mr-tron/base58"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	"github.com/muprotocol/mu/services/storage/internal/backend"
	"github.com/muprotocol/mu/services/storage/internal/layout"
	"github.com/muprotocol/mu/services/storage/internal/urlsig"
	"github.com/muprotocol/mu/services/storage/upload"
)

func objectInfo(i backend.Info) *storagev1.ObjectInfo {
	o := &storagev1.ObjectInfo{Key: i.Name, Size: uint64(i.Size), ContentType: i.ContentType, Etag: i.ETag}
	if !i.LastModified.IsZero() {
		o.LastModified = timestamppb.New(i.LastModified)
	}
	return o
}

// CreateBox implements StorageService.
func (s *Server) CreateBox(ctx context.Context, req *storagev1.CreateBoxRequest) (*storagev1.CreateBoxResponse, error) {
	stack, err := parseStack(req.GetStackId())
	if err != nil {
		return nil, err
	}
	if err := validBox(req.GetBox()); err != nil {
		return nil, err
	}
	created, err := s.createBox(ctx, stack, req.GetBox(), req.GetPublic())
	if err != nil {
		return nil, err
	}
	return &storagev1.CreateBoxResponse{Created: created}, nil
}

// DeleteBox implements StorageService.
func (s *Server) DeleteBox(ctx context.Context, req *storagev1.DeleteBoxRequest) (*storagev1.DeleteBoxResponse, error) {
	stack, err := parseStack(req.GetStackId())
	if err != nil {
		return nil, err
	}
	if err := validBox(req.GetBox()); err != nil {
		return nil, err
	}
	deleted, n, err := s.deleteBox(ctx, stack, req.GetBox())
	if err != nil {
		return nil, err
	}
	return &storagev1.DeleteBoxResponse{Deleted: deleted, ObjectsDeleted: uint64(n)}, nil
}

// ListBoxes implements StorageService.
func (s *Server) ListBoxes(ctx context.Context, req *storagev1.ListBoxesRequest) (*storagev1.ListBoxesResponse, error) {
	stack, err := parseStack(req.GetStackId())
	if err != nil {
		return nil, err
	}
	bs, err := s.listBoxes(ctx, stack)
	if err != nil {
		return nil, err
	}
	resp := &storagev1.ListBoxesResponse{}
	for _, b := range bs {
		resp.Boxes = append(resp.Boxes, b.name)
		resp.BoxInfos = append(resp.BoxInfos, &storagev1.BoxInfo{Name: b.name, Public: b.public})
	}
	return resp, nil
}

// DeleteStackData implements StorageService.
func (s *Server) DeleteStackData(ctx context.Context, req *storagev1.DeleteStackDataRequest) (*storagev1.DeleteStackDataResponse, error) {
	stack, err := parseStack(req.GetStackId())
	if err != nil {
		return nil, err
	}
	boxes, objects, err := s.deleteStackData(ctx, stack)
	if err != nil {
		return nil, err
	}
	s.log.Info("stack data deleted", "stack", stack.String(), "boxes", boxes, "objects", objects)
	return &storagev1.DeleteStackDataResponse{BoxesDeleted: uint64(boxes), ObjectsDeleted: uint64(objects)}, nil
}

// SignURL implements StorageService.
func (s *Server) SignURL(ctx context.Context, req *storagev1.SignURLRequest) (*storagev1.SignURLResponse, error) {
	stack, err := parseStack(req.GetStackId())
	if err != nil {
		return nil, err
	}
	if err := validBox(req.GetBox()); err != nil {
		return nil, err
	}
	if err := s.validKey(req.GetKey()); err != nil {
		return nil, err
	}
	g := urlsig.Grant{Stack: stack.String(), Box: req.GetBox(), Key: req.GetKey()}
	switch req.GetMethod() {
	case storagev1.SignURLMethod_SIGN_URL_METHOD_GET:
		g.Method = "GET"
		if req.GetMaxBytes() != 0 || req.GetContentType() != "" {
			return nil, invalid("max_bytes, content_type: only for PUT URLs")
		}
	case storagev1.SignURLMethod_SIGN_URL_METHOD_PUT:
		g.Method = "PUT"
		g.MaxBytes = s.cfg.MaxObjectBytes
		if m := req.GetMaxBytes(); m > uint64(s.cfg.MaxObjectBytes) {
			return nil, tooLarge("max_bytes: %d is over the limit of %d (max_object_bytes)", m, s.cfg.MaxObjectBytes)
		} else if m > 0 {
			g.MaxBytes = int64(m)
		}
		if err := validContentType(req.GetContentType()); err != nil {
			return nil, err
		}
		g.ContentType = req.GetContentType()
	default:
		return nil, invalid("method: must be SIGN_URL_METHOD_GET or SIGN_URL_METHOD_PUT")
	}
	ttl := s.cfg.DefaultSignedURLExpiry
	if sec := req.GetExpiresInSeconds(); sec > 0 {
		ttl = time.Duration(sec) * time.Second
		if ttl > s.cfg.MaxSignedURLExpiry {
			return nil, invalid("expires_in_seconds: %d is over the limit of %d", sec, int64(s.cfg.MaxSignedURLExpiry/time.Second))
		}
	}
	if _, err := s.needBox(ctx, stack, req.GetBox()); err != nil {
		return nil, err
	}
	exp := s.now().Add(ttl).Truncate(time.Second)
	g.Expires = exp.Unix()
	return &storagev1.SignURLResponse{Url: s.publicURL() + urlsig.Sign(s.signKey, g), ExpiresAt: timestamppb.New(exp)}, nil
}

func validContentType(ct string) error {
	if len(ct) > 255 {
		return invalid("content_type: %d bytes is over the limit of 255", len(ct))
	}
	for i := 0; i < len(ct); i++ {
		if ct[i] < 0x20 || ct[i] >= 0x7f {
			return invalid("content_type: must be printable ASCII")
		}
	}
	return nil
}

func (s *Server) objectFrom(stackID []byte, box, key string) (object, error) {
	stack, err := parseStack(stackID)
	if err != nil {
		return object{}, err
	}
	if err := validBox(box); err != nil {
		return object{}, err
	}
	if err := s.validKey(key); err != nil {
		return object{}, err
	}
	return object{stack: stack, box: box, key: key}, nil
}

// chunkReader reads the chunks of a client stream as one body.
type chunkReader[T any] struct {
	recv  func() (*T, error)
	chunk func(*T) ([]byte, bool)
	buf   []byte
	err   error
}

func (c *chunkReader[T]) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		m, err := c.recv()
		if err != nil {
			c.err = err
			continue
		}
		b, ok := c.chunk(m)
		if !ok {
			c.err = invalid("stream: only the first message may be a header; later ones must be chunks")
			continue
		}
		if len(b) > maxChunk {
			c.err = invalid("chunk: %d bytes is over the limit of %d per message", len(b), maxChunk)
			continue
		}
		c.buf = b
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// Put implements StorageService.
func (s *Server) Put(stream grpc.ClientStreamingServer[storagev1.PutRequest, storagev1.PutResponse]) (err error) {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return invalid("header: the first message must be a header")
	}
	ctx, span := s.opSpan(stream.Context(), "Put", h.GetBox(), 1)
	var stored int64
	defer func() { s.endOp(span, stored, err) }()
	o, err := s.objectFrom(h.GetStackId(), h.GetBox(), h.GetKey())
	if err != nil {
		return err
	}
	if err := validContentType(h.GetContentType()); err != nil {
		return err
	}
	o.contentType = h.GetContentType()
	size := int64(-1)
	if h.Size != nil {
		if h.GetSize() > uint64(s.cfg.MaxObjectBytes) {
			return tooLarge("size: %d bytes is over the limit of %d (max_object_bytes)", h.GetSize(), s.cfg.MaxObjectBytes)
		}
		size = int64(h.GetSize())
	}
	body := &chunkReader[storagev1.PutRequest]{recv: stream.Recv, chunk: func(m *storagev1.PutRequest) ([]byte, bool) {
		c, ok := m.GetPayload().(*storagev1.PutRequest_Chunk)
		if !ok {
			return nil, false
		}
		return c.Chunk, true
	}}
	info, err := s.put(ctx, o, body, size, s.cfg.MaxObjectBytes)
	if err != nil {
		return err
	}
	stored = info.Size
	return stream.SendAndClose(&storagev1.PutResponse{Object: objectInfo(info)})
}

// Get implements StorageService.
func (s *Server) Get(req *storagev1.GetRequest, stream grpc.ServerStreamingServer[storagev1.GetResponse]) (err error) {
	ctx, span := s.opSpan(stream.Context(), "Get", req.GetBox(), 1)
	var sent int64
	defer func() { s.endOp(span, sent, err) }()
	o, err := s.objectFrom(req.GetStackId(), req.GetBox(), req.GetKey())
	if err != nil {
		return err
	}
	if _, err := s.needBox(ctx, o.stack, o.box); err != nil {
		return err
	}
	if req.GetOffset() > uint64(s.cfg.MaxObjectBytes) {
		return status.Errorf(codes.OutOfRange, "offset: %d is past the end of the object", req.GetOffset())
	}
	length := int64(-1)
	if req.Length != nil {
		length = int64(min(req.GetLength(), uint64(s.cfg.MaxObjectBytes)))
	}
	rc, info, err := s.store.Get(ctx, layout.ObjectName(o.stack, o.box, o.key), int64(req.GetOffset()), length)
	if err != nil {
		return s.backendErr("get", err)
	}
	defer rc.Close()
	n := info.Size - int64(req.GetOffset())
	if length >= 0 && length < n {
		n = length
	}
	info.Name = o.key
	if err := stream.Send(&storagev1.GetResponse{Payload: &storagev1.GetResponse_Info{Info: &storagev1.GetInfo{
		Object: objectInfo(info), Offset: req.GetOffset(), Length: uint64(n)}}}); err != nil {
		return err
	}
	sent, err = sendChunks(rc, s.cfg.ChunkBytes, func(b []byte) error {
		return stream.Send(&storagev1.GetResponse{Payload: &storagev1.GetResponse_Chunk{Chunk: b}})
	})
	s.traffic(o.stack, sent, false)
	if err != nil {
		return s.backendErr("get", err)
	}
	if sent != n {
		return status.Errorf(codes.Aborted, "get: object changed while being read (%d of %d bytes)", sent, n)
	}
	return nil
}

// sendChunks sends r in chunks of size and returns the bytes sent.
func sendChunks(r io.Reader, size int, send func([]byte) error) (int64, error) {
	buf := make([]byte, size)
	var sent int64
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			if serr := send(buf[:k]); serr != nil {
				return sent, serr
			}
			sent += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return sent, nil
		}
		if err != nil {
			return sent, err
		}
	}
}

// Delete implements StorageService.
func (s *Server) Delete(ctx context.Context, req *storagev1.DeleteRequest) (_ *storagev1.DeleteResponse, err error) {
	ctx, span := s.opSpan(ctx, "Delete", req.GetBox(), 1)
	defer func() { s.endOp(span, 0, err) }()
	o, err := s.objectFrom(req.GetStackId(), req.GetBox(), req.GetKey())
	if err != nil {
		return nil, err
	}
	deleted, err := s.deleteObject(ctx, o)
	if err != nil {
		return nil, err
	}
	return &storagev1.DeleteResponse{Deleted: deleted}, nil
}

// List implements StorageService.
func (s *Server) List(ctx context.Context, req *storagev1.ListRequest) (_ *storagev1.ListResponse, err error) {
	ctx, span := s.opSpan(ctx, "List", req.GetBox(), -1)
	listed := -1
	defer func() {
		if span != nil && listed >= 0 {
			span.SetAttributes(attribute.Int("mu.storage.keys", listed))
		}
		s.endOp(span, 0, err)
	}()
	stack, err := parseStack(req.GetStackId())
	if err != nil {
		return nil, err
	}
	if err := validBox(req.GetBox()); err != nil {
		return nil, err
	}
	page, next, err := s.list(ctx, stack, req.GetBox(), req.GetPrefix(), int(min(req.GetMaxKeys(), 1<<30)), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &storagev1.ListResponse{NextPageToken: next}
	for _, o := range page {
		resp.Objects = append(resp.Objects, objectInfo(o))
	}
	listed = len(page)
	return resp, nil
}

// hashingReader hashes what it reads and, at the end, fails unless the
// digest is want: a body that does not match its signature stores nothing.
type hashingReader struct {
	r    io.Reader
	h    hash.Hash
	want [32]byte
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	if err == io.EOF {
		var got [32]byte
		h.h.Sum(got[:0])
		if got != h.want {
			return n, status.Errorf(codes.Unauthenticated, "%v", upload.ErrBodyMismatch)
		}
	}
	return n, err
}

// storeBinary stores a signed binary read from body (size < 0: unknown).
// Whether the bytes are new or not, every byte is read and checked against
// the signed digest before the answer.
func (s *Server) storeBinary(ctx context.Context, signed upload.Signed, body io.Reader, size int64) (backend.Info, bool, error) {
	id := upload.ID(signed.Digest)
	name := layout.BinaryName(id)
	hr := &hashingReader{r: &limitReader{r: body, limit: s.cfg.MaxBinaryBytes, want: size, what: "binary"}, h: sha256.New(), want: signed.Digest}
	if st, err := s.store.Stat(ctx, name); err == nil {
		if _, err := io.Copy(io.Discard, hr); err != nil {
			return backend.Info{}, false, s.backendErr("upload binary", err)
		}
		return st, true, nil
	} else if !errors.Is(err, backend.ErrNotFound) {
		return backend.Info{}, false, s.backendErr("upload binary", err)
	}
	info, err := s.store.Put(ctx, name, hr, backend.PutOptions{ContentType: "application/wasm", Meta: map[string]string{
		"uploader": base58.Encode(signed.PublicKey), "sha256": fmt.Sprintf("%x", signed.Digest)}})
	if err != nil {
		return backend.Info{}, false, s.backendErr("upload binary", err)
	}
	info.Meta = map[string]string{"uploader": base58.Encode(signed.PublicKey), "sha256": fmt.Sprintf("%x", signed.Digest)}
	s.log.Info("binary stored", "binary", id, "size", info.Size, "uploader", base58.Encode(signed.PublicKey))
	return info, false, nil
}

func binaryInfo(id string, i backend.Info) *storagev1.BinaryInfo {
	b := &storagev1.BinaryInfo{BinaryId: id, Size: uint64(i.Size)}
	if d, err := decodeHex32(i.Meta["sha256"]); err == nil {
		b.Sha256 = d
	}
	if k, err := base58.Decode(i.Meta["uploader"]); err == nil && len(k) == 32 {
		b.UploaderPublicKey = k
	}
	if !i.LastModified.IsZero() {
		b.Created = timestamppb.New(i.LastModified)
	}
	return b
}

func decodeHex32(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, errors.New("not 32 bytes of hex")
	}
	return b, nil
}

// UploadBinary implements StorageService.
func (s *Server) UploadBinary(stream grpc.ClientStreamingServer[storagev1.UploadBinaryRequest, storagev1.UploadBinaryResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return invalid("header: the first message must be a header")
	}
	var digest [32]byte
	if len(h.GetSha256()) != 32 {
		return invalid("sha256: %d bytes, want 32", len(h.GetSha256()))
	}
	copy(digest[:], h.GetSha256())
	if err := upload.Verify(h.GetDeveloperPublicKey(), h.GetSignature(), digest, h.GetSignedAtUnix(), s.now(), s.cfg.UploadMaxSkew); err != nil {
		return status.Errorf(codes.Unauthenticated, "upload binary: %v", err)
	}
	size := int64(-1)
	if h.Size != nil {
		if h.GetSize() > uint64(s.cfg.MaxBinaryBytes) {
			return tooLarge("size: %d bytes is over the limit of %d (max_binary_bytes)", h.GetSize(), s.cfg.MaxBinaryBytes)
		}
		size = int64(h.GetSize())
	}
	body := &chunkReader[storagev1.UploadBinaryRequest]{recv: stream.Recv, chunk: func(m *storagev1.UploadBinaryRequest) ([]byte, bool) {
		c, ok := m.GetPayload().(*storagev1.UploadBinaryRequest_Chunk)
		if !ok {
			return nil, false
		}
		return c.Chunk, true
	}}
	signed := upload.Signed{PublicKey: h.GetDeveloperPublicKey(), Digest: digest, SignedAt: h.GetSignedAtUnix()}
	info, existed, err := s.storeBinary(stream.Context(), signed, body, size)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&storagev1.UploadBinaryResponse{Binary: binaryInfo(upload.ID(digest), info), AlreadyExisted: existed})
}

// GetBinary implements StorageService.
func (s *Server) GetBinary(req *storagev1.GetBinaryRequest, stream grpc.ServerStreamingServer[storagev1.GetBinaryResponse]) error {
	if err := layout.ValidateBinaryID(req.GetBinaryId()); err != nil {
		return invalid("%v", err)
	}
	rc, info, err := s.store.Get(stream.Context(), layout.BinaryName(req.GetBinaryId()), 0, -1)
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return status.Errorf(codes.NotFound, "binary %s not found", req.GetBinaryId())
		}
		return s.backendErr("get binary", err)
	}
	defer rc.Close()
	if err := stream.Send(&storagev1.GetBinaryResponse{Payload: &storagev1.GetBinaryResponse_Info{Info: binaryInfo(req.GetBinaryId(), info)}}); err != nil {
		return err
	}
	_, err = sendChunks(rc, s.cfg.ChunkBytes, func(b []byte) error {
		return stream.Send(&storagev1.GetBinaryResponse{Payload: &storagev1.GetBinaryResponse_Chunk{Chunk: b}})
	})
	if err != nil {
		return s.backendErr("get binary", err)
	}
	return nil
}
