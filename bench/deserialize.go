package bench

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// deserializeResult compares ways of loading a serialized module (an
// artifact of the runtime's cache) into an engine configured as the runtime's.
type deserializeResult struct {
	artifactBytes int64
	// asRuntime: os.ReadFile, CRC32C over the bytes, NewModuleDeserialize
	// (what services/runtime/internal/wasm's artifact cache does).
	asRuntime time.Duration
	// streamedFile: CRC32C over the file streamed through a 1 MiB buffer,
	// then NewModuleDeserializeFile (wasmtime maps the file).
	streamedFile time.Duration
	// file: NewModuleDeserializeFile alone.
	file time.Duration
}

var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// measureDeserialize loads the first artifact found under dataDir's
// runtime artifact cache each way, reps times, alternating; medians.
func measureDeserialize(dataDir string, reps int) (*deserializeResult, error) {
	paths, _ := filepath.Glob(filepath.Join(dataDir, "runtime", "artifacts", "*.cwasm"))
	if len(paths) == 0 {
		return nil, fmt.Errorf("no artifact under %s", dataDir)
	}
	path := paths[0]
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	eng, err := newFuelEngine(true)
	if err != nil {
		return nil, err
	}
	defer eng.close()
	ways := []func() (*wasmtime.Module, error){
		func() (*wasmtime.Module, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			_ = crc32.Checksum(b, castagnoliTable)
			return wasmtime.NewModuleDeserialize(eng.engine, b)
		},
		func() (*wasmtime.Module, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			h := crc32.New(castagnoliTable)
			_, err = io.CopyBuffer(h, f, make([]byte, 1<<20))
			f.Close()
			if err != nil {
				return nil, err
			}
			return wasmtime.NewModuleDeserializeFile(eng.engine, path)
		},
		func() (*wasmtime.Module, error) { return wasmtime.NewModuleDeserializeFile(eng.engine, path) },
	}
	times := make([][]time.Duration, len(ways))
	for i := range reps + 1 {
		for w, load := range ways {
			t0 := time.Now()
			m, err := load()
			d := time.Since(t0)
			if err != nil {
				return nil, fmt.Errorf("deserialize %s: %w", path, err)
			}
			m.Close()
			if i > 0 { // the first round warms the page cache
				times[w] = append(times[w], d)
			}
		}
	}
	return &deserializeResult{artifactBytes: st.Size(), asRuntime: median(times[0]), streamedFile: median(times[1]), file: median(times[2])}, nil
}
