package fnproto_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/muprotocol/mu/libs/fnproto"
)

// fromFunctionCases returns the round-trip cases of one direction, decoded
// form.
func casesFor(dir fnproto.Direction) (in, want []fnproto.Message) {
	for _, tc := range roundTripCases() {
		if tc.in.Direction() != dir {
			continue
		}
		in = append(in, tc.in)
		if tc.want != nil {
			want = append(want, tc.want)
		} else {
			want = append(want, tc.in)
		}
	}
	return in, want
}

// framesOf concatenates the frames of msgs.
func framesOf(t testing.TB, msgs ...fnproto.Message) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = fnproto.AppendFrame(b, m); err != nil {
			t.Fatalf("AppendFrame(%T): %v", m, err)
		}
	}
	return b
}

// countingWriter records each Write call.
type countingWriter struct {
	w     io.Writer
	calls [][]byte
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.calls = append(c.calls, bytes.Clone(p))
	return c.w.Write(p)
}

func TestReaderWriter_OverPipe(t *testing.T) {
	for _, dir := range []fnproto.Direction{fnproto.ToFunction, fnproto.FromFunction} {
		t.Run(dir.String(), func(t *testing.T) {
			in, want := casesFor(dir)
			pr, pw := io.Pipe()
			cw := &countingWriter{w: pw}
			errc := make(chan error, 1)
			go func() {
				w := fnproto.NewWriter(cw)
				for _, m := range in {
					if err := w.Write(m); err != nil {
						errc <- err
						pw.CloseWithError(err)
						return
					}
				}
				errc <- pw.Close()
			}()

			r := fnproto.NewReader(pr, dir, 0)
			for i, w := range want {
				got, err := r.Read()
				if err != nil {
					t.Fatalf("Read #%d: %v", i, err)
				}
				if !reflect.DeepEqual(got, w) {
					t.Fatalf("Read #%d = %#v, want %#v", i, got, w)
				}
			}
			if m, err := r.Read(); err != io.EOF {
				t.Fatalf("Read after last frame = (%v, %v), want io.EOF", m, err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("writer: %v", err)
			}
			// One Write call per frame, each exactly one frame.
			if len(cw.calls) != len(in) {
				t.Fatalf("%d Write calls for %d messages", len(cw.calls), len(in))
			}
			for i, call := range cw.calls {
				if want := framesOf(t, in[i]); !bytes.Equal(call, want) {
					t.Errorf("Write call %d = %x, want the frame %x", i, call, want)
				}
			}
		})
	}
}

func TestReader_PartialReads(t *testing.T) {
	in, want := casesFor(fnproto.FromFunction)
	stream := framesOf(t, in...)
	readers := map[string]func(io.Reader) io.Reader{
		"OneByteReader": iotest.OneByteReader,
		"HalfReader":    iotest.HalfReader,
		"DataErrReader": iotest.DataErrReader, // returns io.EOF together with the last bytes
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			r := fnproto.NewReader(wrap(bytes.NewReader(stream)), fnproto.FromFunction, 0)
			for i, w := range want {
				got, err := r.Read()
				if err != nil {
					t.Fatalf("Read #%d: %v", i, err)
				}
				if !reflect.DeepEqual(got, w) {
					t.Fatalf("Read #%d = %#v, want %#v", i, got, w)
				}
			}
			if _, err := r.Read(); err != io.EOF {
				t.Fatalf("final Read error = %v, want io.EOF", err)
			}
		})
	}
}

