// Package kvstore opens the TiKV store muDB, the local ledger and billing run on: a production cluster
// through its placement drivers, or client-go's embedded store (the mock
// TiKV of github.com/tikv/client-go/v2/testutils), in memory or persisted
// in a LevelDB directory.
package kvstore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/pingcap/log"
	"github.com/tikv/client-go/v2/testutils"
	"github.com/tikv/client-go/v2/tikv"
	"github.com/tikv/client-go/v2/txnkv"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Open returns a transactional client of the store: the TiKV cluster of
// pdEndpoints, or when that is empty the embedded store, persisted under
// dataDir (empty: memory only). A dataDir another store holds open (this
// process or another) fails with an error saying so; the directory is
// left untouched. Close the client to release the store.
func Open(pdEndpoints []string, dataDir string) (*txnkv.Client, error) {
	quietClientLogs()
	if len(pdEndpoints) > 0 {
		c, err := txnkv.NewClient(pdEndpoints)
		if err != nil {
			return nil, fmt.Errorf("tikv %v: %w", pdEndpoints, err)
		}
		return c, nil
	}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
	}
	client, cluster, pdClient, err := testutils.NewMockTiKV(dataDir, nil)
	if err != nil {
		if dataDir != "" && isLocked(err) {
			return nil, fmt.Errorf("data_dir %q is in use by another embedded store (its LevelDB lock is held): %w", dataDir, err)
		}
		return nil, fmt.Errorf("embedded store in %q: %w", dataDir, err)
	}
	testutils.BootstrapWithSingleStore(cluster)
	store, err := tikv.NewTestTiKVStore(client, pdClient, nil, nil, 0)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	return &txnkv.Client{KVStore: store}, nil
}

// isLocked reports LevelDB's "directory locked" failure: its flock of
// the LOCK file fails with EWOULDBLOCK (EAGAIN on Linux).
func isLocked(err error) bool {
	return errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN)
}

var quietOnce sync.Once

// quietClientLogs keeps client-go's own zap logger (github.com/pingcap/log,
// process-wide) to errors on stderr: at its default info level it writes
// every region and lock event to stdout.
func quietClientLogs() {
	quietOnce.Do(func() {
		core := zapcore.NewCore(
			zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
			zapcore.Lock(os.Stderr),
			zapcore.ErrorLevel,
		)
		l := zap.New(core)
		log.ReplaceGlobals(l, &log.ZapProperties{Core: core, Level: zap.NewAtomicLevelAt(zapcore.ErrorLevel)})
	})
}
