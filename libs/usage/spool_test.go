package usage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
)

func spoolConfig(dir string) BatchConfig {
	cfg := testBatchConfig()
	cfg.SpoolDir = dir
	cfg.SpoolSyncInterval = 10 * time.Millisecond
	cfg.SpoolSegmentBytes = minSegmentBytes
	return cfg
}

// switchSink accepts records while ok is set, else fails; it keeps every
// accepted record in order.
type switchSink struct {
	ok   atomic.Bool
	mu   sync.Mutex
	got  []Record
	keys map[string]int
}

func (s *switchSink) Report(_ context.Context, recs ...Record) error {
	if !s.ok.Load() {
		return errors.New("billing down")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string]int)
	}
	for _, r := range recs {
		s.keys[r.Key]++
	}
	s.got = append(s.got, recs...)
	return nil
}

func (s *switchSink) records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// crash abandons b as a kill -9 would: nothing is flushed, synced or sent;
// the descriptors close (as the kernel closes them), releasing the lock.
func crash(b *Batcher) {
	b.cancel()
	<-b.done
	close(b.syncStop)
	<-b.syncDone
	b.spool.mu.Lock()
	defer b.spool.mu.Unlock()
	for _, f := range append(b.spool.toSync, b.spool.active) {
		f.Close()
	}
	b.spool.lock.Close()
	b.spool.closed = true
}

func variedRecords(keys *Keys, n int) []Record {
	out := make([]Record, n)
	for i := range out {
		r := Record{Stack: ids.StackID{byte(i), 9}, Kind: Kind(1 + i%8), Amount: uint64(i) * 1_000_003, Key: keys.Next()}
		if i%3 != 0 {
			r.Time = time.Unix(1_700_000_000+int64(i), int64(i)*7)
		}
		out[i] = r
	}
	return out
}

func sameRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Stack != w.Stack || g.Kind != w.Kind || g.Amount != w.Amount || g.Key != w.Key || !g.Time.Equal(w.Time) || g.Time.IsZero() != w.Time.IsZero() {
			t.Fatalf("record %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestSpool_CrashKeepsUnacknowledgedRecordsWithTheirKeys(t *testing.T) {
	dir := t.TempDir()
	down := &switchSink{}
	b := mustBatcher(t, down, spoolConfig(dir))
	want := variedRecords(NewKeys("t"), 11)
	b.Add(want[:1]...)
	b.Add(want[1:6]...)
	b.Add(want[6:]...)
	crash(b)

	up := &switchSink{}
	up.ok.Store(true)
	b2 := mustBatcher(t, up, spoolConfig(dir))
	if err := b2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, up.records(), want)
	// New records after a restart follow the recovered ones.
	more := variedRecords(NewKeys("u"), 2)
	b2.Add(more...)
	if err := b2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, up.records(), append(slices.Clone(want), more...))

	// Everything was acknowledged: a third start resends nothing.
	again := &switchSink{}
	again.ok.Store(true)
	b3 := mustBatcher(t, again, spoolConfig(dir))
	if err := b3.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(again.records()); n != 0 {
		t.Fatalf("third start resent %d acknowledged records", n)
	}
}

func TestSpool_AckCursorSkipsAcceptedRecords(t *testing.T) {
	dir := t.TempDir()
	sink := &switchSink{}
	sink.ok.Store(true)
	b := mustBatcher(t, sink, spoolConfig(dir))
	all := variedRecords(NewKeys("t"), 9)
	b.Add(all[:5]...)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sink.ok.Store(false)
	b.Add(all[5:]...)
	crash(b)

	up := &switchSink{}
	up.ok.Store(true)
	b2 := mustBatcher(t, up, spoolConfig(dir))
	defer b2.Close(context.Background())
	if err := b2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, up.records(), all[5:])
}

