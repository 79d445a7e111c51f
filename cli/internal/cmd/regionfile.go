package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/muprotocol/mu/region"
)

// stateDir is where mu keeps per-user state that is not a project's:
// $MU_STATE_DIR when set (tests), else $XDG_STATE_HOME/mu, else
// ~/.local/state/mu.
func stateDir() (string, error) {
	if d := os.Getenv("MU_STATE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "mu"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: set XDG_STATE_HOME or HOME: %w", err)
	}
	return filepath.Join(home, ".local", "state", "mu"), nil
}

// regionFilePath is the file naming the local region that `mu run` or
// `mu cluster up` started last.
func regionFilePath() (string, error) {
	d, err := stateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "region.json"), nil
}

// regionFile records the addresses of a running local region, so that
// other commands (mu usage) find it wherever it was started from.
type regionFile struct {
	StartedBy    string    `json:"started_by"`            // "mu run" or "mu cluster up"
	PID          int       `json:"pid"`                   // the mu run process (0 for a cluster: see cluster_dir)
	ClusterDir   string    `json:"cluster_dir,omitempty"` // absolute --dir of mu cluster up
	Started      time.Time `json:"started"`               // when the region was up
	Region       string    `json:"region"`                // region id on the ledger
	Gateway      string    `json:"gateway"`               // public HTTP base URL
	Billing      string    `json:"billing"`               // billing gRPC address; empty when the region has no billing service
	StorageGRPC  string    `json:"storage_grpc"`          // storage gRPC address
	StorageHTTP  string    `json:"storage_http"`          // storage HTTP base URL
	ChainIndexer string    `json:"chain_indexer"`         // chain-indexer gRPC address (also mu.ledger.v1.LedgerService)
	Runtimes     []string  `json:"runtimes"`              // runtime gRPC addresses
	Mudb         string    `json:"mudb"`                  // muDB gRPC address
	Stacks       []string  `json:"stacks"`                // ids of the stacks deployed by the command
}

// describeRegion collects the addresses of r.
func describeRegion(r *region.Region, startedBy string, stacks []string) regionFile {
	f := regionFile{StartedBy: startedBy, Started: time.Now().UTC(), Region: r.Market().Region.ID.String(), Stacks: stacks, Runtimes: []string{}}
	if g := r.Gateway(); g != nil {
		f.Gateway = "http://" + g.Addr()
	}
	if s := r.Storage(); s != nil {
		f.StorageGRPC, f.StorageHTTP = s.Addr(), s.URL()
	}
	if ix := r.ChainIndexer(); ix != nil {
		f.ChainIndexer = ix.Addr()
	}
	for _, n := range r.Runtimes() {
		f.Runtimes = append(f.Runtimes, n.Addr())
	}
	if m := r.Mudb(); m != nil {
		f.Mudb = m.Addr()
	}
	if b := r.Billing(); b != nil {
		f.Billing = b.Addr()
	}
	return f
}

// writeRegionFile records f as the local region, atomically (a reader
// sees the old file or the new one), and returns its path.
func writeRegionFile(f regionFile) (string, error) {
	path, err := regionFilePath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("record the local region: %w", err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".region-*.json")
	if err != nil {
		return "", fmt.Errorf("record the local region: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("record the local region in %s: %w", path, werr)
	}
	return path, nil
}

// errNoRegionFile: no local region is recorded.
var errNoRegionFile = errors.New("no local region recorded")

// readRegionFile reads the recorded local region; errNoRegionFile (with
// the path) when there is none.
func readRegionFile() (regionFile, string, error) {
	path, err := regionFilePath()
	if err != nil {
		return regionFile{}, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return regionFile{}, path, fmt.Errorf("%w (%s does not exist)", errNoRegionFile, path)
	}
	if err != nil {
		return regionFile{}, path, err
	}
	var f regionFile
	if err := json.Unmarshal(b, &f); err != nil {
		return regionFile{}, path, fmt.Errorf("%s: %w", path, err)
	}
	return f, path, nil
}

// removeRegionFile removes the recorded region if it is the one owns
// says is ours (another mu run may have replaced it since).
func removeRegionFile(owns func(regionFile) bool) {
	f, path, err := readRegionFile()
	if err != nil || !owns(f) {
		return
	}
	os.Remove(path)
}
