package backend

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Dir is a Backend on a local directory, the embedded default of `mu run`.
//
// Layout: every object is one file, root/o/<hh>/<sha256 hex of its name>,
// holding the content followed by a trailer (JSON metadata, its u32
// big-endian length, and the magic "MUO1"). Names never become paths, so no
// name can reach outside root or collide with another ("a" and "a/b"
// coexist). A Put writes root/tmp/<random>, syncs it and renames it into
// place: readers see the old object or the new one, never a part. Open
// rebuilds the sorted name index from the trailers, so List is a binary
// search in memory.
type Dir struct {
	root string

	mu    sync.RWMutex
	names []string        // sorted
	infos map[string]Info // by name, Meta included
}

const (
	dirMagic      = "MUO1"
	trailerFixed  = 8 // u32 length + magic
	maxTrailerLen = 1 << 20
)

type dirTrailer struct {
	Name        string            `json:"name"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"`
	ContentType string            `json:"content_type,omitempty"`
	Modified    int64             `json:"modified_unix_nano"`
	Meta        map[string]string `json:"meta,omitempty"`
}

// OpenDir opens (creating it if needed) a directory backend at root and
// loads its index. Left-over temporary files of an interrupted Put are
// removed.
func OpenDir(root string) (*Dir, error) {
	d := &Dir{root: root, infos: make(map[string]Info)}
	if err := os.RemoveAll(filepath.Join(root, "tmp")); err != nil {
		return nil, fmt.Errorf("dir backend: clear tmp: %w", err)
	}
	for _, sub := range []string{"o", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o755); err != nil {
			return nil, fmt.Errorf("dir backend: %w", err)
		}
	}
	err := filepath.WalkDir(filepath.Join(root, "o"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		info, _, err := readTrailer(f)
		if err != nil || d.path(info.Name) != path {
			return nil // not one of ours, or torn by a crash of the disk: ignore it
		}
		d.infos[info.Name] = info
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dir backend: load index: %w", err)
	}
	d.names = make([]string, 0, len(d.infos))
	for n := range d.infos {
		d.names = append(d.names, n)
	}
	sort.Strings(d.names)
	return d, nil
}

func (d *Dir) path(name string) string {
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(d.root, "o", h[:2], h)
}

// readTrailer reads the trailer of an object file and returns its Info and
// where the content ends.
func readTrailer(f *os.File) (Info, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return Info{}, 0, err
	}
	if st.Size() < trailerFixed {
		return Info{}, 0, errors.New("dir backend: short object file")
	}
	var fixed [trailerFixed]byte
	if _, err := f.ReadAt(fixed[:], st.Size()-trailerFixed); err != nil {
		return Info{}, 0, err
	}
	if string(fixed[4:]) != dirMagic {
		return Info{}, 0, errors.New("dir backend: bad object trailer")
	}
	n := int64(binary.BigEndian.Uint32(fixed[:4]))
	if n > maxTrailerLen || n > st.Size()-trailerFixed {
		return Info{}, 0, errors.New("dir backend: bad object trailer length")
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, st.Size()-trailerFixed-n); err != nil {
		return Info{}, 0, err
	}
	var t dirTrailer
	if err := json.Unmarshal(buf, &t); err != nil {
		return Info{}, 0, fmt.Errorf("dir backend: object trailer: %w", err)
	}
	end := st.Size() - trailerFixed - n
	if t.Size != end {
		return Info{}, 0, errors.New("dir backend: object trailer size mismatch")
	}
	return Info{Name: t.Name, Size: t.Size, ETag: t.ETag, ContentType: t.ContentType,
		LastModified: time.Unix(0, t.Modified), Meta: t.Meta}, end, nil
}

