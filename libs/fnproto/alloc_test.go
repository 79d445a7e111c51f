package fnproto_test

import (
	"errors"
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

func TestAppendFrame_NoAllocationWhenCapacitySuffices(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	for _, tc := range roundTripCases() {
		buf := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := fnproto.AppendFrame(buf[:0], tc.in); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: AppendFrame allocated %.1f times with a large enough buffer", tc.name, allocs)
		}
	}
}

func TestWriter_NoAllocationPerFrame(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	w := fnproto.NewWriter(io.Discard)
	m := benchExecuteFunction()
	if err := w.Write(m); err != nil { // sizes the buffer
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Writer.Write allocated %.1f times per frame", allocs)
	}
}

// repeatReader yields the same bytes forever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// TestReader_ReusesItsBuffer checks that reading a frame allocates exactly
// what decoding its body does: the frame buffer itself is reused.
func TestReader_ReusesItsBuffer(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	m := benchExecuteFunction()
	frame := framesOf(t, m)
	r := fnproto.NewReader(&repeatReader{data: frame}, fnproto.ToFunction, 0)
	if _, err := r.Read(); err != nil { // sizes the buffer
		t.Fatal(err)
	}
	readAllocs := testing.AllocsPerRun(100, func() {
		if _, err := r.Read(); err != nil {
			t.Fatal(err)
		}
	})
	decodeAllocs := testing.AllocsPerRun(100, func() {
		if _, err := fnproto.Unmarshal(fnproto.ToFunction, fnproto.KindExecuteFunction, frame[6:]); err != nil {
			t.Fatal(err)
		}
	})
	if readAllocs != decodeAllocs {
		t.Errorf("Reader.Read allocates %.1f times per frame, decoding alone %.1f", readAllocs, decodeAllocs)
	}
}

// bytesAllocated returns the bytes allocated per call of f.
func bytesAllocated(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	f() // warm up
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestDecode_HostileLengthsDoNotAllocate decodes tiny frames that declare
// huge strings, byte arrays and element counts: each must fail without
// allocating anything near the declared size.
func TestDecode_HostileLengthsDoNotAllocate(t *testing.T) {
	tests := []struct {
		name  string
		dir   fnproto.Direction
		frame string
	}{
		{"4 GiB string", fnproto.FromFunction, `0a000000 0300  ffffffff 6162 03 00`},
		{"4 GiB byte array", fnproto.FromFunction, `0c000000 ea03  01000000 74  ffffffff 00`},
		{"4 GiB option payload", fnproto.ToFunction, `09000000 ea03  01 ffffffff 0000`},
		{"4G list elements", fnproto.ToFunction, `0a000000 eb03  ffffffff 00000000`},
		{"4G map entries", fnproto.ToFunction, `12000000 0100  01000000 66 03000000 474554 ffffffff`},
		{"4G headers", fnproto.FromFunction, `0a000000 0200  c800 ffffffff 0000`},
		{"4 GiB frame", fnproto.FromFunction, `ffffffff 0300`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := unhex(t, tc.frame)
			var perr error
			perBytes := bytesAllocated(2000, func() {
				_, _, perr = fnproto.ParseFrame(tc.dir, frame, 0)
			})
			if !errors.Is(perr, fnproto.ErrMalformed) && !errors.Is(perr, fnproto.ErrFrameTooLarge) {
				t.Fatalf("ParseFrame error = %v, want a rejection (is the test frame's length right?)", perr)
			}
			var rerr error
			src := &repeatReader{data: frame}
			readBytes := bytesAllocated(2000, func() {
				_, rerr = fnproto.NewReader(src, tc.dir, 0).Read()
			})
			if !errors.Is(rerr, fnproto.ErrMalformed) && !errors.Is(rerr, fnproto.ErrFrameTooLarge) {
				t.Fatalf("Reader error = %v, want a rejection", rerr)
			}
			// The error value and its text are all that may be allocated.
			const budget = 1 << 10
			if perBytes > budget || readBytes > budget {
				t.Errorf("allocated %d bytes per ParseFrame and %d per Reader.Read, want <= %d", perBytes, readBytes, budget)
			}
			t.Logf("%s: %v (ParseFrame %d B, Reader %d B)", tc.name, perr, perBytes, readBytes)
		})
	}
}

// TestDecode_AllocationIsProportionalToInput decodes frames made of the
// smallest possible elements, the worst cases for turning wire bytes into
// Go values (each 4-byte empty []byte becomes a 24-byte slice header; a map
// entry with a short key costs a map slot plus its share of the table's
// slack). What is allocated stays within a small constant factor of the
// bytes received.
func TestDecode_AllocationIsProportionalToInput(t *testing.T) {
	const n = 4000
	oneByteKeys := make(map[string]string, 128)
	for i := range 128 {
		oneByteKeys[string(rune(i))] = ""
	}
	manyKeys := make(map[string]string, n)
	for i := range n {
		manyKeys[string(rune('a'+i%26))+strconv.Itoa(i)] = ""
	}
	tests := []struct {
		name string
		msg  fnproto.Message
	}{
		{"empty list items", &fnproto.ListResult{List: make([][]byte, n)}},
		{"empty key/values", &fnproto.KeyValueListResult{List: make([]fnproto.KeyValue, n)}},
		{"empty table/key/values", &fnproto.TableKeyValueListResult{List: make([]fnproto.TableKeyValue, n)}},
		{"empty headers", &fnproto.FunctionResult{Response: fnproto.Response{Headers: make([]fnproto.Header, n)}}},
		{"one-byte map keys", &fnproto.ExecuteFunction{Request: fnproto.Request{PathParams: oneByteKeys, QueryParams: oneByteKeys}}},
		{"short map keys", &fnproto.ExecuteFunction{Request: fnproto.Request{PathParams: manyKeys}}},
	}
	const factor = 12 // the package doc says about 6x for lists, up to about 10x for maps
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := framesOf(t, tc.msg)
			got := bytesAllocated(10, func() {
				if _, _, err := fnproto.ParseFrame(tc.msg.Direction(), frame, 0); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("%d-byte frame: %d bytes allocated (%.1fx)", len(frame), got, float64(got)/float64(len(frame)))
			if got > factor*uint64(len(frame)) {
				t.Errorf("decoding a %d-byte frame allocated %d bytes, more than %dx", len(frame), got, factor)
			}
		})
	}
}
