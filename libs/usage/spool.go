package usage

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/muprotocol/mu/libs/ids"
)

// The spool keeps the records a Batcher has queued but the sink has not
// accepted in append-only segment files, so that a crash of the process
// loses none of them.
//
// Directory layout:
//
//	LOCK                      flock(2)ed while a Batcher has the directory open
//	acked                     the ack cursor: u64 LE sequence number + u32 LE CRC-32C
//	seg-<20 digit seq>.log    segments, named by the first sequence number they may hold
//
// A segment is a series of frames, one per Add call:
//
//	u32 LE payload length | u32 LE CRC-32C of payload | payload
//	payload = uvarint first seq | uvarint count | count records
//	record  = stack (32) | uvarint kind | uvarint amount |
//	          u8 has time | [varint unix nanoseconds] | uvarint len(key) | key
//
// Every record has a sequence number, increasing across restarts; the
// cursor says that every record below it was accepted by the sink.
const (
	lockName    = "LOCK"
	cursorName  = "acked"
	segPrefix   = "seg-"
	segSuffix   = ".log"
	frameHeader = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolLocked is returned (wrapped) when another Batcher holds the
// spool directory.
var ErrSpoolLocked = errors.New("usage: spool directory is in use by another batcher")

type segment struct {
	first uint64 // the least sequence number the segment may hold
	path  string
}

// spool is a Batcher's disk queue. Its methods are called with spool.mu
// held by the caller unless they say otherwise.
type spool struct {
	dir      string
	segBytes int64
	log      *slog.Logger

	lock *os.File

	mu       sync.Mutex // orders appends; guards everything below
	segs     []segment  // oldest first; the last is active
	active   *os.File
	size     int64 // bytes in active
	next     uint64
	buf      []byte
	dirty    bool       // active written since the last sync
	toSync   []*os.File // rotated segments still to fsync and close
	dirDirty bool       // segments created or removed since the last sync
	broken   bool       // the active segment could not be repaired after a failed write
	errs     uint64     // failed appends (their records stayed in memory only)
	cursor   uint64     // last cursor written
	closed   bool
}

// openSpool locks dir, recovers the records not yet acknowledged (in
// order, with their sequence numbers) and starts a fresh active segment.
func openSpool(dir string, segBytes int64, log *slog.Logger) (*spool, []Record, []uint64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("usage: spool dir: %w", err)
	}
	lockPath := filepath.Join(dir, lockName)
	lf, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("usage: spool lock: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, nil, fmt.Errorf("%w: %s is locked (usage_spool_dir must differ per service and node)", ErrSpoolLocked, lockPath)
		}
		return nil, nil, nil, fmt.Errorf("usage: spool lock %s: %w", lockPath, err)
	}
	s := &spool{dir: dir, segBytes: segBytes, log: log, lock: lf}
	recs, seqs, err := s.recover()
	if err != nil {
		lf.Close()
		return nil, nil, nil, err
	}
	if err := s.rotate(); err != nil {
		lf.Close()
		return nil, nil, nil, err
	}
	return s, recs, seqs, nil
}

func (s *spool) segPath(first uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", segPrefix, first, segSuffix))
}

// readCursor returns the persisted cursor, 0 when there is none or it is
// damaged (then every spooled record is resent: billing drops the ones it
// has by their keys).
func (s *spool) readCursor() uint64 {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorName))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		s.log.Warn("usage spool: ack cursor unreadable; resending every spooled record (billing drops the known keys)",
			"dir", s.dir, "err", err, "bytes", len(b))
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (s *spool) recover() ([]Record, []uint64, error) {
	s.cursor = s.readCursor()
	s.next = s.cursor
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("usage: spool dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			if strings.HasSuffix(name, ".tmp") {
				_ = os.Remove(filepath.Join(s.dir, name)) // a cursor write cut short
			}
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
		if err != nil {
			continue
		}
		s.segs = append(s.segs, segment{first: first, path: filepath.Join(s.dir, name)})
	}
	slices.SortFunc(s.segs, func(a, b segment) int { return cmp.Compare(a.first, b.first) })
	var recs []Record
	var seqs []uint64
	var end uint64 // the end of the frames read so far
	for _, seg := range s.segs {
		end = max(end, seg.first)
		if err := s.readSegment(seg, &end, &recs, &seqs); err != nil {
			return nil, nil, err
		}
	}
	s.next = max(s.cursor, end)
	// Drop the segments that hold nothing unacknowledged.
	s.remove(s.deleteAcked(s.cursor, true))
	return recs, seqs, nil
}