func TestReader_CleanEOFAndUnexpectedEOF(t *testing.T) {
	frame := framesOf(t, &fnproto.Get{Table: "todos", Key: []byte("k")})
	tests := []struct {
		name    string
		data    []byte
		wantMsg string // "" means clean io.EOF
	}{
		{"empty stream", nil, ""},
		{"after a whole frame", frame, ""},
		{"inside the length", frame[:2], "fnproto: truncated frame length (2 of 4 bytes): unexpected EOF"},
		{"after the length", frame[:4], "fnproto: truncated frame (0 of 16 bytes after the length): unexpected EOF"},
		{"inside the kind", frame[:5], "fnproto: truncated frame (1 of 16 bytes after the length): unexpected EOF"},
		{"inside the body", frame[:len(frame)-1], "fnproto: truncated frame (15 of 16 bytes after the length): unexpected EOF"},
		{"second frame cut", append(bytes.Clone(frame), frame[:9]...), "fnproto: truncated frame (5 of 16 bytes after the length): unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fnproto.NewReader(iotest.OneByteReader(bytes.NewReader(tc.data)), fnproto.FromFunction, 0)
			var err error
			for err == nil {
				_, err = r.Read()
			}
			if tc.wantMsg == "" {
				if err != io.EOF {
					t.Fatalf("error = %v, want io.EOF itself", err)
				}
			} else {
				if !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != tc.wantMsg {
					t.Fatalf("error = %q, want %q wrapping io.ErrUnexpectedEOF", err, tc.wantMsg)
				}
			}
			// The end of the stream is sticky.
			if _, again := r.Read(); again != err {
				t.Fatalf("second Read error = %v, want %v", again, err)
			}
		})
	}
}

// noReadPast fails the test if more than limit bytes are read from it.
type noReadPast struct {
	t     *testing.T
	data  []byte
	limit int
	read  int
}

func (n *noReadPast) Read(p []byte) (int, error) {
	if n.read >= n.limit {
		n.t.Errorf("Reader read past byte %d", n.limit)
		return 0, io.ErrNoProgress
	}
	p = p[:min(len(p), n.limit-n.read, len(n.data)-n.read)]
	c := copy(p, n.data[n.read:])
	n.read += c
	return c, nil
}

func TestReader_FrameOverLimitIsRejectedBeforeTheBody(t *testing.T) {
	tests := []struct {
		name    string
		limit   int
		length  uint32
		wantMsg string
	}{
		{"one over a small limit", 100, 101, "fnproto: frame of 101 bytes exceeds limit of 100"},
		{"over the default limit", 0, 9000000, "fnproto: frame of 9000000 bytes exceeds limit of 8388608"},
		{"4 GiB", 0, 0xffffffff, "fnproto: frame of 4294967295 bytes exceeds limit of 8388608"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := append([]byte{byte(tc.length), byte(tc.length >> 8), byte(tc.length >> 16), byte(tc.length >> 24)}, bytes.Repeat([]byte{1}, 200)...)
			src := &noReadPast{t: t, data: data, limit: 4}
			r := fnproto.NewReader(src, fnproto.FromFunction, tc.limit)
			_, err := r.Read()
			if !errors.Is(err, fnproto.ErrFrameTooLarge) || err.Error() != tc.wantMsg {
				t.Fatalf("error = %v, want %q wrapping ErrFrameTooLarge", err, tc.wantMsg)
			}
			if _, again := r.Read(); again != err {
				t.Fatalf("second Read = %v, want the same sticky error", again)
			}
		})
	}
	t.Run("exactly at the limit", func(t *testing.T) {
		frame := framesOf(t, &fnproto.FatalError{Error: strings.Repeat("x", 94)}) // 2 + 4 + 94 = 100
		r := fnproto.NewReader(bytes.NewReader(frame), fnproto.FromFunction, 100)
		if _, err := r.Read(); err != nil {
			t.Fatalf("frame of exactly the limit: %v", err)
		}
	})
}

func TestReader_ShortFrameLength(t *testing.T) {
	for _, length := range []byte{0, 1} {
		r := fnproto.NewReader(bytes.NewReader([]byte{length, 0, 0, 0, 1, 0}), fnproto.FromFunction, 0)
		_, err := r.Read()
		want := "fnproto: frame length " + string('0'+length) + " is shorter than the 2-byte kind"
		if !errors.Is(err, fnproto.ErrMalformed) || err.Error() != want {
			t.Errorf("length %d: error = %v, want %q", length, err, want)
		}
	}
}

