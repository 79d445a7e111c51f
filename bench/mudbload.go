package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/pingcap/log"
	"github.com/tikv/client-go/v2/testutils"
	"github.com/tikv/client-go/v2/tikv"
	"github.com/tikv/client-go/v2/txnkv"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/bench/load"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// The load generator of the muDB, storage64 and throughput steps runs in a
// process of its own: this executable started again with childEnv set.
// MaybeRunChild is how a main lets the suite do that; without it the suite
// builds cmd/mubench.
//
// The parent writes one childCmd per line on the child's stdin; the child
// answers on file descriptor 3 (so that nothing a library prints on stdout
// can garble the protocol), one childMsg per line: for "run", a "measure"
// message just before the measured phase and a "result" after it.

// childEnv names the environment variable that makes a mubench process the
// muDB step's load generator.
const childEnv = "MUBENCH_CHILD"

// childCapable is set when the running main called MaybeRunChild, so this
// executable can be started as the load generator.
var childCapable bool

// MaybeRunChild must be called first by a main that calls Run. When the
// suite started this process as its load generator, MaybeRunChild serves it
// and exits; otherwise it returns at once and lets Run start this
// executable as its load generator instead of building one.
func MaybeRunChild() {
	if os.Getenv(childEnv) == "" {
		childCapable = true
		return
	}
	out := os.NewFile(3, "mubench-protocol")
	if err := serveChild(context.Background(), os.Stdin, out); err != nil {
		fmt.Fprintln(os.Stderr, "mubench load generator:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childCmd is one command to the load generator.
type childCmd struct {
	// Op is "open" (open the direct store in Dir and write Keys keys of
	// ValueSize bytes) or "run".
	Op        string `json:"op"`
	Dir       string `json:"dir,omitempty"`
	Keys      int    `json:"keys,omitempty"`
	ValueSize int    `json:"value_size,omitempty"`

	// Path is "direct", "grpc" or "mu"; Kind "get" or "put".
	Path        string        `json:"path,omitempty"`
	Kind        string        `json:"kind,omitempty"`
	Concurrency int           `json:"concurrency,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"`
	Requests    int64         `json:"requests,omitempty"` // count bound, as load.FuncOptions.Requests
	Warmup      time.Duration `json:"warmup,omitempty"`
	// URL is the kv stack's gateway base (…/{stack}/kv) for Path mu.
	URL string `json:"url,omitempty"`
	// GRPCAddr, StackID and Table address the same table for Path grpc.
	GRPCAddr string `json:"grpc_addr,omitempty"`
	StackID  []byte `json:"stack_id,omitempty"`
	Table    string `json:"table,omitempty"`

	// Op "blob" (the storage64 step, storage64load.go): one put or get of
	// Size bytes under Key, Path "direct" (minio-go to S3) or "mu" (HTTP
	// to URL, the blob stack's gateway base).
	Key  string   `json:"key,omitempty"`
	Size int64    `json:"size,omitempty"`
	S3   *s3Where `json:"s3,omitempty"`

	// Op "http" (the throughput step, throughputload.go): a closed-loop
	// GET of URL; the latencies join those of the earlier runs of the same
	// Series, and the answer carries the series' percentiles.
	Series string `json:"series,omitempty"`
}

// childMsg is one answer of the load generator.
type childMsg struct {
	Event      string          `json:"event"` // "ok", "measure", "result" or "error"
	Error      string          `json:"error,omitempty"`
	Requests   int64           `json:"requests,omitempty"`
	Errors     int64           `json:"errors,omitempty"`
	FirstError string          `json:"first_error,omitempty"`
	Elapsed    time.Duration   `json:"elapsed,omitempty"`
	Samples    []time.Duration `json:"samples,omitempty"`
	// Use is what the load generator process spent in the measured phase.
	Use procUse `json:"use"`
	// Bytes and CRC32 are what a blob op moved (CRC32 for gets).
	Bytes int64  `json:"bytes,omitempty"`
	CRC32 uint32 `json:"crc32,omitempty"`
	// Percentiles of an "http" op's series so far (every run of it merged),
	// computed in the load generator; Samples stays empty.
	P50 time.Duration `json:"p50,omitempty"`
	P90 time.Duration `json:"p90,omitempty"`
	P99 time.Duration `json:"p99,omitempty"`
}

// procUse is what one process spent over a measured phase, in totals.
type procUse struct {
	CPU      time.Duration `json:"cpu"`      // user + system
	Syscalls int64         `json:"syscalls"` // /proc/self/io syscr + syscw
	Allocs   uint64        `json:"allocs"`   // heap objects allocated (runtime/metrics)
}

func (u procUse) add(v procUse) procUse {
	return procUse{CPU: u.CPU + v.CPU, Syscalls: u.Syscalls + v.Syscalls, Allocs: u.Allocs + v.Allocs}
}

// useMark is a point to measure a procUse from.
type useMark struct {
	cpu    cpuSnapshot
	allocs uint64
}

func markUse() useMark { return useMark{cpu: snapshotCPU(), allocs: heapAllocs()} }

func (m useMark) since() procUse {
	now := markUse()
	return procUse{
		CPU:      now.cpu.proc - m.cpu.proc,
		Syscalls: now.cpu.readCalls + now.cpu.writeCalls - m.cpu.readCalls - m.cpu.writeCalls,
		Allocs:   now.allocs - m.allocs,
	}
}

// heapAllocs is the number of heap objects this process has allocated.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Keys and values of the muDB step: the same on every path. Gets read the
// preloaded keys mudbKey(0…keys-1) round-robin; each put worker writes its
// own keys, so puts never conflict.
func mudbKey(i int) []byte { return fmt.Appendf(nil, "key-%012d", i) }

func mudbPutKey(worker, i int) []byte {
	return fmt.Appendf(nil, "put-%03d-%08d", worker, i%mudbPutKeys)
}

const mudbPutKeys = 1000

func mudbValue(size int) []byte { return bytes.Repeat([]byte("v"), size) }

// child is the load generator's state between commands.
type child struct {
	kv        *txnkv.Client
	keys      int
	valueSize int
	value     []byte
	conns     map[string]*grpc.ClientConn
	clients   map[int]*http.Client       // by concurrency
	s3        *minio.Client              // the storage64 step's direct client
	series    map[string][]time.Duration // the throughput step's latencies by series
}

func serveChild(ctx context.Context, in io.Reader, out io.Writer) error {
	c := &child{conns: map[string]*grpc.ClientConn{}, clients: map[int]*http.Client{}, series: map[string][]time.Duration{}}
	defer c.close()
	var mu sync.Mutex
	send := func(m childMsg) error {
		mu.Lock()
		defer mu.Unlock()
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = out.Write(append(b, '\n'))
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var cmd childCmd
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			return fmt.Errorf("command %q: %w", sc.Text(), err)
		}
		msg, err := c.do(ctx, cmd, send)
		if err != nil {
			msg = childMsg{Event: "error", Error: err.Error()}
		}
		if err := send(msg); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (c *child) close() {
	for _, cc := range c.conns {
		cc.Close()
	}
	for _, hc := range c.clients {
		hc.CloseIdleConnections()
	}
	if c.kv != nil {
		c.kv.Close()
	}
}

func (c *child) do(ctx context.Context, cmd childCmd, send func(childMsg) error) (childMsg, error) {
	switch cmd.Op {
	case "open":
		return childMsg{Event: "ok"}, c.open(ctx, cmd)
	case "blob":
		return c.blob(ctx, cmd, send)
	case "http":
		return c.http(ctx, cmd, send)
	case "run":
		newOp, err := c.op(ctx, cmd)
		if err != nil {
			return childMsg{}, err
		}
		var mark useMark
		r, err := load.RunFunc(ctx, load.FuncOptions{
			Concurrency: cmd.Concurrency, Duration: cmd.Duration, Requests: cmd.Requests, Warmup: cmd.Warmup, New: newOp,
			OnMeasure: func() {
				send(childMsg{Event: "measure"})
				mark = markUse()
			},
		})
		if err != nil {
			return childMsg{}, err
		}
		use := mark.since()
		return childMsg{Event: "result", Requests: r.Requests, Errors: r.Errors, FirstError: r.FirstError,
			Elapsed: r.Elapsed, Samples: r.Samples, Use: use}, nil
	}
	return childMsg{}, fmt.Errorf("unknown op %q", cmd.Op)
}

// open opens the embedded TiKV store exactly as muDB does (see
// services/mudb/internal/kvstore): client-go's mock TiKV persisted in a
// LevelDB directory, one store, the test TiKV store on top, a txnkv
// client; then writes the keys gets read.
func (c *child) open(ctx context.Context, cmd childCmd) error {
	if c.kv != nil {
		return errors.New("store already open")
	}
	quietClientGoLogs()
	if err := os.MkdirAll(cmd.Dir, 0o755); err != nil {
		return err
	}
	client, cluster, pdClient, err := testutils.NewMockTiKV(cmd.Dir, nil)
	if err != nil {
		return fmt.Errorf("embedded store in %q: %w", cmd.Dir, err)
	}
	testutils.BootstrapWithSingleStore(cluster)
	store, err := tikv.NewTestTiKVStore(client, pdClient, nil, nil, 0)
	if err != nil {
		client.Close()
		return fmt.Errorf("embedded store: %w", err)
	}
	c.kv = &txnkv.Client{KVStore: store}
	c.keys, c.valueSize, c.value = cmd.Keys, cmd.ValueSize, mudbValue(cmd.ValueSize)
	txn, err := c.kv.Begin()
	if err != nil {
		return err
	}
	for i := range c.keys {
		if err := txn.Set(mudbKey(i), c.value); err != nil {
			txn.Rollback()
			return err
		}
	}
	return txn.Commit(ctx)
}

var quietLogsOnce sync.Once

// quietClientGoLogs keeps client-go's process-wide zap logger to errors on
// stderr, as muDB does: at info it writes region events to stdout.
func quietClientGoLogs() {
	quietLogsOnce.Do(func() {
		core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(os.Stderr), zapcore.ErrorLevel)
		log.ReplaceGlobals(zap.New(core), &log.ZapProperties{Core: core, Level: zap.NewAtomicLevelAt(zapcore.ErrorLevel)})
	})
}

// op returns the operation factory of one run.
// Operations run under bg, not under the phase's context: a call cut
// short when a phase ends would leave a transaction's locks behind (a put
// cancelled between prewrite and commit), and the next phase would wait
// for them to expire. An operation in flight at the end of a phase
// finishes instead, a little after the phase.
func (c *child) op(bg context.Context, cmd childCmd) (func(ctx context.Context, w int) (func() error, error), error) {
	ctx := bg
	if c.keys == 0 || c.value == nil {
		return nil, errors.New("run before open")
	}
	keys, value := c.keys, c.value
	checkLen := func(v []byte) error {
		if len(v) != len(value) {
			return fmt.Errorf("got a %d-byte value, want %d bytes", len(v), len(value))
		}
		return nil
	}
	switch cmd.Path + " " + cmd.Kind {
	case "direct get":
		return func(_ context.Context, w int) (func() error, error) {
			i := w
			return func() error {
				key := mudbKey(i % keys)
				i += cmd.Concurrency
				txn, err := c.kv.Begin()
				if err != nil {
					return err
				}
				v, err := txn.Get(ctx, key)
				txn.Rollback()
				if err != nil {
					return err
				}
				return checkLen(v)
			}, nil
		}, nil
	case "direct put":
		return func(_ context.Context, w int) (func() error, error) {
			i := 0
			return func() error {
				key := mudbPutKey(w, i)
				i++
				txn, err := c.kv.Begin()
				if err != nil {
					return err
				}
				if err := txn.Set(key, value); err != nil {
					txn.Rollback()
					return err
				}
				return txn.Commit(ctx)
			}, nil
		}, nil
	case "grpc get", "grpc put":
		cc, err := c.conn(cmd.GRPCAddr)
		if err != nil {
			return nil, err
		}
		db := mudbv1.NewMudbServiceClient(cc)
		if cmd.Kind == "get" {
			return func(_ context.Context, w int) (func() error, error) {
				i := w
				return func() error {
					key := mudbKey(i % keys)
					i += cmd.Concurrency
					resp, err := db.Get(ctx, &mudbv1.GetRequest{StackId: cmd.StackID, Table: cmd.Table, Key: key})
					if err != nil {
						return err
					}
					return checkLen(resp.GetValue())
				}, nil
			}, nil
		}
		return func(_ context.Context, w int) (func() error, error) {
			i := 0
			return func() error {
				key := mudbPutKey(w, i)
				i++
				_, err := db.Put(ctx, &mudbv1.PutRequest{StackId: cmd.StackID, Table: cmd.Table, Key: key, Value: value})
				return err
			}, nil
		}, nil
	case "mu get", "mu put":
		client := c.clients[cmd.Concurrency]
		if client == nil {
			client = load.NewClient(cmd.Concurrency)
			c.clients[cmd.Concurrency] = client
		}
		if cmd.Kind == "get" {
			return func(_ context.Context, w int) (func() error, error) {
				i := w
				buf := make([]byte, 32<<10)
				return func() error {
					key := mudbKey(i % keys)
					i += cmd.Concurrency
					req, err := http.NewRequestWithContext(ctx, http.MethodGet, cmd.URL+"/get?key="+string(key), nil)
					if err != nil {
						return err
					}
					n, err := httpDo(client, req, buf)
					if err != nil {
						return err
					}
					if n != int64(len(value)) {
						return fmt.Errorf("got a %d-byte value, want %d bytes", n, len(value))
					}
					return nil
				}, nil
			}, nil
		}
		return func(_ context.Context, w int) (func() error, error) {
			i := 0
			buf := make([]byte, 32<<10)
			return func() error {
				key := mudbPutKey(w, i)
				i++
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, cmd.URL+"/put?key="+string(key), bytes.NewReader(value))
				if err != nil {
					return err
				}
				_, err = httpDo(client, req, buf)
				return err
			}, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown path and kind %q %q", cmd.Path, cmd.Kind)
}

func (c *child) conn(addr string) (*grpc.ClientConn, error) {
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return cc, nil
}

// httpDo sends req, reads the whole answer and fails unless it is 2xx.
func httpDo(client *http.Client, req *http.Request, buf []byte) (int64, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, resp.Body, buf)
	resp.Body.Close()
	if err != nil {
		return n, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return n, fmt.Errorf("status %s", resp.Status)
	}
	return n, nil
}
