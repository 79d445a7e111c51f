package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"google.golang.org/protobuf/proto"

	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// The files in Config.Dir.
const (
	// ViewFile holds the view and its history (format below).
	ViewFile = "view.bin"
	// SequenceFile holds the sequence reservation, in decimal.
	SequenceFile = "sequence"
)

// The view file, all integers little-endian:
//
//	magic "MUCIVIEW", version u32 (1), flags u32 (bit 0: written by Close)
//	slot u64, last sequence u64, horizon u64, synced-at unix nanoseconds i64 (0: never)
//	gap count u32, then per gap: first u64, last u64
//	record count u64, then per record:
//	  flags u8 (bit 0: in history, 1: current state, 2: delete, 3: previously authorized)
//	  kind u8, sequence uvarint, slot uvarint, length uvarint, the object's protobuf encoding
//	CRC-32C u32 of everything before it
const (
	viewMagic   = "MUCIVIEW"
	viewVersion = 1
	headerSize  = 8 + 4 + 4 + 8*4 + 4
	// minRecord is the fewest bytes a record takes (flags, kind and three
	// one-byte varints).
	minRecord = 5
)

const (
	recHistory = 1 << iota
	recCurrent
	recDelete
	recPrevAuthorized
	recKnown = recHistory | recCurrent | recDelete | recPrevAuthorized
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// viewFile is the content of the view file.
type viewFile struct {
	clean    bool
	slot     uint64
	lastSeq  uint64
	horizon  uint64
	gaps     []gap
	syncedAt time.Time
	history  []*Event // in sequence order
	current  []*Event // the current state of every object
}

// badFileError is a file in Dir that cannot be used.
type badFileError struct {
	path, why string
}

func (e *badFileError) Error() string { return e.path + ": " + e.why }

var errNoFile = errors.New("no file")

// encodeView renders v.
func encodeView(v *viewFile) ([]byte, error) {
	cur := make(map[*Event]bool, len(v.current))
	for _, e := range v.current {
		cur[e] = true
	}
	var b []byte
	b = append(b, viewMagic...)
	b = binary.LittleEndian.AppendUint32(b, viewVersion)
	var flags uint32
	if v.clean {
		flags |= 1
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, v.slot)
	b = binary.LittleEndian.AppendUint64(b, v.lastSeq)
	b = binary.LittleEndian.AppendUint64(b, v.horizon)
	var synced int64
	if !v.syncedAt.IsZero() {
		synced = v.syncedAt.UnixNano()
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(synced))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v.gaps)))
	for _, g := range v.gaps {
		b = binary.LittleEndian.AppendUint64(b, g.lo)
		b = binary.LittleEndian.AppendUint64(b, g.hi)
	}
	var recs []*Event
	var recFlags []byte
	for _, e := range v.history {
		f := byte(recHistory)
		if cur[e] {
			f |= recCurrent
			delete(cur, e)
		}
		recs, recFlags = append(recs, e), append(recFlags, f)
	}
	for _, e := range v.current {
		if cur[e] {
			recs, recFlags = append(recs, e), append(recFlags, recCurrent)
		}
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(recs)))
	for i, e := range recs {
		f := recFlags[i]
		if e.Delete {
			f |= recDelete
		}
		if e.PrevAuthorized {
			f |= recPrevAuthorized
		}
		var msg proto.Message
		switch e.Kind() {
		case KindProvider:
			msg = e.Provider
		case KindRegion:
			msg = e.Region
		case KindStack:
			msg = e.Stack
		case KindEscrow:
			msg = e.Escrow
		default:
			return nil, fmt.Errorf("index: event %d has no object", e.Seq)
		}
		body, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
		if err != nil {
			return nil, fmt.Errorf("index: encode event %d: %w", e.Seq, err)
		}
		b = append(b, f, byte(e.Kind()))
		b = binary.AppendUvarint(b, e.Seq)
		b = binary.AppendUvarint(b, e.Slot)
		b = binary.AppendUvarint(b, uint64(len(body)))
		b = append(b, body...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable)), nil
}

