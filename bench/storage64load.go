package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/muprotocol/mu/bench/internal/blobgen"
)

// The storage64 step's side of the load generator (see storage64.go): one
// "blob" command is one put or get of a whole object, timed from the
// "measure" message to its end. Kind is put, get (read into a CRC-32) or
// get_nosum (read and discarded).

// s3Where is the S3 bucket the direct path talks to: the one the region's
// storage node keeps its objects in.
type s3Where struct {
	Endpoint  string `json:"endpoint"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Bucket    string `json:"bucket"`
	PartSize  int64  `json:"part_size"`
}

// blobClient is the load generator's HTTP client for the mu path: one
// connection, no overall timeout beyond the gateway's own.
var blobClient = &http.Client{Timeout: 5 * time.Minute}

func (c *child) blob(ctx context.Context, cmd childCmd, send func(childMsg) error) (childMsg, error) {
	if cmd.Path == "direct" {
		if cmd.S3 == nil {
			return childMsg{}, errors.New("blob direct: no s3 given")
		}
		if c.s3 == nil {
			cl, err := minio.New(cmd.S3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cmd.S3.AccessKey, cmd.S3.SecretKey, "")})
			if err != nil {
				return childMsg{}, err
			}
			c.s3 = cl
		}
	}
	buf := make([]byte, blobgen.ChunkSize)
	send(childMsg{Event: "measure"})
	mark := markUse()
	t0 := time.Now()
	var (
		n   int64
		sum uint32
		err error
	)
	switch cmd.Path + " " + cmd.Kind {
	case "direct put":
		var up minio.UploadInfo
		up, err = c.s3.PutObject(ctx, cmd.S3.Bucket, cmd.Key, blobgen.NewReader(cmd.Size), cmd.Size,
			minio.PutObjectOptions{PartSize: uint64(cmd.S3.PartSize), ContentType: "application/octet-stream"})
		n = up.Size
	case "direct get":
		var obj *minio.Object
		if obj, err = c.s3.GetObject(ctx, cmd.S3.Bucket, cmd.Key, minio.GetObjectOptions{}); err == nil {
			h := crc32.NewIEEE()
			n, err = io.CopyBuffer(h, obj, buf)
			obj.Close()
			sum = h.Sum32()
		}
	case "direct get_nosum":
		var obj *minio.Object
		if obj, err = c.s3.GetObject(ctx, cmd.S3.Bucket, cmd.Key, minio.GetObjectOptions{}); err == nil {
			n, err = io.CopyBuffer(struct{ io.Writer }{io.Discard}, obj, buf)
			obj.Close()
		}
	case "mu get_nosum":
		var r blobAnswer
		r, err = blobCall(ctx, http.MethodGet, cmd.URL+"/get?sum=0&key="+url.QueryEscape(cmd.Key))
		n = r.Bytes
	case "mu put":
		var r blobAnswer
		r, err = blobCall(ctx, http.MethodPost, cmd.URL+"/put?key="+url.QueryEscape(cmd.Key)+"&size="+strconv.FormatInt(cmd.Size, 10))
		n = r.Bytes
	case "mu get":
		var r blobAnswer
		r, err = blobCall(ctx, http.MethodGet, cmd.URL+"/get?key="+url.QueryEscape(cmd.Key))
		n, sum = r.Bytes, r.CRC32
	default:
		return childMsg{}, fmt.Errorf("blob: unknown path and kind %q %q", cmd.Path, cmd.Kind)
	}
	elapsed := time.Since(t0)
	use := mark.since()
	if err != nil {
		return childMsg{}, fmt.Errorf("blob %s %s: %w", cmd.Path, cmd.Kind, err)
	}
	return childMsg{Event: "result", Requests: 1, Elapsed: elapsed, Use: use, Bytes: n, CRC32: sum}, nil
}

// blobAnswer is the blob function's JSON answer.
type blobAnswer struct {
	Bytes int64  `json:"bytes"`
	CRC32 uint32 `json:"crc32"`
}

func blobCall(ctx context.Context, method, u string) (blobAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return blobAnswer{}, err
	}
	resp, err := blobClient.Do(req)
	if err != nil {
		return blobAnswer{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return blobAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return blobAnswer{}, fmt.Errorf("%s %s: %s %q", method, u, resp.Status, body)
	}
	var a blobAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return blobAnswer{}, fmt.Errorf("%s %s answered %q: %w", method, u, body, err)
	}
	return a, nil
}
