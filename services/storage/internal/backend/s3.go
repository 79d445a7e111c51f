package backend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says which bucket of which S3 endpoint to use.
type S3Config struct {
	// Endpoint is host:port, without scheme.
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	// Region is the bucket's region; empty lets the client discover it.
	Region string
	UseSSL bool
	// PartSize is the multipart part size in bytes (at least 5 MiB, S3's
	// minimum). An object up to PartSize goes in one PUT; a larger one in
	// parts of PartSize, holding one part in memory at a time.
	PartSize int64
	// CreateBucket makes the bucket when it is missing.
	CreateBucket bool
	// Transport overrides the HTTP transport (nil: minio-go's default).
	Transport http.RoundTripper
}

// MinPartSize is S3's smallest part of a multipart upload (except the last).
const MinPartSize = 5 << 20

// S3 is a Backend on one bucket of an S3 endpoint, through minio-go.
type S3 struct {
	core   *minio.Core
	bucket string
	part   int64
	pool   sync.Pool // *[]byte of part bytes: the first part of a Put
}

// OpenS3 connects to the endpoint and checks the bucket, creating it when it
// is missing and cfg.CreateBucket is set.
func OpenS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.PartSize < MinPartSize {
		return nil, fmt.Errorf("s3 backend: part size %d is under S3's minimum %d", cfg.PartSize, MinPartSize)
	}
	core, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.UseSSL,
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 backend: %w", err)
	}
	ok, err := core.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 backend: bucket %q at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		if !cfg.CreateBucket {
			return nil, fmt.Errorf("s3 backend: bucket %q does not exist at %s", cfg.Bucket, cfg.Endpoint)
		}
		if err := core.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			return nil, fmt.Errorf("s3 backend: create bucket %q at %s: %w", cfg.Bucket, cfg.Endpoint, err)
		}
	}
	s := &S3{core: core, bucket: cfg.Bucket, part: cfg.PartSize}
	s.pool.New = func() any { b := make([]byte, cfg.PartSize); return &b }
	return s, nil
}

func isNotFound(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, "NotFound", "NoSuchObject":
		return true
	}
	return minio.ToErrorResponse(err).StatusCode == http.StatusNotFound
}

// Put implements Backend. Up to PartSize bytes are read first: a body that
// ends within them goes in one PUT, a longer one as a multipart upload
// that minio-go aborts on any failure.
func (s *S3) Put(ctx context.Context, name string, r io.Reader, opts PutOptions) (Info, error) {
	bp := s.pool.Get().(*[]byte)
	defer s.pool.Put(bp)
	buf := *bp
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	mopts := minio.PutObjectOptions{ContentType: opts.ContentType, UserMetadata: opts.Meta, PartSize: uint64(s.part)}
	var up minio.UploadInfo
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if opts.ContentType == "" {
			mopts.ContentType = "application/octet-stream"
		}
		up, err = s.core.Client.PutObject(ctx, s.bucket, name, bytes.NewReader(buf[:n]), int64(n), mopts)
	case err != nil:
		return Info{}, fmt.Errorf("s3 backend: put %q: %w", name, err)
	default:
		if opts.ContentType == "" {
			mopts.ContentType = "application/octet-stream"
		}
		body := io.MultiReader(bytes.NewReader(buf), ctxReader{ctx, r})
		up, err = s.core.Client.PutObject(ctx, s.bucket, name, body, -1, mopts)
	}
	if err != nil {
		return Info{}, fmt.Errorf("s3 backend: put %q: %w", name, err)
	}
	mod := up.LastModified
	if mod.IsZero() {
		mod = time.Now().Round(0)
	}
	return Info{Name: name, Size: up.Size, ETag: strings.Trim(up.ETag, `"`), ContentType: opts.ContentType,
		LastModified: mod, Meta: lowerKeys(opts.Meta)}, nil
}

func (s *S3) info(name string, oi minio.ObjectInfo) Info {
	meta := make(map[string]string, len(oi.UserMetadata))
	for k, v := range oi.UserMetadata {
		meta[strings.ToLower(k)] = v
	}
	if len(meta) == 0 {
		meta = nil
	}
	ct := oi.ContentType
	if ct == "application/octet-stream" {
		ct = "" // what Put stores for "none given"
	}
	return Info{Name: name, Size: oi.Size, ETag: strings.Trim(oi.ETag, `"`), ContentType: ct,
		LastModified: oi.LastModified, Meta: meta}
}

// Stat implements Backend.
func (s *S3) Stat(ctx context.Context, name string) (Info, error) {
	oi, err := s.core.Client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return Info{}, fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		return Info{}, fmt.Errorf("s3 backend: stat %q: %w", name, err)
	}
	return s.info(name, oi), nil
}

