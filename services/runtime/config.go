package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
)

// Config is the runtime node's configuration. DefaultConfig fills every
// field; files, environment (MU_RUNTIME_<FIELD>) and flags only override it.
type Config struct {
	// GRPCAddr is where RuntimeService listens ("host:port"; port 0 picks one).
	GRPCAddr string
	// DataDir holds the node's persistent state: compiled artifacts under
	// DataDir/artifacts. Empty keeps nothing on disk.
	DataDir string
	// NodeID names the node in logs, usage keys and Status.
	NodeID string

	// MaxFuelPerCall is the fuel budget of one call (about one unit per wasm
	// instruction); a region's max_giga_instructions_per_call lowers it.
	MaxFuelPerCall uint64
	// CallTimeout is the wall-clock budget of one call.
	CallTimeout time.Duration
	// EpochTick is the resolution of CallTimeout.
	EpochTick time.Duration
	// MaxFrameSize bounds one function protocol frame, in bytes.
	MaxFrameSize int
	// StartupFuel and StartupTimeout bound an instance's own start-up.
	StartupFuel    uint64
	StartupTimeout time.Duration
	// ArtifactCacheBytes is the disk budget for compiled artifacts.
	ArtifactCacheBytes int64

	// MaxIdlePerFunction, MaxActivePerFunction, IdleMemoryBudget and
	// IdleTimeout bound the warm instance pool (see internal/pool).
	MaxIdlePerFunction   int
	MaxActivePerFunction int
	IdleMemoryBudget     int64
	IdleTimeout          time.Duration
	// PrewarmInstances is how many instances of each function are started
	// at deploy, ahead of the first request.
	PrewarmInstances int

	// MinMemory and MaxMemory bound a function's memory_limit, in bytes.
	MinMemory uint64
	MaxMemory uint64
	// MaxMessageBytes bounds a gRPC message (deploys carry wasm inline).
	MaxMessageBytes int
	// LogBuffer is how many log lines a slow StreamLogs subscriber may lag.
	LogBuffer int

	// Usage receives a FUNCTION_MB_INSTRUCTIONS record per call. Nil discards.
	Usage usage.Sink
	// Logger is the node's own log. Nil uses slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults, each with its unit.
func DefaultConfig() Config {
	lim := manifest.DefaultLimits()
	return Config{
		GRPCAddr:             "127.0.0.1:12010",
		NodeID:               "runtime",
		MaxFuelPerCall:       5_000_000_000,    // 5 G instructions per call
		CallTimeout:          10 * time.Second, // wall clock per call
		EpochTick:            5 * time.Millisecond,
		MaxFrameSize:         8 << 20,     // 8 MiB per protocol frame
		StartupFuel:          500_000_000, // 0.5 G instructions of guest start-up
		StartupTimeout:       10 * time.Second,
		ArtifactCacheBytes:   2 << 30, // 2 GiB of compiled artifacts
		MaxIdlePerFunction:   4,
		MaxActivePerFunction: 64,
		IdleMemoryBudget:     1 << 30, // 1 GiB of idle linear memory
		IdleTimeout:          5 * time.Minute,
		PrewarmInstances:     1,
		MinMemory:            lim.MinMemory,
		MaxMemory:            lim.MaxMemory,
		MaxMessageBytes:      64 << 20, // 64 MiB per gRPC message
		LogBuffer:            1024,     // lines per log subscriber
	}
}

// Validate reports the first invalid field, by name.
func (c Config) Validate() error {
	switch {
	case c.GRPCAddr == "":
		return errors.New("runtime: grpc_addr is required")
	case c.MaxFuelPerCall == 0:
		return errors.New("runtime: max_fuel_per_call must be positive")
	case c.CallTimeout <= 0:
		return fmt.Errorf("runtime: call_timeout must be positive, got %s", c.CallTimeout)
	case c.PrewarmInstances < 0:
		return fmt.Errorf("runtime: prewarm_instances must not be negative, got %d", c.PrewarmInstances)
	case c.MinMemory == 0 || c.MaxMemory < c.MinMemory:
		return fmt.Errorf("runtime: memory bounds [%d, %d] are not a range", c.MinMemory, c.MaxMemory)
	case c.MaxMessageBytes < 1<<20:
		return fmt.Errorf("runtime: max_message_bytes must be at least 1 MiB, got %d", c.MaxMessageBytes)
	case c.LogBuffer < 1:
		return fmt.Errorf("runtime: log_buffer must be positive, got %d", c.LogBuffer)
	}
	return nil
}

func (c Config) artifactDir() string {
	if c.DataDir == "" {
		return ""
	}
	return filepath.Join(c.DataDir, "artifacts")
}
