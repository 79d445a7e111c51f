package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/services/storage/internal/backend"
	"github.com/muprotocol/mu/services/storage/internal/layout"
)

// The operations below are shared by the gRPC and HTTP APIs. They validate
// every name before building an object name (package layout), and return
// gRPC status errors; the HTTP API maps the codes to statuses.

func invalid(format string, args ...any) error {
	return rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, format, args...)
}

func tooLarge(format string, args ...any) error {
	return rpcerr.Errorf(codes.InvalidArgument, rpcerr.RequestTooLarge, format, args...)
}

// backendErr maps a backend failure: not found and out of range keep their
// meaning, a cancelled caller its own, the rest is UNAVAILABLE.
func (s *Server) backendErr(op string, err error) error {
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s: object not found", op)
	case errors.Is(err, backend.ErrOutOfRange):
		return status.Errorf(codes.OutOfRange, "%s: %v", op, err)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s: cancelled", op)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s: deadline exceeded", op)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err // a limit the body reader enforced
	}
	s.log.Warn("storage backend failed", "op", op, "err", err)
	return status.Errorf(codes.Unavailable, "%s: storage backend: %v", op, err)
}

func parseStack(b []byte) (ids.StackID, error) {
	id, err := ids.StackIDFromBytes(b)
	if err != nil {
		return id, invalid("stack_id: %v", err)
	}
	return id, nil
}

func validBox(box string) error {
	if err := layout.ValidateBox(box); err != nil {
		return invalid("%v", err)
	}
	return nil
}

func (s *Server) validKey(key string) error {
	if err := layout.ValidateKey(key, s.cfg.MaxKeyBytes); err != nil {
		if len(key) > s.cfg.MaxKeyBytes {
			return tooLarge("%v", err)
		}
		return invalid("%v", err)
	}
	return nil
}

// boxMarker is the JSON body of a box's registry object
// (boxes/<stack>/<box>).
type boxMarker struct {
	Public  bool      `json:"public"`
	Created time.Time `json:"created"`
}

// box returns whether the box exists and is public, from the cache or its
// marker.
func (s *Server) box(ctx context.Context, stack ids.StackID, box string) (exists, public bool, err error) {
	ref := boxRef{stack, box}
	now := s.now()
	s.boxMu.Lock()
	e, ok := s.boxes[ref]
	s.boxMu.Unlock()
	if ok && now.Sub(e.checked) < s.cfg.BoxCacheTTL {
		return e.exists, e.public, nil
	}
	m, err := s.readMarker(ctx, stack, box)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return false, false, s.backendErr("box", err)
	}
	e = boxEntry{exists: err == nil, public: m.Public, checked: now}
	s.boxMu.Lock()
	if len(s.boxes) > 100_000 {
		clear(s.boxes) // a cache, not a registry: bound it
	}
	s.boxes[ref] = e
	s.boxMu.Unlock()
	return e.exists, e.public, nil
}

func (s *Server) forgetBox(stack ids.StackID, box string) {
	s.boxMu.Lock()
	delete(s.boxes, boxRef{stack, box})
	s.boxMu.Unlock()
}

func (s *Server) readMarker(ctx context.Context, stack ids.StackID, box string) (boxMarker, error) {
	rc, _, err := s.store.Get(ctx, layout.BoxMarker(stack, box), 0, -1)
	if err != nil {
		return boxMarker{}, err
	}
	defer rc.Close()
	var m boxMarker
	if err := json.NewDecoder(io.LimitReader(rc, 4096)).Decode(&m); err != nil {
		return boxMarker{}, fmt.Errorf("box marker %s/%s: %w", stack, box, err)
	}
	return m, nil
}

// needBox fails with NOT_FOUND unless the box exists.
func (s *Server) needBox(ctx context.Context, stack ids.StackID, box string) (public bool, err error) {
	exists, public, err := s.box(ctx, stack, box)
	if err != nil {
		return false, err
	}
	if !exists {
		return false, status.Errorf(codes.NotFound, "box %q of stack %s does not exist", box, stack)
	}
	return public, nil
}

