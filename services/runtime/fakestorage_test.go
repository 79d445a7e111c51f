package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/ids"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
)

// fakeStorage is an in-memory StorageServiceServer with the storage
// service's observable rules: boxes per stack must exist, Put stores only
// a stream closed after every byte, Get streams an info message then
// chunks of at most 1 MiB, List pages by key, binaries by content id. It
// records what it was asked.
type fakeStorage struct {
	storagev1.UnimplementedStorageServiceServer

	mu       sync.Mutex
	boxes    map[string]bool              // hex stack + "/" + box → public
	objects  map[string]*fakeStoredObject // hex stack + "/" + box + "/" + key
	binaries map[string][]byte            // binary id → bytes (may be corrupt on purpose)
	stacks   map[string]int               // hex stack id → object calls
	aborted  int                          // Put streams that ended without a close
	gets     int                          // Get calls
	binGets  int                          // GetBinary calls
	dataDels map[string]int               // hex stack id → DeleteStackData calls
	maxChunk int                          // largest Put chunk received
	seq      int
}

type fakeStoredObject struct {
	data        []byte
	contentType string
	etag        string
	modified    time.Time
}

func newFakeStorage() *fakeStorage {
	return &fakeStorage{boxes: map[string]bool{}, objects: map[string]*fakeStoredObject{}, binaries: map[string][]byte{}, stacks: map[string]int{}, dataDels: map[string]int{}}
}

// serveFakeStorage serves f on a real gRPC server on 127.0.0.1 and returns
// its address.
func serveFakeStorage(t *testing.T, f *fakeStorage) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(8<<20), grpc.MaxSendMsgSize(8<<20))
	storagev1.RegisterStorageServiceServer(g, f)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

func (f *fakeStorage) box(stack []byte, box string) (string, error) {
	if _, err := ids.StackIDFromBytes(stack); err != nil {
		return "", status.Errorf(codes.InvalidArgument, "stack_id: %v", err)
	}
	k := hex.EncodeToString(stack) + "/" + box
	f.stacks[hex.EncodeToString(stack)]++
	if _, ok := f.boxes[k]; !ok {
		return "", status.Errorf(codes.NotFound, "box %q of stack %x does not exist", box, stack)
	}
	return k, nil
}

func (f *fakeStorage) CreateBox(_ context.Context, r *storagev1.CreateBoxRequest) (*storagev1.CreateBoxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := hex.EncodeToString(r.GetStackId()) + "/" + r.GetBox()
	_, existed := f.boxes[k]
	f.boxes[k] = r.GetPublic()
	return &storagev1.CreateBoxResponse{Created: !existed}, nil
}

