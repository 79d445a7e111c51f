package membership

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// gossipKeys are the keys a member starts with or reloads: keys[0]
// encrypts, all decrypt. raw is the key file's content (nil without one).
type gossipKeys struct {
	keys [][]byte
	raw  []byte
}

// loadKeys returns SecretKey, or SecretKeyFile's keys, or none.
func (c Config) loadKeys() (gossipKeys, error) {
	if c.SecretKey != "" {
		k, err := decodeKey(c.SecretKey)
		if err != nil {
			return gossipKeys{}, fmt.Errorf("cluster_secret_key: %w", err)
		}
		return gossipKeys{keys: [][]byte{k}}, nil
	}
	if c.SecretKeyFile == "" {
		return gossipKeys{}, nil
	}
	raw, err := os.ReadFile(c.SecretKeyFile)
	if err != nil {
		return gossipKeys{}, fmt.Errorf("cluster_secret_key_file: %w", err)
	}
	keys, err := parseKeyFile(raw)
	if err != nil {
		return gossipKeys{}, fmt.Errorf("cluster_secret_key_file %s: %w", c.SecretKeyFile, err)
	}
	return gossipKeys{keys: keys, raw: raw}, nil
}

// parseKeyFile reads one base64 key per line, skipping blank lines and
// # comments. It needs at least one key and refuses duplicates; its errors
// name the line, never the key.
func parseKeyFile(raw []byte) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := decodeKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			return nil, fmt.Errorf("line %d: the same key is listed twice", i+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("holds no key (one base64 key per line)")
	}
	return keys, nil
}

// reloadKeys reads SecretKeyFile every KeyReloadInterval until Close and
// applies a changed file to the keyring. It runs in its own goroutine.
func (l *List) reloadKeys() {
	t := time.NewTicker(l.cfg.KeyReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if err := l.reloadKeysOnce(); err != nil {
			l.log.Error("membership: gossip keys not reloaded; the keys in use stay", "file", l.cfg.SecretKeyFile, "err", err)
		}
	}
}

// reloadKeysOnce applies the key file if its content changed since the
// last attempt: the new keys are added, the first becomes the one that
// encrypts, and keys no longer listed are removed. A file that is the same
// as last time, applied or refused, is not looked at again.
func (l *List) reloadKeysOnce() error {
	raw, err := os.ReadFile(l.cfg.SecretKeyFile)
	if err != nil {
		return err
	}
	if bytes.Equal(raw, l.keysSeen) {
		return nil
	}
	l.keysSeen = raw
	keys, err := parseKeyFile(raw)
	if err != nil {
		return err
	}
	kr := l.keyring
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("add a key: %w", err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("use the first key: %w", err)
	}
	for _, old := range kr.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
			if err := kr.RemoveKey(old); err != nil {
				return fmt.Errorf("remove a key no longer listed: %w", err)
			}
		}
	}
	l.log.Info("membership: gossip keys reloaded", "file", l.cfg.SecretKeyFile, "keys", len(keys))
	return nil
}