// readSegment appends the unacknowledged records of seg and truncates it
// at the first frame that is torn or damaged.
func (s *spool) readSegment(seg segment, end *uint64, recs *[]Record, seqs *[]uint64) error {
	data, err := os.ReadFile(seg.path)
	if err != nil {
		return fmt.Errorf("usage: spool: read %s: %w", seg.path, err)
	}
	off := 0
	for off < len(data) {
		n, frameRecs, first, reason := decodeFrame(data[off:], *end)
		if reason != "" {
			s.log.Warn("usage spool: torn or damaged tail dropped", "segment", seg.path,
				"offset", off, "dropped_bytes", len(data)-off, "reason", reason)
			if err := os.Truncate(seg.path, int64(off)); err != nil {
				return fmt.Errorf("usage: spool: truncate %s: %w", seg.path, err)
			}
			break
		}
		for i, r := range frameRecs {
			if seq := first + uint64(i); seq >= s.cursor {
				*recs = append(*recs, r)
				*seqs = append(*seqs, seq)
			}
		}
		*end = first + uint64(len(frameRecs))
		off += n
	}
	return nil
}

// decodeFrame decodes the frame at the start of b, whose first sequence
// number must be at least minSeq. It returns the frame's length, or a
// reason why b does not start with a whole, valid frame.
func decodeFrame(b []byte, minSeq uint64) (n int, recs []Record, first uint64, reason string) {
	if len(b) < frameHeader {
		return 0, nil, 0, fmt.Sprintf("%d bytes left, a frame header is %d", len(b), frameHeader)
	}
	plen := binary.LittleEndian.Uint32(b)
	if uint64(plen) > uint64(len(b)-frameHeader) {
		return 0, nil, 0, fmt.Sprintf("frame of %d bytes, %d left", plen, len(b)-frameHeader)
	}
	p := b[frameHeader : frameHeader+int(plen)]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, 0, "checksum mismatch"
	}
	d := decoder{b: p}
	first = d.uvarint()
	count := d.uvarint()
	if d.err == nil && count > uint64(len(p)) { // every record takes 35+ bytes
		d.err = errors.New("record count larger than the frame")
	}
	if d.err == nil && first < minSeq {
		d.err = fmt.Errorf("sequence %d goes back (expected %d or more)", first, minSeq)
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		recs = append(recs, d.record())
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the records", len(d.b))
	}
	if d.err != nil {
		return 0, nil, 0, d.err.Error()
	}
	return frameHeader + int(plen), recs, first, ""
}

func appendFrame(buf []byte, first uint64, recs []Record) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeader)...)
	buf = binary.AppendUvarint(buf, first)
	buf = binary.AppendUvarint(buf, uint64(len(recs)))
	for _, r := range recs {
		buf = append(buf, r.Stack[:]...)
		buf = binary.AppendUvarint(buf, uint64(r.Kind))
		buf = binary.AppendUvarint(buf, r.Amount)
		if r.Time.IsZero() {
			buf = append(buf, 0)
		} else {
			buf = append(buf, 1)
			buf = binary.AppendVarint(buf, r.Time.UnixNano())
		}
		buf = binary.AppendUvarint(buf, uint64(len(r.Key)))
		buf = append(buf, r.Key...)
	}
	p := buf[start+frameHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(p)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(p, castagnoli))
	return buf
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) record() Record {
	var r Record
	copy(r.Stack[:], d.take(uint64(len(ids.StackID{}))))
	r.Kind = Kind(d.uvarint())
	r.Amount = d.uvarint()
	switch t := d.take(1); {
	case d.err != nil:
	case t[0] == 1:
		v, n := binary.Varint(d.b)
		if n <= 0 {
			d.err = errors.New("bad time")
			break
		}
		d.b = d.b[n:]
		r.Time = time.Unix(0, v)
	case t[0] != 0:
		d.err = fmt.Errorf("bad time flag %d", t[0])
	}
	r.Key = string(d.take(d.uvarint()))
	return r
}

// rotate starts a new active segment at s.next; the old one is fsynced
// and closed by the next sync.
func (s *spool) rotate() error {
	path := s.segPath(s.next)
	// A segment of this name can only be one that holds no frame (else
	// next would be past its name): start it over.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("usage: spool: new segment: %w", err)
	}
	if s.active != nil {
		s.toSync = append(s.toSync, s.active)
	}
	if n := len(s.segs); n == 0 || s.segs[n-1].path != path {
		s.segs = append(s.segs, segment{first: s.next, path: path})
	}
	s.active, s.size, s.broken, s.dirDirty = f, 0, false, true
	return nil
}

