package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/rpcerr"
	"github.com/muprotocol/mu/services/storage/internal/backend"
	"github.com/muprotocol/mu/services/storage/internal/layout"
	"github.com/muprotocol/mu/services/storage/internal/urlsig"
	"github.com/muprotocol/mu/services/storage/upload"
)

// The HTTP API (http_addr):
//
//	POST /binaries                          signed binary upload (package upload): 201 new, 200 known
//	GET|HEAD|OPTIONS /{stack}/{box}/{key...} public read of a public box; 404 for private boxes
//	GET|HEAD|PUT|OPTIONS /signed/{stack}/{box}/{key...}?m=&exp=&max=&ct=&sig=   signed URLs (SignURL)
//
// Reads honour Range (one range; 206, 416), If-None-Match (304) and If-Range,
// and answer Content-Type, ETag, Last-Modified and Accept-Ranges. Errors are
// text/plain messages that name what failed.
//
// Public reads and signed URLs allow any origin (CORS), so that a page can
// show public objects and upload straight to a signed PUT URL: the URL is
// the credential, and the API uses no cookies. OPTIONS on their paths
// answers the preflight (204); their responses, errors included, carry
// Access-Control-Allow-Origin: * and expose ETag, Content-Length and
// Content-Range. POST /binaries takes no cross-origin requests.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+upload.Path, s.serveUpload)
	mux.HandleFunc("GET /signed/{stack}/{box}/{key...}", cors(s.serveSigned))
	mux.HandleFunc("PUT /signed/{stack}/{box}/{key...}", cors(s.serveSigned))
	mux.HandleFunc("OPTIONS /signed/{stack}/{box}/{key...}", preflight(corsSignedMethods))
	mux.HandleFunc("GET /{stack}/{box}/{key...}", cors(s.servePublic))
	mux.HandleFunc("OPTIONS /{stack}/{box}/{key...}", preflight(corsPublicMethods))
	return mux
}

// The CORS answers of public reads and signed URLs.
const (
	corsSignedMethods = "GET, HEAD, PUT"
	corsPublicMethods = "GET, HEAD"
	corsAllowHeaders  = "Content-Type, Range, If-None-Match"
	corsExposeHeaders = "ETag, Content-Length, Content-Range"
	// corsMaxAge is how long a browser may cache a preflight answer (the
	// answer depends on the path's kind alone).
	corsMaxAge = 24 * time.Hour
)

// cors lets any origin read the responses of h.
func cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", corsExposeHeaders)
		h(w, r)
	}
}

// preflight answers a CORS preflight for a path that allows methods.
func preflight(methods string) http.HandlerFunc {
	maxAge := strconv.Itoa(int(corsMaxAge / time.Second))
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", maxAge)
		h.Set("Allow", "OPTIONS, "+methods)
		w.WriteHeader(http.StatusNoContent)
	}
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}

// statusError answers a status error of the shared operations.
func statusError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.InvalidArgument:
		code = http.StatusBadRequest
		if rpcerr.ReasonOf(err) == rpcerr.RequestTooLarge {
			code = http.StatusRequestEntityTooLarge
		}
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.OutOfRange:
		code = http.StatusRequestedRangeNotSatisfiable
	case codes.Unauthenticated:
		code = http.StatusUnauthorized
	case codes.Unavailable, codes.Aborted:
		code = http.StatusServiceUnavailable
	case codes.Canceled, codes.DeadlineExceeded:
		code = http.StatusRequestTimeout
	}
	httpError(w, code, "%s", st.Message())
}

func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	signed, err := upload.VerifyHeaders(r.Header, s.now(), s.cfg.UploadMaxSkew)
	if err != nil {
		httpError(w, http.StatusUnauthorized, "upload: %v", err)
		return
	}
	if r.ContentLength > s.cfg.MaxBinaryBytes {
		httpError(w, http.StatusRequestEntityTooLarge, "binary: %d bytes is over the limit of %d (max_binary_bytes)", r.ContentLength, s.cfg.MaxBinaryBytes)
		return
	}
	info, existed, err := s.storeBinary(r.Context(), signed, r.Body, r.ContentLength)
	if err != nil {
		statusError(w, err)
		return
	}
	code := http.StatusCreated
	if existed {
		code = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(upload.Result{BinaryID: upload.ID(signed.Digest), Size: uint64(info.Size),
		SHA256: fmt.Sprintf("%x", signed.Digest), AlreadyExisted: existed})
}

// pathObject parses and validates the object of a request path; errors are
// 404s (an invalid name names no object).
func (s *Server) pathObject(r *http.Request) (object, error) {
	stack, err := ids.ParseStackID(r.PathValue("stack"))
	if err != nil {
		return object{}, fmt.Errorf("stack: %v", err)
	}
	box, key := r.PathValue("box"), r.PathValue("key")
	if err := layout.ValidateBox(box); err != nil {
		return object{}, err
	}
	if err := layout.ValidateKey(key, s.cfg.MaxKeyBytes); err != nil {
		return object{}, err
	}
	return object{stack: stack, box: box, key: key}, nil
}

