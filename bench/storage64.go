package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/muprotocol/mu/bench/internal/blobgen"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
	"github.com/muprotocol/mu/services/storage"
)

// The storage64 step: put and get of one 64 MiB object, side by side and
// alternated in one run, two ways, both driven from the load generator
// process (mudbload.go, storage64load.go):
//
//   - direct: minio-go in the load generator, straight to the S3 server:
//     PutObject of the generated object with its size known and the
//     storage node's part size (S3PartSize), GetObject read into a
//     CRC-32;
//   - mu: HTTP to the gateway → runtime → the blob function
//     (bench/guests/blob, memory_limit 32 MiB) → its Box.Create/Write/
//     Commit or Box.Open/Read host calls, 1 MiB per call → the storage
//     node's gRPC → minio-go → the same S3 server. The object is generated
//     and checksummed inside the function; the HTTP answer is a few bytes.
//
// The S3 server is versitygw (posix backend) over a temporary directory,
// as in services/storage's tests, in a process of its own; the region
// (gateway, runtime and storage node) runs in this process.

const (
	s64Size   = 64 << 20 // bytes of the object
	s64Bucket = "mubench"
)

var s64Paths = []string{"direct", "mu"}

// s64Kinds are done in this order on each path in each round: get reads
// the object into a CRC-32 (checked), get_nosum reads and discards it.
var s64Kinds = []string{"put", "get", "get_nosum"}

// s64Run is one path and kind, rounds summed.
type s64Run struct {
	path, kind string
	n          int
	bytes      int64
	elapsed    time.Duration
	region     procUse       // this process: gateway, runtime, storage node
	client     procUse       // the load generator
	s3CPU      time.Duration // the versitygw process
	fuel       uint64        // function fuel, summed over calls (mu only)
}

func (r *s64Run) mbps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.bytes) / r.elapsed.Seconds() / 1e6
}

// msPerMiB is CPU time per MiB moved.
func (r *s64Run) msPerMiB(d time.Duration) float64 {
	if r.bytes == 0 {
		return 0
	}
	return float64(d) / 1e6 / (float64(r.bytes) / (1 << 20))
}