// decoder reads the view file's fields, remembering the first problem.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) u32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// decodeView parses and checks a view file: it never panics, and every
// view it returns satisfies the index's invariants (history in order and
// above the horizon, one current state per object, ids of 32 bytes).
func decodeView(b []byte) (*viewFile, error) {
	if len(b) < headerSize+4 {
		return nil, fmt.Errorf("%d bytes, shorter than a header", len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, errors.New("checksum mismatch")
	}
	if string(body[:len(viewMagic)]) != viewMagic {
		return nil, errors.New("not a view file")
	}
	d := &decoder{b: body[len(viewMagic):]}
	if ver := d.u32(); ver != viewVersion {
		return nil, fmt.Errorf("version %d, want %d", ver, viewVersion)
	}
	flags := d.u32()
	if flags&^1 != 0 {
		return nil, fmt.Errorf("unknown flags %#x", flags)
	}
	v := &viewFile{clean: flags&1 != 0}
	v.slot, v.lastSeq, v.horizon = d.u64(), d.u64(), d.u64()
	if synced := int64(d.u64()); synced != 0 {
		v.syncedAt = time.Unix(0, synced)
	}
	if v.horizon > v.lastSeq {
		d.fail("horizon %d above the last sequence %d", v.horizon, v.lastSeq)
	}
	ngaps := d.u32()
	if d.err == nil && uint64(ngaps) > uint64(len(d.b))/16 {
		d.fail("%d gaps do not fit the file", ngaps)
	}
	for i := uint32(0); i < ngaps && d.err == nil; i++ {
		g := gap{d.u64(), d.u64()}
		if g.lo > g.hi || g.lo <= v.horizon || g.hi > v.lastSeq {
			d.fail("gap %d..%d outside (horizon %d, last sequence %d]", g.lo, g.hi, v.horizon, v.lastSeq)
		}
		v.gaps = append(v.gaps, g)
	}
	n := d.u64()
	if d.err == nil && n > uint64(len(d.b))/minRecord {
		d.fail("%d records do not fit the file", n)
	}
	keys := map[Kind]map[string]bool{}
	for _, k := range Kinds {
		keys[k] = map[string]bool{}
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		f, kind := d.byte1(), Kind(d.byte1())
		e := &Event{Seq: d.uvarint(), Slot: d.uvarint(), Delete: f&recDelete != 0, PrevAuthorized: f&recPrevAuthorized != 0}
		size := d.uvarint()
		if d.err != nil {
			break
		}
		if size > uint64(len(d.b)) {
			d.fail("record %d: %d bytes do not fit the file", i, size)
			break
		}
		raw := d.b[:size]
		d.b = d.b[size:]
		var err error
		switch kind {
		case KindProvider:
			e.Provider = new(chainindexerv1.Provider)
			err = proto.Unmarshal(raw, e.Provider)
		case KindRegion:
			e.Region = new(chainindexerv1.Region)
			err = proto.Unmarshal(raw, e.Region)
		case KindStack:
			e.Stack = new(chainindexerv1.Stack)
			err = proto.Unmarshal(raw, e.Stack)
		case KindEscrow:
			e.Escrow = new(chainindexerv1.Escrow)
			err = proto.Unmarshal(raw, e.Escrow)
		default:
			d.fail("record %d: unknown kind %d", i, kind)
			continue
		}
		switch {
		case err != nil:
			d.fail("record %d: %v", i, err)
		case f&^recKnown != 0 || f&(recHistory|recCurrent) == 0:
			d.fail("record %d: bad flags %#x", i, f)
		case f&recCurrent != 0 && e.Delete:
			d.fail("record %d: a delete cannot be a current state", i)
		case e.Seq == 0 || e.Seq > v.lastSeq:
			d.fail("record %d: sequence %d outside 1..%d", i, e.Seq, v.lastSeq)
		}
		if err := e.check(); err != nil {
			d.fail("record %d: %v", i, err)
		}
		if d.err != nil {
			break
		}
		if f&recHistory != 0 {
			if e.Seq <= v.horizon || (len(v.history) > 0 && e.Seq <= v.history[len(v.history)-1].Seq) {
				d.fail("record %d: history sequence %d out of order", i, e.Seq)
			}
			v.history = append(v.history, e)
		} else if e.Seq > v.horizon {
			d.fail("record %d: current state %d above the horizon but not in the history", i, e.Seq)
		}
		if f&recCurrent != 0 {
			if keys[kind][e.Key()] {
				d.fail("record %d: two current states of one %s", i, kind)
			}
			keys[kind][e.Key()] = true
			v.current = append(v.current, e)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the last record", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return v, nil
}

// loadView reads the view file of dir: nil when there is none, a
// *badFileError (after renaming the file aside) when it cannot be used.
func loadView(dir string, now time.Time) (*viewFile, error) {
	path := filepath.Join(dir, ViewFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	v, err := decodeView(b)
	if err != nil {
		aside := fmt.Sprintf("%s.bad-%d", path, now.UnixNano())
		why := err.Error()
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("index: %s is unusable (%s) and cannot be set aside: %w", path, why, rerr)
		}
		return nil, &badFileError{path: path, why: why + "; set aside as " + filepath.Base(aside)}
	}
	return v, nil
}

// writeView replaces the view file of dir atomically.
func writeView(dir string, v *viewFile) error {
	b, err := encodeView(v)
	if err != nil {
		return err
	}
	return writeFile(dir, ViewFile, b)
}

// loadReserve reads the sequence reservation: errNoFile when there is
// none, a *badFileError when it cannot be parsed.
func loadReserve(dir string) (uint64, error) {
	path := filepath.Join(dir, SequenceFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errNoFile
	}
	if err != nil {
		return 0, fmt.Errorf("index: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v == 0 {
		return 0, &badFileError{path: path, why: fmt.Sprintf("%.40q is not a sequence", b)}
	}
	return v, nil
}

// writeReserve records that sequences up to upTo may be issued.
func writeReserve(dir string, upTo uint64) error {
	return writeFile(dir, SequenceFile, []byte(strconv.FormatUint(upTo, 10)+"\n"))
}

// writeFile replaces dir/name with b: a temporary file in dir, fsync,
// rename, then fsync of dir, so after a crash the file holds either the
// old or the new content, and the new one once writeFile returned.
func writeFile(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if err := renameio.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		return fmt.Errorf("index: write %s: %w", name, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("index: sync %s: %w", dir, err)
	}
	return nil
}