func (s *Server) servePublic(w http.ResponseWriter, r *http.Request) {
	o, err := s.pathObject(r)
	if err != nil {
		httpError(w, http.StatusNotFound, "not found: %v", err)
		return
	}
	exists, public, err := s.box(r.Context(), o.stack, o.box)
	if err != nil {
		statusError(w, err)
		return
	}
	if !exists || !public {
		// A private box looks like a missing one.
		httpError(w, http.StatusNotFound, "not found: no public box %q in stack %s", o.box, o.stack)
		return
	}
	s.serveObject(w, r, o)
}

func (s *Server) serveSigned(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	g, err := urlsig.Verify(s.signKey, method, r.PathValue("stack"), r.PathValue("box"), r.PathValue("key"), r.URL.Query(), s.now())
	if err != nil {
		httpError(w, http.StatusForbidden, "%v", err)
		return
	}
	o, err := s.pathObject(r)
	if err != nil {
		httpError(w, http.StatusNotFound, "not found: %v", err)
		return
	}
	if method == http.MethodGet {
		if _, err := s.needBox(r.Context(), o.stack, o.box); err != nil {
			statusError(w, err)
			return
		}
		s.serveObject(w, r, o)
		return
	}
	limit := min(g.MaxBytes, s.cfg.MaxObjectBytes)
	if r.ContentLength > limit {
		httpError(w, http.StatusRequestEntityTooLarge, "object: %d bytes is over the limit of %d", r.ContentLength, limit)
		return
	}
	o.contentType = g.ContentType
	if o.contentType == "" {
		o.contentType = r.Header.Get("Content-Type")
		if validContentType(o.contentType) != nil {
			o.contentType = ""
		}
	}
	info, err := s.put(r.Context(), o, r.Body, r.ContentLength, limit)
	if err != nil {
		statusError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", `"`+info.ETag+`"`)
	json.NewEncoder(w).Encode(map[string]any{"key": info.Name, "size": info.Size, "etag": info.ETag, "content_type": info.ContentType})
}

// serveObject streams an object with HTTP caching and range semantics.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, o object) {
	ctx := r.Context()
	name := layout.ObjectName(o.stack, o.box, o.key)
	for attempt := 0; ; attempt++ {
		st, err := s.store.Stat(ctx, name)
		if errors.Is(err, backend.ErrNotFound) {
			httpError(w, http.StatusNotFound, "not found: no object %q in box %q", o.key, o.box)
			return
		} else if err != nil {
			statusError(w, s.backendErr("read", err))
			return
		}
		etag := `"` + st.ETag + `"`
		h := w.Header()
		h.Set("ETag", etag)
		h.Set("Accept-Ranges", "bytes")
		h.Set("Last-Modified", st.LastModified.UTC().Format(http.TimeFormat))
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		off, n, partial, ok := parseRange(r.Header.Get("Range"), st.Size)
		if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
			off, n, partial, ok = 0, st.Size, false, true
		}
		if !ok {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", st.Size))
			httpError(w, http.StatusRequestedRangeNotSatisfiable, "range: %q does not fit an object of %d bytes", r.Header.Get("Range"), st.Size)
			return
		}
		if r.Method == http.MethodHead {
			writeObjectHeaders(w, st, off, n, partial)
			return
		}
		rc, info, err := s.store.Get(ctx, name, off, n)
		if err != nil {
			if errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrOutOfRange) {
				if attempt < 2 {
					continue // replaced or deleted since the Stat
				}
			}
			statusError(w, s.backendErr("read", err))
			return
		}
		if info.ETag != st.ETag {
			rc.Close()
			if attempt < 2 {
				continue // replaced between Stat and Get
			}
			httpError(w, http.StatusServiceUnavailable, "object is being replaced; retry")
			return
		}
		writeObjectHeaders(w, st, off, n, partial)
		mr := &meteredReader{ReadCloser: rc}
		_, err = io.CopyBuffer(w, mr, make([]byte, s.cfg.ChunkBytes))
		rc.Close()
		s.traffic(o.stack, mr.n, false)
		if err != nil {
			s.log.Debug("read cut short", "stack", o.stack.String(), "box", o.box, "err", err)
		}
		return
	}
}

func writeObjectHeaders(w http.ResponseWriter, st backend.Info, off, n int64, partial bool) {
	h := w.Header()
	ct := st.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, st.Size))
		w.WriteHeader(http.StatusPartialContent)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// parseRange reads a single-range "bytes=" header against size. No header,
// another unit or several ranges serve the whole object (RFC 9110 lets a
// server ignore Range); ok is false for a range that cannot be satisfied.
func parseRange(v string, size int64) (off, n int64, partial, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if v == "" || !found || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" { // suffix: the last b bytes
		k, err := strconv.ParseInt(b, 10, 64)
		if err != nil || k <= 0 || size == 0 {
			return 0, 0, false, false
		}
		k = min(k, size)
		return size - k, k, true, true
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false, false
	}
	end := size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, false, false
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, true, true
}