func (s *Suite) runStorage64(ctx context.Context) error {
	rounds := 3
	if s.opts.Quick {
		rounds = 1
	}
	tmp, err := os.MkdirTemp("", "mubench-storage64-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	gw, err := s.startVersitygw(filepath.Join(tmp, "s3"))
	if err != nil {
		return err
	}
	defer gw.close()
	s.logf("storage64: versitygw on %s", gw.endpoint)

	m, bins, err := s.guestStack(ctx, "blob")
	if err != nil {
		return err
	}
	memMiB := int64(m.Functions[0].MemoryLimit >> 20)
	var partSize int64
	artifacts := filepath.Join(filepath.Dir(s.wasmCache), "mubench-storage64-runtime")
	reg, err := region.Start(ctx, region.Options{
		DataDir: filepath.Join(tmp, "region"),
		Storage: &region.StorageOptions{Config: func(c *storage.Config) {
			c.S3Endpoint, c.S3AccessKey, c.S3SecretKey, c.S3Bucket, c.S3UseSSL = gw.endpoint, gw.access, gw.secret, s64Bucket, false
			partSize = c.S3PartSize
		}},
		Runtime: &region.RuntimeOptions{Config: func(_ int, c *runtime.Config) {
			c.DataDir = artifacts // the defaults suffice otherwise: see s64Limits
		}},
		Gateway: &region.GatewayOptions{},
	})
	if err != nil {
		return err
	}
	defer reg.Close()
	stack, _, err := ids.NewStackID()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := reg.Deploy(ctx, stack, 1, m, bins); err != nil {
		return err
	}
	s.logf("storage64: blob stack deployed in %s (part size %d MiB, function memory_limit %d MiB)",
		time.Since(t0).Round(time.Millisecond), partSize>>20, memMiB)

	lg, err := s.startLoadChild(ctx, tmp)
	if err != nil {
		return err
	}
	defer lg.close()
	where := &s3Where{Endpoint: gw.endpoint, AccessKey: gw.access, SecretKey: gw.secret, Bucket: s64Bucket, PartSize: partSize}
	base := "http://" + reg.Gateway().Addr() + "/" + stack.String() + "/blob"
	want := blobgen.Sum(s64Size)

	fuel := func() uint64 {
		reg.FlushUsage(ctx)
		return reg.Usage.Total(stack, usage.FunctionMBInstructions) / uint64(max(memMiB, 1))
	}
	one := func(path, kind, key string, size int64) (*s64Run, error) {
		cmd := childCmd{Op: "blob", Path: path, Kind: kind, Key: key, Size: size, URL: base, S3: where}
		var mark useMark
		var s3Mark time.Duration
		f0 := fuel()
		msg, err := lg.call(cmd, func() { mark, s3Mark = markUse(), gw.cpu() })
		if err != nil {
			return nil, err
		}
		run := &s64Run{path: path, kind: kind, n: 1, bytes: msg.Bytes, elapsed: msg.Elapsed,
			region: mark.since(), client: msg.Use, s3CPU: gw.cpu() - s3Mark, fuel: fuel() - f0}
		if msg.Bytes != size {
			return nil, fmt.Errorf("%s %s moved %d bytes, want %d", path, kind, msg.Bytes, size)
		}
		if kind == "get" && size == s64Size && msg.CRC32 != want {
			return nil, fmt.Errorf("%s get: crc32 %08x, want %08x", path, msg.CRC32, want)
		}
		return run, nil
	}
	// Warm up both paths (connections, the function's first instance,
	// the storage node's part buffers) with an object of more than one
	// part, untimed.
	const warm = 20 << 20
	for _, path := range s64Paths {
		for _, kind := range s64Kinds {
			if _, err := one(path, kind, "warmup-"+path, warm); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}

	runs := map[string]*s64Run{}
	for round := range rounds {
		for i := range s64Paths {
			path := s64Paths[(i+round)%len(s64Paths)]
			key := fmt.Sprintf("%s-%d", path, round)
			if path == "direct" {
				key = "direct/" + key // beside the storage node's own names, not among them
			}
			for _, kind := range s64Kinds {
				r, err := one(path, kind, key, s64Size)
				if err != nil {
					return fmt.Errorf("round %d: %w", round+1, err)
				}
				s.logf("storage64: %s %s round %d: %.1f MB/s (%s), fuel %.2f G", kind, path, round+1, r.mbps(),
					r.elapsed.Round(time.Millisecond), float64(r.fuel)/1e9)
				k := kind + " " + path
				if a := runs[k]; a == nil {
					runs[k] = r
				} else {
					a.n++
					a.bytes += r.bytes
					a.elapsed += r.elapsed
					a.region = a.region.add(r.region)
					a.client = a.client.add(r.client)
					a.s3CPU += r.s3CPU
					a.fuel += r.fuel
				}
			}
		}
	}
	s.addStorage64Metrics(runs, rounds, partSize, memMiB)
	return nil
}

// s64Limits: the step runs on the runtime's default limits. The costliest
// call, a 64 MiB get that checksums every byte in the function, burns
// about 1.45 G fuel (storage64_get_fuel_g_mu) of the default
// MaxFuelPerCall of 5 G, in under a second of the default 10 s
// CallTimeout; a put burns 0.05 G. So a function can CRC about 220 MiB
// per call on the defaults, and stream (without touching the bytes) far
// more.

func (s *Suite) addStorage64Metrics(runs map[string]*s64Run, rounds int, partSize, memMiB int64) {
	what := map[string]string{
		"direct": fmt.Sprintf("minio-go in the load generator straight to versitygw (%d MiB parts, size known)", partSize>>20),
		"mu":     fmt.Sprintf("HTTP → gateway → runtime → blob function (memory_limit %d MiB, 1 MiB host calls) → storage gRPC → minio-go → versitygw", memMiB),
	}
	for _, kind := range s64Kinds {
		for _, path := range s64Paths {
			r := runs[kind+" "+path]
			if r == nil {
				continue
			}
			how := map[string]string{"put": "put", "get": "get read into a CRC-32", "get_nosum": "get read and discarded (no checksum)"}[kind]
			note := fmt.Sprintf("%s of a 64 MiB object, %s; mean over %d alternated rounds (MB = 10^6 bytes)", how, what[path], rounds)
			s.res.add(fmt.Sprintf("storage64_%s_mbps_%s", kind, path), r.mbps(), "MB/s", note)
			if path == "mu" {
				s.res.add(fmt.Sprintf("storage64_%s_region_cpu_ms_per_mib_mu", kind), r.msPerMiB(r.region.CPU), "ms/MiB",
					"user+system CPU of the region process (gateway, runtime with the function, storage node) per MiB moved")
				s.res.add(fmt.Sprintf("storage64_%s_fuel_g_mu", kind), float64(r.fuel)/float64(r.n)/1e9, "G instr",
					"fuel one call of the blob function burnt for the 64 MiB object (runtime usage ÷ memory_limit MiB); the default MaxFuelPerCall is 5 G")
			}
			s.res.add(fmt.Sprintf("storage64_%s_s3_cpu_ms_per_mib_%s", kind, path), r.msPerMiB(r.s3CPU), "ms/MiB",
				"user+system CPU of the versitygw process per MiB moved (/proc/<pid>/stat, 10 ms ticks)")
			s.res.add(fmt.Sprintf("storage64_%s_client_cpu_ms_per_mib_%s", kind, path), r.msPerMiB(r.client.CPU), "ms/MiB",
				"user+system CPU of the load generator process per MiB moved")
		}
		how := map[string]string{"put": "put", "get": "get (with CRC-32)", "get_nosum": "get without checksum"}
		d, m := runs[kind+" direct"], runs[kind+" mu"]
		if d != nil && m != nil && d.mbps() > 0 {
			s.res.add("storage64_"+kind+"_ratio", m.mbps()/d.mbps(), "×",
				fmt.Sprintf("MB/s of the %s through mu ÷ MB/s of the direct minio-go %s, side by side", how[kind], how[kind]))
		}
	}
}

// versitygw is the S3 server of the storage64 step.
type versitygw struct {
	endpoint, access, secret string
	cmd                      *exec.Cmd
	done                     chan error
}

// versitygwBinary finds versitygw as services/storage's tests do: $MU_VERSITYGW
// (the Makefile sets it) or .tmp/bin/versitygw in the repository.
func (s *Suite) versitygwBinary() (string, error) {
	if p := os.Getenv("MU_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MU_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	p := filepath.Join(s.repo, ".tmp", "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw not found at %s: run `make versitygw` at the repository root (or set MU_VERSITYGW)", p)
	}
	return p, nil
}

// startVersitygw runs `versitygw posix dir` on a free loopback port and
// waits until it accepts connections.
func (s *Suite) startVersitygw(dir string) (*versitygw, error) {
	bin, err := s.versitygwBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	g := &versitygw{endpoint: addr, access: "mubench-access", secret: "mubench-secret-key", done: make(chan error, 1)}
	g.cmd = exec.Command(bin, "--port", addr, "--quiet", "posix", dir)
	g.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+g.access, "ROOT_SECRET_KEY="+g.secret)
	g.cmd.Stdout, g.cmd.Stderr = os.Stderr, os.Stderr
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return g, nil
		}
		select {
		case err := <-g.done:
			return nil, fmt.Errorf("versitygw exited before serving: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.close()
			return nil, errors.New("versitygw did not listen within 20s")
		}
	}
}

// cpu is the user+system CPU time versitygw has used (clock ticks of
// 10 ms); 0 when it cannot be read.
func (g *versitygw) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", g.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b)[i+1:]) // state is f[0]; utime, stime are fields 14, 15 of the line
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func (g *versitygw) close() {
	g.cmd.Process.Kill()
	<-g.done
}
