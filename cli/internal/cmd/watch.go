package cmd

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/muprotocol/mu/libs/project"
)

// sourceWatcher reports changes to a project's sources: Go files, go.mod,
// go.sum and the manifest, anywhere under the project's directory but its
// hidden directories (.mu holds the build and the local region's data) and
// vendor. Changes within debounce of each other make one report.
type sourceWatcher struct {
	w *fsnotify.Watcher
	// C receives one value per settled burst of changes.
	C    chan struct{}
	done chan struct{}
	// Errors receives watcher errors (never blocking: extra ones are dropped).
	Errors chan error
}

// watchSources starts watching dir.
func watchSources(dir string, debounce time.Duration) (*sourceWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	s := &sourceWatcher{w: w, C: make(chan struct{}, 1), done: make(chan struct{}), Errors: make(chan error, 1)}
	if err := s.addTree(dir); err != nil {
		w.Close()
		return nil, err
	}
	go s.loop(debounce)
	return s, nil
}

// skipDir reports directories that hold no sources of the project.
func skipDir(name string) bool {
	return strings.HasPrefix(name, ".") || name == "vendor" || name == "node_modules"
}

func (s *sourceWatcher) addTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && skipDir(d.Name()) {
			return filepath.SkipDir
		}
		return s.w.Add(path)
	})
}

// isSource reports the files whose change means a rebuild.
func isSource(path string) bool {
	base := filepath.Base(path)
	return strings.HasSuffix(base, ".go") || base == "go.mod" || base == "go.sum" || base == project.ManifestFile
}

func (s *sourceWatcher) loop(debounce time.Duration) {
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-s.done:
			return
		case ev, ok := <-s.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && !skipDir(fi.Name()) {
					s.addTree(ev.Name) // a new package directory
				}
			}
			if !isSource(ev.Name) || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			select {
			case s.C <- struct{}{}:
			default: // a report is pending already
			}
		case err, ok := <-s.w.Errors:
			if !ok {
				return
			}
			select {
			case s.Errors <- err:
			default:
			}
		}
	}
}

// Close stops watching.
func (s *sourceWatcher) Close() error {
	close(s.done)
	return s.w.Close()
}