// Get implements Backend: one ranged GET; the total size comes from its
// Content-Range, so Info and bytes describe the same version.
func (s *S3) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, Info, error) {
	if length == 0 {
		info, err := s.Stat(ctx, name)
		if err != nil {
			return nil, Info{}, err
		}
		if offset > info.Size {
			return nil, Info{}, fmt.Errorf("%q: offset %d, size %d: %w", name, offset, info.Size, ErrOutOfRange)
		}
		return io.NopCloser(bytes.NewReader(nil)), info, nil
	}
	var opts minio.GetObjectOptions
	ranged := offset > 0 || length > 0
	switch {
	case length > 0:
		opts.SetRange(offset, offset+length-1)
	case offset > 0:
		opts.SetRange(offset, 0)
	}
	body, oi, hdr, err := s.core.GetObject(ctx, s.bucket, name, opts)
	if err != nil {
		if isNotFound(err) {
			return nil, Info{}, fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		if minio.ToErrorResponse(err).StatusCode == http.StatusRequestedRangeNotSatisfiable || minio.ToErrorResponse(err).Code == "InvalidRange" {
			info, serr := s.Stat(ctx, name)
			if serr != nil {
				return nil, Info{}, serr
			}
			if offset == info.Size {
				return io.NopCloser(bytes.NewReader(nil)), info, nil
			}
			return nil, Info{}, fmt.Errorf("%q: offset %d, size %d: %w", name, offset, info.Size, ErrOutOfRange)
		}
		return nil, Info{}, fmt.Errorf("s3 backend: get %q: %w", name, err)
	}
	info := s.info(name, oi)
	if ranged {
		total, ok := totalFromContentRange(hdr.Get("Content-Range"))
		if !ok {
			// A server that ignored the range and sent it all.
			if hdr.Get("Content-Range") == "" && oi.Size >= 0 {
				total = oi.Size
				if offset > 0 {
					if _, err := io.CopyN(io.Discard, body, min(offset, total)); err != nil {
						body.Close()
						return nil, Info{}, fmt.Errorf("s3 backend: get %q: %w", name, err)
					}
				}
				info.Size = total
				n := max(total-offset, 0)
				if length > 0 && length < n {
					n = length
				}
				return readCloser{io.LimitReader(body, n), body}, info, nil
			}
			body.Close()
			return nil, Info{}, fmt.Errorf("s3 backend: get %q: bad Content-Range %q", name, hdr.Get("Content-Range"))
		}
		info.Size = total
	}
	return body, info, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// totalFromContentRange parses "bytes a-b/total".
func totalFromContentRange(v string) (int64, bool) {
	_, total, ok := strings.Cut(v, "/")
	if !ok || !strings.HasPrefix(v, "bytes ") {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil && n >= 0
}

// Delete implements Backend.
func (s *S3) Delete(ctx context.Context, name string) error {
	err := s.core.Client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("s3 backend: delete %q: %w", name, err)
	}
	return nil
}

// List implements Backend with one ListObjectsV2 call of max+1 keys.
func (s *S3) List(ctx context.Context, prefix, startAfter string, max int) ([]Info, bool, error) {
	res, err := s.core.ListObjectsV2(s.bucket, prefix, startAfter, "", "", max+1)
	if err != nil {
		return nil, false, fmt.Errorf("s3 backend: list %q: %w", prefix, err)
	}
	out := make([]Info, 0, min(len(res.Contents), max))
	for _, o := range res.Contents {
		if len(out) == max {
			return out, true, nil
		}
		if !strings.HasPrefix(o.Key, prefix) || o.Key <= startAfter {
			continue
		}
		info := s.info(o.Key, o)
		info.ContentType = "" // listings carry no content type
		out = append(out, info)
	}
	return out, res.IsTruncated && len(out) > 0, ctx.Err()
}

// DeletePrefix implements Backend: it lists the prefix a page at a time and
// removes each page with one multi-object delete.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) (int64, int64, error) {
	var objects, size int64
	for {
		page, _, err := s.List(ctx, prefix, "", 1000)
		if err != nil {
			return objects, size, err
		}
		if len(page) == 0 {
			return objects, size, nil
		}
		ch := make(chan minio.ObjectInfo, len(page))
		for _, o := range page {
			ch <- minio.ObjectInfo{Key: o.Name}
		}
		close(ch)
		var failed error
		for e := range s.core.Client.RemoveObjects(ctx, s.bucket, ch, minio.RemoveObjectsOptions{}) {
			if e.Err != nil && !isNotFound(e.Err) && failed == nil {
				failed = fmt.Errorf("s3 backend: delete %q: %w", e.ObjectName, e.Err)
			}
		}
		if failed != nil {
			return objects, size, failed
		}
		for _, o := range page {
			objects++
			size += o.Size
		}
	}
}

var _ Backend = (*S3)(nil)