func (s *Server) createBox(ctx context.Context, stack ids.StackID, box string, public bool) (created bool, err error) {
	m, err := s.readMarker(ctx, stack, box)
	switch {
	case err == nil && m.Public == public:
		return false, nil
	case err == nil:
		m.Public = public
	case errors.Is(err, backend.ErrNotFound):
		m, created = boxMarker{Public: public, Created: s.now().UTC()}, true
	default:
		return false, s.backendErr("create box", err)
	}
	body, _ := json.Marshal(m)
	if _, err := s.store.Put(ctx, layout.BoxMarker(stack, box), strings.NewReader(string(body)),
		backend.PutOptions{ContentType: "application/json"}); err != nil {
		return false, s.backendErr("create box", err)
	}
	s.forgetBox(stack, box)
	return created, nil
}

func (s *Server) deleteBox(ctx context.Context, stack ids.StackID, box string) (deleted bool, objects int64, err error) {
	_, serr := s.store.Stat(ctx, layout.BoxMarker(stack, box))
	if serr != nil && !errors.Is(serr, backend.ErrNotFound) {
		return false, 0, s.backendErr("delete box", serr)
	}
	// The marker goes first, so no new object is accepted into the box
	// while its objects are removed.
	if err := s.store.Delete(ctx, layout.BoxMarker(stack, box)); err != nil {
		return false, 0, s.backendErr("delete box", err)
	}
	s.forgetBox(stack, box)
	n, size, err := s.store.DeletePrefix(ctx, layout.BoxPrefix(stack, box))
	s.stored.Add(stack, -size, s.now())
	if err != nil {
		return false, n, s.backendErr("delete box", err)
	}
	return serr == nil || n > 0, n, nil
}

type boxInfo struct {
	name   string
	public bool
}

func (s *Server) listBoxes(ctx context.Context, stack ids.StackID) ([]boxInfo, error) {
	prefix := layout.BoxMarkersPrefix(stack)
	var out []boxInfo
	after := ""
	for {
		page, more, err := s.store.List(ctx, prefix, after, 1000)
		if err != nil {
			return nil, s.backendErr("list boxes", err)
		}
		for _, o := range page {
			name := strings.TrimPrefix(o.Name, prefix)
			if layout.ValidateBox(name) != nil {
				continue
			}
			m, err := s.readMarker(ctx, stack, name)
			if errors.Is(err, backend.ErrNotFound) {
				continue // deleted meanwhile
			} else if err != nil {
				return nil, s.backendErr("list boxes", err)
			}
			out = append(out, boxInfo{name, m.Public})
		}
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].Name
	}
}

func (s *Server) deleteStackData(ctx context.Context, stack ids.StackID) (boxes, objects int64, err error) {
	bs, err := s.listBoxes(ctx, stack)
	if err != nil {
		return 0, 0, err
	}
	n, _, err := s.store.DeletePrefix(ctx, layout.BoxMarkersPrefix(stack))
	if err != nil {
		return 0, 0, s.backendErr("delete stack data", err)
	}
	for _, b := range bs {
		s.forgetBox(stack, b.name)
	}
	objects, size, err := s.store.DeletePrefix(ctx, layout.StackPrefix(stack))
	s.stored.Add(stack, -size, s.now())
	if err != nil {
		return n, objects, s.backendErr("delete stack data", err)
	}
	return max(n, int64(len(bs))), objects, nil
}

// limitReader counts the bytes read from r and fails the read that would
// go past limit, or end at another size than want (when want >= 0), with a
// status error naming the size and the limit; what breaks the body makes
// the backend store nothing.
type limitReader struct {
	r     io.Reader
	n     int64
	limit int64
	want  int64
	what  string
}

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.limit-l.n+1 {
		p = p[:l.limit-l.n+1]
	}
	k, err := l.r.Read(p)
	l.n += int64(k)
	if l.n > l.limit {
		return k, tooLarge("%s: body is over the limit of %d bytes", l.what, l.limit)
	}
	if l.want >= 0 && l.n > l.want {
		return k, invalid("%s: body is longer than the declared size %d", l.what, l.want)
	}
	if err == io.EOF && l.want >= 0 && l.n != l.want {
		return k, invalid("%s: body is %d bytes, the declared size is %d", l.what, l.n, l.want)
	}
	return k, err
}

