package fnproto_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/muprotocol/mu/libs/fnproto"
)

// fuzzFrameLimit is small so the fuzzer reaches the frame-limit path.
const fuzzFrameLimit = 1 << 10

func direction(toFunction bool) fnproto.Direction {
	if toFunction {
		return fnproto.ToFunction
	}
	return fnproto.FromFunction
}

func wrapsSentinel(err error) bool {
	return errors.Is(err, fnproto.ErrMalformed) || errors.Is(err, fnproto.ErrUnknownKind) || errors.Is(err, fnproto.ErrFrameTooLarge)
}

// FuzzUnmarshal checks that decoding never panics, that every error wraps a
// sentinel, and that whatever decodes re-encodes to the identical bytes
// (the encoding is canonical) and survives a framed round trip.
func FuzzUnmarshal(f *testing.F) {
	for _, g := range goldens {
		frame := unhex(f, g.hex)
		f.Add(g.msg.Direction() == fnproto.ToFunction, uint16(g.msg.Kind()), frame[6:])
	}
	f.Fuzz(func(t *testing.T, toFunction bool, kind uint16, body []byte) {
		dir := direction(toFunction)
		m, err := fnproto.Unmarshal(dir, fnproto.Kind(kind), body)
		if err != nil {
			if m != nil {
				t.Fatalf("message %#v returned with error %v", m, err)
			}
			if !wrapsSentinel(err) {
				t.Fatalf("error %q wraps no sentinel", err)
			}
			return
		}
		if m.Kind() != fnproto.Kind(kind) || m.Direction() != dir {
			t.Fatalf("decoded %T reports (%v, %d), want (%v, %d)", m, m.Direction(), m.Kind(), dir, kind)
		}
		again, err := fnproto.Marshal(m)
		if err != nil {
			t.Fatalf("re-encoding %#v: %v", m, err)
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("re-encoding differs\n got %x\nwant %x", again, body)
		}
		frame, err := fnproto.AppendFrame(nil, m)
		if err != nil {
			t.Fatalf("AppendFrame: %v", err)
		}
		pm, n, err := fnproto.ParseFrame(dir, frame, len(frame))
		if err != nil || n != len(frame) || !reflect.DeepEqual(pm, m) {
			t.Fatalf("ParseFrame(AppendFrame(m)) = (%#v, %d, %v), want (%#v, %d, nil)", pm, n, err, m, len(frame))
		}
	})
}

// FuzzReader feeds arbitrary streams to a Reader (whole or one byte at a
// time) and checks it frame by frame against ParseFrame on the same bytes:
// both must agree on every message, error and frame boundary, and every
// message must re-encode to exactly the bytes it was read from.
func FuzzReader(f *testing.F) {
	for _, seed := range readerSeeds(f) {
		f.Add(seed.toFunction, seed.oneByte, seed.data)
	}
	f.Fuzz(func(t *testing.T, toFunction, oneByte bool, data []byte) {
		dir := direction(toFunction)
		var src io.Reader = bytes.NewReader(data)
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		r := fnproto.NewReader(src, dir, fuzzFrameLimit)
		off := 0
		for {
			m, err := r.Read()
			pm, n, perr := fnproto.ParseFrame(dir, data[off:], fuzzFrameLimit)
			switch {
			case err == io.EOF:
				if off != len(data) {
					t.Fatalf("io.EOF with %d bytes unread", len(data)-off)
				}
				return
			case errors.Is(err, io.ErrUnexpectedEOF):
				if pm != nil || n != 0 || perr != nil {
					t.Fatalf("Reader hit EOF mid-frame but ParseFrame = (%v, %d, %v)", pm, n, perr)
				}
				return
			case err != nil:
				if m != nil || !wrapsSentinel(err) {
					t.Fatalf("Read = (%v, %v): want nil and a sentinel", m, err)
				}
				if perr == nil || perr.Error() != err.Error() {
					t.Fatalf("Reader error %q, ParseFrame error %v", err, perr)
				}
				if n == 0 { // framing error: the stream is lost, and the Reader says so again
					if again, _ := r.Read(); again != nil {
						t.Fatalf("Read after a framing error returned message %#v", again)
					}
					return
				}
				off += n // the bad frame was consumed whole
			default:
				if perr != nil || !reflect.DeepEqual(pm, m) {
					t.Fatalf("Reader read %#v, ParseFrame = (%#v, %v)", m, pm, perr)
				}
				frame, err := fnproto.AppendFrame(nil, m)
				if err != nil {
					t.Fatalf("re-encoding %#v: %v", m, err)
				}
				if !bytes.Equal(frame, data[off:off+n]) {
					t.Fatalf("re-encoded frame differs\n got %x\nwant %x", frame, data[off:off+n])
				}
				off += n
			}
		}
	})
}

type readerSeed struct {
	name       string
	toFunction bool
	oneByte    bool
	data       []byte
}

// readerSeeds returns the FuzzReader seeds: each golden frame, each
// direction's goldens back to back, and some broken streams.
func readerSeeds(tb testing.TB) []readerSeed {
	var seeds []readerSeed
	var all [2][]byte
	for _, g := range goldens {
		frame := unhex(tb, g.hex)
		to := g.msg.Direction() == fnproto.ToFunction
		seeds = append(seeds, readerSeed{name: "golden-" + g.name, toFunction: to, data: frame})
		i := 0
		if to {
			i = 1
		}
		all[i] = append(all[i], frame...)
	}
	seeds = append(seeds,
		readerSeed{name: "goldens-from-function-one-byte", oneByte: true, data: all[0]},
		readerSeed{name: "goldens-to-function", toFunction: true, data: all[1]},
		readerSeed{name: "truncated", data: all[0][:len(all[0])-3]},
		readerSeed{name: "over-limit", data: unhex(tb, `01040000 0300 00`)},
		readerSeed{name: "unknown-kind-then-log", data: unhex(tb, `03000000 3930 ff 0d000000 0300 06000000 68c3a96c6c6f 03`)},
		readerSeed{name: "short-length", toFunction: true, data: unhex(tb, `01000000 01`)},
	)
	return seeds
}

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the generated seed files in testdata/fuzz")

// generatedSeedFiles maps each generated seed file to its contents, in the
// "go test fuzz v1" format.
func generatedSeedFiles(tb testing.TB) map[string]string {
	files := map[string]string{}
	for _, g := range goldens {
		frame := unhex(tb, g.hex)
		files[filepath.Join("FuzzUnmarshal", "golden-"+g.name)] = fmt.Sprintf("go test fuzz v1\nbool(%t)\nuint16(%d)\n[]byte(%q)\n",
			g.msg.Direction() == fnproto.ToFunction, uint16(g.msg.Kind()), frame[6:])
	}
	for _, s := range readerSeeds(tb) {
		files[filepath.Join("FuzzReader", s.name)] = fmt.Sprintf("go test fuzz v1\nbool(%t)\nbool(%t)\n[]byte(%q)\n", s.toFunction, s.oneByte, s.data)
	}
	return files
}

// TestFuzzSeedCorpusUpToDate keeps testdata/fuzz in step with the golden
// vectors. Run with -update-fuzz-seeds to regenerate.
func TestFuzzSeedCorpusUpToDate(t *testing.T) {
	for name, want := range generatedSeedFiles(t) {
		path := filepath.Join("testdata", "fuzz", name)
		if *updateSeeds {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run go test -run TestFuzzSeedCorpusUpToDate -update-fuzz-seeds)", err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s is stale (run go test -run TestFuzzSeedCorpusUpToDate -update-fuzz-seeds)", path)
		}
	}
}