// A close whose sink is down keeps the records in the spool, reports no
// loss, and the next start sends them.
func TestSpool_CloseWithSinkDownLeavesRecordsForNextStart(t *testing.T) {
	dir := t.TempDir()
	cfg := spoolConfig(dir)
	cfg.CloseTimeout = 20 * time.Millisecond
	b := mustBatcher(t, &switchSink{}, cfg)
	want := variedRecords(NewKeys("t"), 3)
	b.Add(want...)
	if err := b.Close(context.Background()); err != nil {
		t.Fatalf("Close with a spool: %v", err)
	}
	up := &switchSink{}
	up.ok.Store(true)
	b2 := mustBatcher(t, up, cfg)
	if err := b2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, up.records(), want)
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, segPrefix+"*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestSpool_TornTailIsTruncatedAndLogged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(data []byte, lastFrame int) []byte
		reason string
	}{
		{"cut mid-frame", func(d []byte, last int) []byte { return d[:len(d)-3] }, "left"},
		{"cut mid-header", func(d []byte, last int) []byte { return d[:last+5] }, "frame header"},
		{"flipped byte", func(d []byte, last int) []byte { d[len(d)-2] ^= 0xff; return d }, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := mustBatcher(t, &switchSink{}, spoolConfig(dir))
			want := variedRecords(NewKeys("t"), 6)
			b.Add(want[:2]...)
			b.Add(want[2:4]...)
			b.spool.mu.Lock()
			last := int(b.spool.size)
			b.spool.mu.Unlock()
			b.Add(want[4:]...)
			crash(b)
			segs := segments(t, dir)
			path := segs[len(segs)-1]
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(data, last), 0o600); err != nil {
				t.Fatal(err)
			}

			var logs bytes.Buffer
			up := &switchSink{}
			up.ok.Store(true)
			b2, err := NewBatcher(up, spoolConfig(dir), slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer b2.Close(context.Background())
			if err := b2.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			sameRecords(t, up.records(), want[:4])
			if !strings.Contains(logs.String(), "torn or damaged tail dropped") || !strings.Contains(logs.String(), tc.reason) {
				t.Fatalf("log does not report the torn tail (%q):\n%s", tc.reason, logs.String())
			}
			if fi, err := os.Stat(path); err == nil && fi.Size() != int64(last) {
				t.Fatalf("segment is %d bytes after recovery, want it cut to %d", fi.Size(), last)
			}
		})
	}
}

func TestSpool_AcknowledgedSegmentsAreDeleted(t *testing.T) {
	dir := t.TempDir()
	sink := &switchSink{}
	cfg := spoolConfig(dir)
	cfg.QueueSize = 10_000
	cfg.BatchSize = 100
	b := mustBatcher(t, sink, cfg)
	defer b.Close(context.Background())
	keys := NewKeys("segment-test-with-a-longish-prefix")
	const n = 1000 // ~70 bytes each: about 17 segments of 4 KiB
	for range n / 10 {
		b.Add(variedRecords(keys, 10)...)
	}
	if got := len(segments(t, dir)); got < 10 {
		t.Fatalf("%d segments for %d records in 4 KiB segments", got, n)
	}
	sink.ok.Store(true)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := segments(t, dir); len(got) != 1 {
		t.Fatalf("after every record was accepted, segments left: %v (want only the active one)", got)
	}
	if got := len(sink.records()); got != n {
		t.Fatalf("sink got %d records, want %d", got, n)
	}
}

func TestSpool_SecondBatcherOnTheDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	b := mustBatcher(t, Discard{}, spoolConfig(dir))
	_, err := NewBatcher(Discard{}, spoolConfig(dir), nil)
	if !errors.Is(err, ErrSpoolLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second batcher on %s: %v", dir, err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2, err := NewBatcher(Discard{}, spoolConfig(dir), nil)
	if err != nil {
		t.Fatalf("after Close the directory is free: %v", err)
	}
	b2.Close(context.Background())
}

func TestBatchConfig_ValidateNamesSpoolFields(t *testing.T) {
	cfg := DefaultBatchConfig()
	cfg.SpoolDir = "x"
	cfg.SpoolSyncInterval = 0
	cfg.SpoolSegmentBytes = 10
	err := cfg.Validate()
	for _, want := range []string{"usage_spool_sync_interval", "usage_spool_segment_bytes", "at least 4096", "got 10"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate: %v; want it to mention %q", err, want)
		}
	}
	cfg.SpoolDir = ""
	if err := cfg.Validate(); err != nil {
		t.Fatalf("spool fields are not checked without a spool dir: %v", err)
	}
}

// The child process of TestSpool_KillMinus9LosesNothing: it adds records
// from 4 goroutines to a spooled Batcher whose sink accepts every other
// batch (appending the accepted keys to a file before it answers) and
// prints each key once its Add has returned, until it is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("MU_USAGE_SPOOL_CHILD"); dir != "" {
		spoolChild(dir)
		return
	}
	os.Exit(m.Run())
}

type fileSink struct {
	f *os.File
	n atomic.Int64
}

func (s *fileSink) Report(_ context.Context, recs ...Record) error {
	if s.n.Add(1)%2 == 0 {
		return errors.New("every other batch fails")
	}
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "%s %d\n", r.Key, r.Amount)
	}
	_, err := s.f.Write(b.Bytes()) // one write: kill -9 cannot split it
	return err
}