// append writes the records of one Add as one frame with one write(2),
// giving them sequence numbers from s.next. It returns the first sequence
// number and whether the records are on disk; when they are not (the
// write failed), they are still queued in memory and the failure is
// logged.
func (s *spool) append(recs []Record) (first uint64, onDisk bool) {
	if !s.closed && (s.broken || s.size >= s.segBytes) {
		if err := s.rotate(); err != nil { // names the segment s.next: before the records take it
			first = s.next
			s.next += uint64(len(recs))
			s.failed(len(recs), err)
			return first, false
		}
	}
	first = s.next
	s.next += uint64(len(recs))
	if s.closed {
		return first, false
	}
	s.buf = appendFrame(s.buf[:0], first, recs)
	n, err := s.active.Write(s.buf)
	if err != nil {
		// Cut the partial frame off so that later frames stay readable;
		// if that fails too, the next Add starts a new segment.
		if n > 0 {
			if terr := s.active.Truncate(s.size); terr != nil {
				s.broken = true
			}
		}
		s.failed(len(recs), err)
		return first, false
	}
	s.size += int64(n)
	s.dirty = true
	if cap(s.buf) > 1<<20 {
		s.buf = nil // one huge Add should not pin its buffer
	}
	return first, true
}

func (s *spool) failed(records int, err error) {
	s.errs++
	s.log.Error("usage spool: write failed; these records are kept in memory only until they are sent",
		"dir", s.dir, "records", records, "err", err)
}

// ack persists cursor (every record below it was accepted) by temp file,
// fsync and rename, and deletes the segments it covers. Only the Batcher's
// worker calls it, one call at a time; it holds s.mu only to read and
// update the segment list, not during the file operations, so Adds do not
// wait for the fsync.
func (s *spool) ack(cursor uint64) {
	s.mu.Lock()
	stale := s.closed || cursor <= s.cursor
	s.mu.Unlock()
	if stale {
		return
	}
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], cursor)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	path := filepath.Join(s.dir, cursorName)
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b[:]); err != nil {
		s.log.Warn("usage spool: ack cursor not saved; those records may be resent after a restart (billing drops them by key)", "err", err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		s.log.Warn("usage spool: ack cursor not saved; those records may be resent after a restart (billing drops them by key)", "err", err)
		return
	}
	s.mu.Lock()
	s.cursor = cursor
	s.dirDirty = true
	gone := s.deleteAcked(cursor, false)
	s.mu.Unlock()
	s.remove(gone)
}

// remove deletes acknowledged segment files.
func (s *spool) remove(paths []string) {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("usage spool: acknowledged segment not removed; it is removed at the next start", "segment", p, "err", err)
		}
	}
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// deleteAcked drops from the list every segment, except the active one,
// all of whose records are below cursor, and returns their paths for
// remove. At recovery (no active segment yet) the last segment may go too
// when it is entirely acknowledged.
func (s *spool) deleteAcked(cursor uint64, recovering bool) (gone []string) {
	keep := s.segs[:0]
	for i, seg := range s.segs {
		var end uint64 // every record of seg is below end
		switch {
		case i < len(s.segs)-1:
			end = s.segs[i+1].first
		case recovering:
			end = s.next
		default:
			keep = append(keep, seg) // the active segment
			continue
		}
		if end <= cursor {
			gone = append(gone, seg.path)
			s.dirDirty = true
			continue
		}
		keep = append(keep, seg)
	}
	s.segs = keep
	return gone
}

// sync fsyncs what was written since the last sync. It takes s.mu only
// to collect the files, not during the fsyncs.
func (s *spool) sync() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var active *os.File
	if s.dirty {
		active, s.dirty = s.active, false
	}
	rotated := s.toSync
	s.toSync = nil
	dirDirty := s.dirDirty
	s.dirDirty = false
	s.mu.Unlock()
	for _, f := range rotated {
		if err := f.Sync(); err != nil {
			s.log.Warn("usage spool: fsync failed", "segment", f.Name(), "err", err)
		}
		f.Close()
	}
	if active != nil {
		// active may be rotated and closed meanwhile; then the close
		// path has synced it.
		if err := active.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			s.log.Warn("usage spool: fsync failed", "segment", active.Name(), "err", err)
		}
	}
	if dirDirty {
		if d, err := os.Open(s.dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
}

// close fsyncs and closes the files and releases the lock. It takes s.mu.
func (s *spool) close() error {
	s.sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, f := range append(s.toSync, s.active) {
		if f == nil {
			continue
		}
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.toSync, s.active = nil, nil
	errs = append(errs, s.lock.Close()) // releases the flock
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("usage: spool %s: close: %w", s.dir, err)
	}
	return nil
}