func TestReader_UnknownKindAndMalformedBodySkipTheFrame(t *testing.T) {
	var stream []byte
	stream = append(stream, unhex(t, `03000000 3930 ff`)...)                     // kind 12345: unknown
	stream = append(stream, framesOf(t, &fnproto.Log{Body: "one"})...)           // fine
	stream = append(stream, unhex(t, `08000000 0300 01000000 61 09`)...)         // Log with level 9
	stream = append(stream, unhex(t, `09000000 0300 01000000 61 00 00`)...)      // Log with a trailing byte
	stream = append(stream, framesOf(t, &fnproto.Log{Body: "two", Level: 1})...) // fine

	r := fnproto.NewReader(bytes.NewReader(stream), fnproto.FromFunction, 0)
	steps := []struct {
		wantErr error
		wantMsg string
		want    fnproto.Message
	}{
		{wantErr: fnproto.ErrUnknownKind, wantMsg: "fnproto: unknown from-function kind 12345"},
		{want: &fnproto.Log{Body: "one"}},
		{wantErr: fnproto.ErrMalformed, wantMsg: "fnproto: Log.level: invalid LogLevel 9 (max 4)"},
		{wantErr: fnproto.ErrMalformed, wantMsg: "fnproto: Log: 1 trailing bytes after body"},
		{want: &fnproto.Log{Body: "two", Level: fnproto.LogLevelDebug}},
	}
	for i, s := range steps {
		m, err := r.Read()
		if s.wantErr != nil {
			if !errors.Is(err, s.wantErr) || err.Error() != s.wantMsg || m != nil {
				t.Fatalf("step %d: (%v, %v), want (nil, %q wrapping %v)", i, m, err, s.wantMsg, s.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(m, s.want) {
			t.Fatalf("step %d: (%#v, %v), want %#v", i, m, err, s.want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReader_UnderlyingErrorIsWrappedAndSticky(t *testing.T) {
	boom := errors.New("boom")
	r := fnproto.NewReader(iotest.ErrReader(boom), fnproto.ToFunction, 0)
	_, err := r.Read()
	if !errors.Is(err, boom) || err.Error() != "fnproto: read frame length: boom" {
		t.Fatalf("error = %v", err)
	}
	frame := framesOf(t, &fnproto.DbError{Error: "x"})
	r = fnproto.NewReader(io.MultiReader(bytes.NewReader(frame[:7]), iotest.ErrReader(boom)), fnproto.ToFunction, 0)
	_, err = r.Read()
	if !errors.Is(err, boom) || err.Error() != "fnproto: read frame of 7 bytes: boom" {
		t.Fatalf("error = %v", err)
	}
	if _, again := r.Read(); again != err {
		t.Fatalf("second Read = %v, want sticky %v", again, err)
	}
}

func TestReader_MessagesDoNotAliasTheBuffer(t *testing.T) {
	stream := framesOf(t,
		&fnproto.Put{Table: "aaaa", Key: []byte("1111"), Value: []byte("xxxx")},
		&fnproto.Put{Table: "bbbb", Key: []byte("2222"), Value: []byte("yyyy")},
	)
	r := fnproto.NewReader(bytes.NewReader(stream), fnproto.FromFunction, 0)
	first, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(); err != nil {
		t.Fatal(err)
	}
	want := &fnproto.Put{Table: "aaaa", Key: []byte("1111"), Value: []byte("xxxx")}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("first message changed after the next Read: %#v", first)
	}
}

// shortWriter accepts at most n bytes per call and reports no error.
type shortWriter struct{ n int }

func (s *shortWriter) Write(p []byte) (int, error) { return min(len(p), s.n), nil }

func TestWriter_Errors(t *testing.T) {
	t.Run("encoding error writes nothing and is not sticky", func(t *testing.T) {
		var buf bytes.Buffer
		w := fnproto.NewWriter(&buf)
		err := w.Write(&fnproto.Log{Body: "x", Level: 42})
		if !errors.Is(err, fnproto.ErrMalformed) || buf.Len() != 0 {
			t.Fatalf("error = %v, %d bytes written", err, buf.Len())
		}
		if err := w.Write(&fnproto.Log{Body: "x"}); err != nil || buf.Len() != 12 {
			t.Fatalf("next Write = %v, %d bytes written", err, buf.Len())
		}
	})
	t.Run("short write is sticky", func(t *testing.T) {
		w := fnproto.NewWriter(&shortWriter{n: 3})
		err := w.Write(&fnproto.EmptyResult{})
		if !errors.Is(err, io.ErrShortWrite) || err.Error() != "fnproto: write EmptyResult frame (3 of 6 bytes written): short write" {
			t.Fatalf("error = %v", err)
		}
		if again := w.Write(&fnproto.EmptyResult{}); again != err {
			t.Fatalf("second Write = %v, want sticky %v", again, err)
		}
	})
	t.Run("underlying error is wrapped", func(t *testing.T) {
		pr, pw := io.Pipe()
		pr.Close()
		err := fnproto.NewWriter(pw).Write(&fnproto.StorageEmptyResult{})
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("error = %v, want io.ErrClosedPipe", err)
		}
	})
	t.Run("frame over the writer's limit", func(t *testing.T) {
		var buf bytes.Buffer
		w := fnproto.NewWriter(&buf)
		w.SetMaxFrameSize(100)
		err := w.Write(&fnproto.FatalError{Error: strings.Repeat("x", 95)})
		if !errors.Is(err, fnproto.ErrFrameTooLarge) || err.Error() != "fnproto: encode FatalError: frame of 101 bytes exceeds limit of 100" || buf.Len() != 0 {
			t.Fatalf("error = %v, %d bytes written", err, buf.Len())
		}
		if err := w.Write(&fnproto.FatalError{Error: strings.Repeat("x", 94)}); err != nil {
			t.Fatalf("frame at the limit: %v", err)
		}
		w.SetMaxFrameSize(0)
		if err := w.Write(&fnproto.FatalError{Error: strings.Repeat("x", 1000)}); err != nil {
			t.Fatalf("after removing the limit: %v", err)
		}
	})
}

func TestParseFrame_IncompleteBuffer(t *testing.T) {
	frame := framesOf(t, &fnproto.StorageList{Storage: "files", Prefix: "img/"})
	for i := 0; i < len(frame); i++ {
		m, n, err := fnproto.ParseFrame(fnproto.FromFunction, frame[:i], 0)
		if m != nil || n != 0 || err != nil {
			t.Fatalf("ParseFrame(%d of %d bytes) = (%v, %d, %v), want (nil, 0, nil)", i, len(frame), m, n, err)
		}
	}
	// Two frames and a partial third: one at a time.
	stream := append(framesOf(t, &fnproto.Log{Body: "a"}, &fnproto.Log{Body: "b"}), frame[:5]...)
	var got []string
	for {
		m, n, err := fnproto.ParseFrame(fnproto.FromFunction, stream, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		got = append(got, m.(*fnproto.Log).Body)
		stream = stream[n:]
	}
	if strings.Join(got, ",") != "a,b" || len(stream) != 5 {
		t.Fatalf("parsed %q, %d bytes left; want a,b and 5", got, len(stream))
	}
}

func TestParseFrame_BadLengthFailsBeforeTheRestArrives(t *testing.T) {
	_, n, err := fnproto.ParseFrame(fnproto.ToFunction, []byte{0x65, 0, 0, 0}, 100)
	if !errors.Is(err, fnproto.ErrFrameTooLarge) || n != 0 || err.Error() != "fnproto: frame of 101 bytes exceeds limit of 100" {
		t.Fatalf("(n=%d, err=%v)", n, err)
	}
	_, n, err = fnproto.ParseFrame(fnproto.ToFunction, []byte{1, 0, 0, 0}, 100)
	if !errors.Is(err, fnproto.ErrMalformed) || n != 0 || err.Error() != "fnproto: frame length 1 is shorter than the 2-byte kind" {
		t.Fatalf("(n=%d, err=%v)", n, err)
	}
}

// TestReaderWriter_MixedFrameSizes alternates frames below and above the
// size up to which Reader and Writer keep their buffers between frames.
func TestReaderWriter_MixedFrameSizes(t *testing.T) {
	var msgs []fnproto.Message
	for i, size := range []int{10, 200 << 10, 3, 64 << 10, 64<<10 + 1, 1 << 20, 0, 5} {
		msgs = append(msgs, &fnproto.StorageGetResult{Data: ptr(bytes.Repeat([]byte{byte(i + 1)}, size))})
	}
	var stream bytes.Buffer
	w := fnproto.NewWriter(&stream)
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	r := fnproto.NewReader(&stream, fnproto.ToFunction, 2<<20)
	for i, want := range msgs {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("Read #%d: %v", i, err)
		}
		g, w := *got.(*fnproto.StorageGetResult).Data, *want.(*fnproto.StorageGetResult).Data
		if !bytes.Equal(g, w) {
			t.Fatalf("Read #%d: %d bytes, want %d bytes of %d", i, len(g), len(w), i+1)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("final Read: %v", err)
	}
}
