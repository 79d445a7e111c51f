// Package s3test runs a real S3 server for tests: versitygw (posix backend)
// on a free loopback port over a temporary directory.
//
// The binary is found through $MU_VERSITYGW (set by the Makefile) or
// .tmp/bin/versitygw under the repository root (`make versitygw` installs it
// there at the pinned version). Tests that need it fail, naming that
// command, when it is missing; they skip only under -short.
package s3test

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server is a running versitygw.
type Server struct {
	// Endpoint is host:port (plain HTTP).
	Endpoint  string
	AccessKey string
	SecretKey string

	cmd  *exec.Cmd
	dir  string
	done chan error
	once sync.Once
}

// Binary returns the path of the versitygw binary.
func Binary() (string, error) {
	if p := os.Getenv("MU_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MU_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			p := filepath.Join(dir, ".tmp", "bin", "versitygw")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("versitygw not found at %s: run `make test` (or `make versitygw`) at the repository root", p)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("versitygw not found: no go.work above the working directory and MU_VERSITYGW unset; run `make test`")
		}
		dir = parent
	}
}

// Start runs versitygw over a new temporary directory on a free port and
// waits until it accepts connections.
func Start() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mu-versitygw-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Endpoint: addr, AccessKey: "mu-test-access", SecretKey: "mu-test-secret-key", dir: dir, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "--port", addr, "--quiet", "posix", dir)
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case err := <-s.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("versitygw exited before serving: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("versitygw did not listen on %s within 20s", addr)
		}
	}
}

// Close kills the server and removes its directory. Safe to call twice.
func (s *Server) Close() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
		os.RemoveAll(s.dir)
	})
}

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
	buckets    atomic.Int64
)

// Run is a package's TestMain body: it runs the tests and stops the shared
// server if one was started.
func Run(m *testing.M) int {
	flag.Parse()
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	return code
}

// Shared returns the package's one versitygw, starting it on first use. It
// fails tb when versitygw cannot run and skips it under -short.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs versitygw; skipped under -short")
	}
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		tb.Fatalf("s3 test server: %v", sharedErr)
	}
	return shared
}

// Bucket returns a bucket name not used before in this process (the
// caller creates it).
func Bucket() string { return fmt.Sprintf("mu-test-%d-%d", os.Getpid()%100000, buckets.Add(1)) }