func spoolChild(dir string) {
	f, err := os.OpenFile(filepath.Join(dir, "accepted"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		panic(err)
	}
	cfg := spoolConfig(filepath.Join(dir, "spool"))
	cfg.BatchSize = 50
	cfg.QueueSize = 5000
	cfg.FlushInterval = time.Millisecond
	b, err := NewBatcher(&fileSink{f: f}, cfg, nil)
	if err != nil {
		panic(err)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	keys := NewKeys("child")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				n := 1 + i%3
				recs := make([]Record, n)
				for j := range recs {
					k := keys.Next()
					seq, _ := strconv.ParseUint(k[strings.LastIndexByte(k, '/')+1:], 10, 64)
					recs[j] = Record{Stack: ids.StackID{byte(g)}, Kind: GatewayRequests, Amount: seq, Key: k}
				}
				b.Add(recs...)
				mu.Lock()
				for _, r := range recs {
					fmt.Fprintf(out, "%s %d\n", r.Key, r.Amount)
				}
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestSpool_KillMinus9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MU_USAGE_SPOOL_CHILD="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	added := make(map[string]uint64) // every record whose Add returned
	rd := bufio.NewReader(stdout)
	readLine := func() bool {
		line, err := rd.ReadString('\n')
		if err != nil {
			return false // EOF, or a line the kill cut short: its Add may not have returned
		}
		parseLine(t, strings.TrimSuffix(line, "\n"), added)
		return true
	}
	for len(added) < 20_000 && readLine() {
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for readLine() { // lines already in the pipe: their Adds returned too
	}
	_ = cmd.Wait()
	if len(added) < 20_000 {
		t.Fatalf("child printed only %d records", len(added))
	}

	accepted := make(map[string]uint64)
	data, err := os.ReadFile(filepath.Join(dir, "accepted"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Fields(strings.ReplaceAll(string(data), " ", "=")) {
		line = strings.Replace(line, "=", " ", 1)
		if _, dup := accepted[line[:strings.IndexByte(line, ' ')]]; dup {
			t.Fatalf("the child's sink accepted %q twice", line)
		}
		parseLine(t, line, accepted)
	}

	up := &switchSink{}
	up.ok.Store(true)
	cfg := spoolConfig(filepath.Join(dir, "spool"))
	cfg.QueueSize = 1 << 20
	b := mustBatcher(t, up, cfg)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	recovered := up.records()
	resent := 0
	for _, r := range recovered {
		if up.keys[r.Key] != 1 {
			t.Fatalf("record %s recovered %d times", r.Key, up.keys[r.Key])
		}
		if _, ok := accepted[r.Key]; ok {
			resent++ // accepted, then killed before the cursor moved: billing drops it by key
		}
	}
	if resent > 50 {
		t.Fatalf("%d accepted records resent; at most the batch in flight (50) may be", resent)
	}
	seen := make(map[string]uint64, len(accepted)+len(recovered))
	for k, v := range accepted {
		seen[k] = v
	}
	for _, r := range recovered {
		seen[r.Key] = r.Amount
	}
	for k, amount := range added {
		got, ok := seen[k]
		if !ok {
			t.Fatalf("record %s: Add returned, then kill -9 lost it (%d added, %d accepted, %d recovered)", k, len(added), len(accepted), len(recovered))
		}
		if got != amount {
			t.Fatalf("record %s: amount %d after recovery, %d when added", k, got, amount)
		}
	}
	t.Logf("kill -9 after %d returned Adds: %d accepted before, %d recovered after (%d of them resent duplicates), 0 lost",
		len(added), len(accepted), len(recovered), resent)
}

func parseLine(t *testing.T, line string, into map[string]uint64) {
	t.Helper()
	k, v, ok := strings.Cut(line, " ")
	n, err := strconv.ParseUint(v, 10, 64)
	if !ok || err != nil {
		t.Fatalf("bad line %q", line)
	}
	into[k] = n
}

func BenchmarkBatcher_Add(b *testing.B) {
	for _, spooled := range []bool{false, true} {
		name := "memory"
		if spooled {
			name = "spool"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultBatchConfig()
			if spooled {
				cfg.SpoolDir = b.TempDir()
			}
			bt := mustBatcher(b, Discard{}, cfg)
			defer bt.Close(context.Background())
			r := Record{Stack: ids.StackID{1}, Kind: GatewayRequests, Amount: 1, Key: "gateway/node-1/1764698400000000000/123456", Time: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				bt.Add(r, r)
			}
		})
	}
}