func (f *fakeStorage) Put(stream grpc.ClientStreamingServer[storagev1.PutRequest, storagev1.PutResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			f.mu.Lock()
			f.aborted++
			f.mu.Unlock()
		}
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return status.Error(codes.InvalidArgument, "first message must be the header")
	}
	f.mu.Lock()
	k, err := f.box(hdr.GetStackId(), hdr.GetBox())
	f.mu.Unlock()
	if err != nil {
		return err
	}
	var data []byte
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.mu.Lock()
			f.aborted++
			f.mu.Unlock()
			return err
		}
		c := msg.GetChunk()
		if len(c) > 1<<20 {
			return status.Errorf(codes.InvalidArgument, "chunk of %d bytes exceeds 1 MiB", len(c))
		}
		f.mu.Lock()
		f.maxChunk = max(f.maxChunk, len(c))
		f.mu.Unlock()
		data = append(data, c...)
	}
	if hdr.Size != nil && *hdr.Size != uint64(len(data)) {
		return status.Errorf(codes.InvalidArgument, "body of %d bytes, header said %d", len(data), *hdr.Size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	sum := sha256.Sum256(data)
	o := &fakeStoredObject{data: data, contentType: hdr.GetContentType(), etag: fmt.Sprintf("%x-%d", sum[:4], f.seq), modified: time.UnixMilli(1767225600000)}
	f.objects[k+"/"+hdr.GetKey()] = o
	return stream.SendAndClose(&storagev1.PutResponse{Object: f.info(hdr.GetKey(), o)})
}

func (f *fakeStorage) info(key string, o *fakeStoredObject) *storagev1.ObjectInfo {
	return &storagev1.ObjectInfo{Key: key, Size: uint64(len(o.data)), ContentType: o.contentType, Etag: o.etag, LastModified: timestamppb.New(o.modified)}
}

func (f *fakeStorage) Get(r *storagev1.GetRequest, stream grpc.ServerStreamingServer[storagev1.GetResponse]) error {
	f.mu.Lock()
	f.gets++
	k, err := f.box(r.GetStackId(), r.GetBox())
	var o *fakeStoredObject
	if err == nil {
		if o = f.objects[k+"/"+r.GetKey()]; o == nil {
			err = status.Errorf(codes.NotFound, "Get: object not found")
		}
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	size := uint64(len(o.data))
	if r.GetOffset() > size {
		return status.Errorf(codes.OutOfRange, "offset %d is past the end of the %d-byte object", r.GetOffset(), size)
	}
	end := size
	if r.Length != nil {
		end = min(size, r.GetOffset()+r.GetLength())
	}
	part := o.data[r.GetOffset():end]
	if err := stream.Send(&storagev1.GetResponse{Payload: &storagev1.GetResponse_Info{Info: &storagev1.GetInfo{
		Object: f.info(r.GetKey(), o), Offset: r.GetOffset(), Length: uint64(len(part))}}}); err != nil {
		return err
	}
	for len(part) > 0 {
		n := min(len(part), 1<<20)
		if err := stream.Send(&storagev1.GetResponse{Payload: &storagev1.GetResponse_Chunk{Chunk: part[:n]}}); err != nil {
			return err
		}
		part = part[n:]
	}
	return nil
}

func (f *fakeStorage) Delete(_ context.Context, r *storagev1.DeleteRequest) (*storagev1.DeleteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, err := f.box(r.GetStackId(), r.GetBox())
	if err != nil {
		return nil, err
	}
	_, ok := f.objects[k+"/"+r.GetKey()]
	delete(f.objects, k+"/"+r.GetKey())
	return &storagev1.DeleteResponse{Deleted: ok}, nil
}

func (f *fakeStorage) List(_ context.Context, r *storagev1.ListRequest) (*storagev1.ListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, err := f.box(r.GetStackId(), r.GetBox())
	if err != nil {
		return nil, err
	}
	limit := int(r.GetMaxKeys())
	if limit == 0 || limit > 1000 {
		limit = 1000
	}
	after := ""
	if t := r.GetPageToken(); t != "" {
		if !strings.HasPrefix(t, "tok:") {
			return nil, status.Error(codes.InvalidArgument, "page_token is not valid")
		}
		after = strings.TrimPrefix(t, "tok:")
	}
	var keys []string
	for full := range f.objects {
		if key, ok := strings.CutPrefix(full, k+"/"); ok && strings.HasPrefix(key, r.GetPrefix()) && key > after {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	resp := &storagev1.ListResponse{}
	for i, key := range keys {
		if i == limit {
			resp.NextPageToken = "tok:" + keys[i-1]
			break
		}
		resp.Objects = append(resp.Objects, f.info(key, f.objects[k+"/"+key]))
	}
	return resp, nil
}

func (f *fakeStorage) SignURL(_ context.Context, r *storagev1.SignURLRequest) (*storagev1.SignURLResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.box(r.GetStackId(), r.GetBox()); err != nil {
		return nil, err
	}
	exp := int64(r.GetExpiresInSeconds())
	if exp == 0 {
		exp = 3600
	}
	return &storagev1.SignURLResponse{
		Url: fmt.Sprintf("http://storage.test/signed/%s/%s/%s?method=%s&max=%d&ct=%s&exp=%d", ids.StackID(r.GetStackId()), r.GetBox(), r.GetKey(),
			strings.TrimPrefix(r.GetMethod().String(), "SIGN_URL_METHOD_"), r.GetMaxBytes(), r.GetContentType(), exp),
		ExpiresAt: timestamppb.New(time.Unix(1767225600+exp, 0)),
	}, nil
}

func (f *fakeStorage) GetBinary(r *storagev1.GetBinaryRequest, stream grpc.ServerStreamingServer[storagev1.GetBinaryResponse]) error {
	f.mu.Lock()
	f.binGets++
	b, ok := f.binaries[r.GetBinaryId()]
	f.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "binary %s not found", r.GetBinaryId())
	}
	sum := sha256.Sum256(b)
	if err := stream.Send(&storagev1.GetBinaryResponse{Payload: &storagev1.GetBinaryResponse_Info{Info: &storagev1.BinaryInfo{
		BinaryId: r.GetBinaryId(), Size: uint64(len(b)), Sha256: sum[:]}}}); err != nil {
		return err
	}
	for len(b) > 0 {
		n := min(len(b), 1<<20)
		if err := stream.Send(&storagev1.GetBinaryResponse{Payload: &storagev1.GetBinaryResponse_Chunk{Chunk: b[:n]}}); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// DeleteStackData deletes every box and object of the stack, idempotently.
func (f *fakeStorage) DeleteStackData(_ context.Context, r *storagev1.DeleteStackDataRequest) (*storagev1.DeleteStackDataResponse, error) {
	if _, err := ids.StackIDFromBytes(r.GetStackId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "stack_id: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix := hex.EncodeToString(r.GetStackId()) + "/"
	f.dataDels[hex.EncodeToString(r.GetStackId())]++
	for k := range f.boxes {
		if strings.HasPrefix(k, prefix) {
			delete(f.boxes, k)
		}
	}
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) {
			delete(f.objects, k)
		}
	}
	return &storagev1.DeleteStackDataResponse{}, nil
}

// dataDeletes is how many DeleteStackData calls named stack.
func (f *fakeStorage) dataDeletes(stack ids.StackID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dataDels[hex.EncodeToString(stack[:])]
}

// object returns a copy of the object stored under stack/box/key.
func (f *fakeStorage) object(stack ids.StackID, box, key string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.objects[hex.EncodeToString(stack[:])+"/"+box+"/"+key]
	if o == nil {
		return nil, false
	}
	return append([]byte(nil), o.data...), true
}

// waitAborted waits until n Put streams have been seen to end without a
// close (the server learns of a cancellation asynchronously).
func (f *fakeStorage) waitAborted(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		got := f.aborted
		f.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d aborted Put streams, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