// ctxReader fails reads once ctx ends, so a Put of a slow stream stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put implements Backend.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader, opts PutOptions) (Info, error) {
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("dir backend: put %q: %w", name, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return Info{}, fmt.Errorf("dir backend: put %q: %w", name, err)
	}
	info := Info{Name: name, Size: n, ETag: hex.EncodeToString(h.Sum(nil)), ContentType: opts.ContentType,
		LastModified: time.Now().Round(0), Meta: lowerKeys(opts.Meta)}
	tr, err := json.Marshal(dirTrailer{Name: name, Size: n, ETag: info.ETag, ContentType: info.ContentType,
		Modified: info.LastModified.UnixNano(), Meta: info.Meta})
	if err != nil {
		return Info{}, err
	}
	var fixed [trailerFixed]byte
	binary.BigEndian.PutUint32(fixed[:4], uint32(len(tr)))
	copy(fixed[4:], dirMagic)
	if _, err := tmp.Write(append(tr, fixed[:]...)); err != nil {
		return Info{}, fmt.Errorf("dir backend: put %q: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("dir backend: put %q: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("dir backend: put %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("dir backend: put %q: %w", name, err)
	}
	dst := d.path(name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Info{}, fmt.Errorf("dir backend: put %q: %w", name, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Info{}, fmt.Errorf("dir backend: put %q: %w", name, err)
	}
	committed = true
	if _, ok := d.infos[name]; !ok {
		i := sort.SearchStrings(d.names, name)
		d.names = append(d.names, "")
		copy(d.names[i+1:], d.names[i:])
		d.names[i] = name
	}
	d.infos[name] = info
	return info, nil
}

func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

type fileSection struct {
	*io.SectionReader
	f *os.File
}

func (s fileSection) Close() error { return s.f.Close() }

// Get implements Backend.
func (d *Dir) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(d.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, fmt.Errorf("%q: %w", name, ErrNotFound)
	} else if err != nil {
		return nil, Info{}, fmt.Errorf("dir backend: get %q: %w", name, err)
	}
	info, end, err := readTrailer(f)
	if err == nil && info.Name != name {
		err = errors.New("dir backend: object file names another object")
	}
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("dir backend: get %q: %w", name, err)
	}
	if offset > end {
		f.Close()
		return nil, Info{}, fmt.Errorf("%q: offset %d, size %d: %w", name, offset, end, ErrOutOfRange)
	}
	n := end - offset
	if length >= 0 && length < n {
		n = length
	}
	return fileSection{io.NewSectionReader(f, offset, n), f}, info, nil
}

// Stat implements Backend.
func (d *Dir) Stat(ctx context.Context, name string) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	info, ok := d.infos[name]
	if !ok {
		return Info{}, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	return info, nil
}

// Delete implements Backend.
func (d *Dir) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deleteLocked(name)
}

func (d *Dir) deleteLocked(name string) error {
	if _, ok := d.infos[name]; !ok {
		return nil
	}
	if err := os.Remove(d.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dir backend: delete %q: %w", name, err)
	}
	delete(d.infos, name)
	i := sort.SearchStrings(d.names, name)
	d.names = append(d.names[:i], d.names[i+1:]...)
	return nil
}

// List implements Backend.
func (d *Dir) List(ctx context.Context, prefix, startAfter string, max int) ([]Info, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	i := sort.SearchStrings(d.names, prefix)
	if startAfter >= prefix {
		i = sort.SearchStrings(d.names, startAfter+"\x00")
	}
	var out []Info
	for ; i < len(d.names) && strings.HasPrefix(d.names[i], prefix); i++ {
		if len(out) == max {
			return out, true, nil
		}
		info := d.infos[d.names[i]]
		info.Meta = nil
		out = append(out, info)
	}
	return out, false, nil
}

// DeletePrefix implements Backend.
func (d *Dir) DeletePrefix(ctx context.Context, prefix string) (int64, int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := sort.SearchStrings(d.names, prefix)
	j := i
	for j < len(d.names) && strings.HasPrefix(d.names[j], prefix) {
		j++
	}
	victims := append([]string(nil), d.names[i:j]...)
	var objects, size int64
	for _, n := range victims {
		if err := ctx.Err(); err != nil {
			return objects, size, err
		}
		sz := d.infos[n].Size
		if err := d.deleteLocked(n); err != nil {
			return objects, size, err
		}
		objects++
		size += sz
	}
	return objects, size, nil
}

var _ Backend = (*Dir)(nil)