type object struct {
	stack       ids.StackID
	box, key    string
	contentType string
}

// put stores body under the object; size < 0 means unknown. The bytes that
// arrived are metered, whether or not the call succeeds.
func (s *Server) put(ctx context.Context, o object, body io.Reader, size, limit int64) (backend.Info, error) {
	if _, err := s.needBox(ctx, o.stack, o.box); err != nil {
		return backend.Info{}, err
	}
	if limit > s.cfg.MaxObjectBytes {
		limit = s.cfg.MaxObjectBytes
	}
	if size > limit {
		return backend.Info{}, tooLarge("size: %d bytes is over the limit of %d", size, limit)
	}
	name := layout.ObjectName(o.stack, o.box, o.key)
	var old int64
	if st, err := s.store.Stat(ctx, name); err == nil {
		old = st.Size
	}
	lr := &limitReader{r: body, limit: limit, want: size, what: "object"}
	info, err := s.store.Put(ctx, name, lr, backend.PutOptions{ContentType: o.contentType})
	s.traffic(o.stack, lr.n, true)
	if err != nil {
		return backend.Info{}, s.backendErr("put", err)
	}
	s.stored.Add(o.stack, info.Size-old, s.now())
	info.Name = o.key
	return info, nil
}

// meteredReader counts bytes read for traffic metering.
type meteredReader struct {
	io.ReadCloser
	n int64
}

func (m *meteredReader) Read(p []byte) (int, error) {
	k, err := m.ReadCloser.Read(p)
	m.n += int64(k)
	return k, err
}

func (s *Server) deleteObject(ctx context.Context, o object) (bool, error) {
	if _, err := s.needBox(ctx, o.stack, o.box); err != nil {
		return false, err
	}
	name := layout.ObjectName(o.stack, o.box, o.key)
	st, err := s.store.Stat(ctx, name)
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, s.backendErr("delete", err)
	}
	if err := s.store.Delete(ctx, name); err != nil {
		return false, s.backendErr("delete", err)
	}
	s.stored.Add(o.stack, -st.Size, s.now())
	return true, nil
}

// list returns one page of the box's objects under prefix (keys relative to
// the box) and the next page token.
func (s *Server) list(ctx context.Context, stack ids.StackID, box, prefix string, maxKeys int, token string) ([]backend.Info, string, error) {
	if err := layout.ValidatePrefix(prefix, s.cfg.MaxKeyBytes); err != nil {
		return nil, "", invalid("%v", err)
	}
	if _, err := s.needBox(ctx, stack, box); err != nil {
		return nil, "", err
	}
	after := ""
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !strings.HasPrefix(string(b), prefix) || layout.ValidateKey(string(b), s.cfg.MaxKeyBytes) != nil {
			return nil, "", invalid("page_token: not a token of this listing (same box and prefix)")
		}
		after = string(b)
	}
	if maxKeys <= 0 {
		maxKeys = min(1000, s.cfg.MaxListPage)
	}
	maxKeys = min(maxKeys, s.cfg.MaxListPage)
	bp := layout.BoxPrefix(stack, box)
	startAfter := ""
	if after != "" {
		startAfter = bp + after
	}
	page, more, err := s.store.List(ctx, bp+prefix, startAfter, maxKeys)
	if err != nil {
		return nil, "", s.backendErr("list", err)
	}
	for i := range page {
		page[i].Name = strings.TrimPrefix(page[i].Name, bp)
	}
	next := ""
	if more && len(page) > 0 {
		next = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].Name))
	}
	return page, next, nil
}
