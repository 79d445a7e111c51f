package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// Files are the PEM files of a node's TLS material, named as the settings
// that give them (service.Base's tls_cert_file, tls_key_file, tls_ca_file),
// which is how errors name them.
type Files struct {
	Cert string // this node's certificate (and any intermediates after it)
	Key  string // its private key
	CA   string // the CAs that sign the region's certificates, one or more
}

// Reloader holds a node's TLS material loaded from Files and loads it
// again when the files change: Watch polls them, and a handshake checks
// them itself when the last check is older than the interval, so no
// connection made after a change waits on Watch. New handshakes use what
// was loaded last; connections already made keep theirs. New files that do
// not make a valid set (unreadable, a key that does not match the
// certificate, a certificate without a mu identity or not signed by a CA of
// the bundle) are refused and logged, and the old material stays in use.
// Reading the files and comparing their bytes, rather than watching them,
// is what sees a Kubernetes Secret volume's update (a symlink swap of the
// whole directory) as well as a file rewritten in place. Its methods are
// safe for concurrent use.
type Reloader struct {
	files    Files
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu        sync.Mutex // held by a check
	lastCheck time.Time
	loaded    [3][]byte // the files' bytes that cur was made from
	refused   [sha256.Size]byte

	cur atomic.Pointer[material]
}

// material is one loaded set of files and the credentials made from it.
type material struct {
	cert   tls.Certificate // Leaf set
	id     Identity
	roots  *x509.CertPool
	files  Files
	server credentials.TransportCredentials

	mu      sync.Mutex
	clients map[Role]credentials.TransportCredentials
}

// NewReloader loads files, failing with an error that names the file and
// the setting when they do not make a valid set. interval is how often
// Watch polls and how old the last check may be when a handshake starts.
// A certificate that has expired loads (with an error logged) so that the
// node starts and serves what needs no peer; its peers refuse it and its
// own dials fail with an error saying it expired. log may be nil.
func NewReloader(files Files, interval time.Duration, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		return nil, fmt.Errorf("certs: reload interval must be positive, got %v", interval)
	}
	r := &Reloader{files: files, interval: interval, log: log, now: time.Now}
	data, err := readFiles(files)
	if err != nil {
		return nil, err
	}
	m, err := load(files, data)
	if err != nil {
		return nil, err
	}
	r.loaded, r.lastCheck = data, r.now()
	r.cur.Store(m)
	r.warnExpiry(m)
	return r, nil
}

// Identity is the identity of the certificate in use.
func (r *Reloader) Identity() Identity { return r.cur.Load().id }

// Certificate is the certificate in use (the leaf).
func (r *Reloader) Certificate() *x509.Certificate { return r.cur.Load().cert.Leaf }

// Check reads the files now and loads them if they changed. It returns nil
// when they are unchanged or were loaded, and the reason when they were
// refused (the old material stays in use; the refusal is logged once per
// distinct content).
func (r *Reloader) Check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checkLocked()
}

func (r *Reloader) checkLocked() error {
	r.lastCheck = r.now()
	data, err := readFiles(r.files)
	if err == nil && bytes.Equal(data[0], r.loaded[0]) && bytes.Equal(data[1], r.loaded[1]) && bytes.Equal(data[2], r.loaded[2]) {
		return nil
	}
	var m *material
	if err == nil {
		m, err = load(r.files, data)
	}
	if err != nil {
		sum := sha256.Sum256([]byte(err.Error()))
		if sum != r.refused {
			r.refused = sum
			old := r.cur.Load().cert.Leaf
			r.log.Error("TLS files changed but were refused; keeping the certificate in use",
				"err", err, "identity", r.cur.Load().id.String(), "serial", serialOf(old), "not_after", old.NotAfter)
		}
		return err
	}
	r.loaded, r.refused = data, [sha256.Size]byte{}
	prev := r.cur.Swap(m)
	r.log.Info("TLS certificate reloaded", "identity", m.id.String(), "serial", serialOf(m.cert.Leaf),
		"previous_serial", serialOf(prev.cert.Leaf), "not_after", m.cert.Leaf.NotAfter, "ca_file", r.files.CA)
	r.warnExpiry(m)
	return nil
}

func (r *Reloader) warnExpiry(m *material) {
	if leaf := m.cert.Leaf; r.now().After(leaf.NotAfter) {
		r.log.Error("this node's TLS certificate has expired: peers refuse it", "file", r.files.Cert,
			"identity", m.id.String(), "serial", serialOf(leaf), "not_after", leaf.NotAfter)
	}
}

// Watch checks the files every interval until stop is closed. It blocks;
// run it in its own goroutine.
func (r *Reloader) Watch(stop <-chan struct{}) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_ = r.Check() // refusals are logged
		}
	}
}

// current returns the material for a new handshake, checking the files
// first if the last check is older than the interval and no other check
// runs (a handshake never waits for another's check).
func (r *Reloader) current() *material {
	if r.mu.TryLock() {
		if r.now().Sub(r.lastCheck) >= r.interval {
			_ = r.checkLocked()
		}
		r.mu.Unlock()
	}
	return r.cur.Load()
}

func readFiles(f Files) ([3][]byte, error) {
	var data [3][]byte
	for i, file := range []struct{ setting, path string }{{"tls_cert_file", f.Cert}, {"tls_key_file", f.Key}, {"tls_ca_file", f.CA}} {
		b, err := os.ReadFile(file.path)
		if err != nil {
			return data, fmt.Errorf("%s: %w", file.setting, err)
		}
		data[i] = b
	}
	return data, nil
}

// load checks that data (the bytes of files) make a valid set and builds
// the server credentials of it.
func load(files Files, data [3][]byte) (*material, error) {
	pair, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return nil, fmt.Errorf("tls_cert_file %s, tls_key_file %s: %w", files.Cert, files.Key, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls_cert_file %s: %w", files.Cert, err)
		}
		pair.Leaf = leaf
	}
	id, err := ParseIdentity(leaf)
	if err != nil {
		return nil, fmt.Errorf("tls_cert_file %s: %w", files.Cert, err)
	}
	cas, err := parseCerts(data[2])
	if err != nil {
		return nil, fmt.Errorf("tls_ca_file %s: %w", files.CA, err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	// The chain is checked at a time the certificate is valid: an expired
	// one loads (NewReloader says why), one of another CA does not.
	at := time.Now()
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates(pair.Certificate), CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("tls_cert_file %s (%s) is not signed by a CA of tls_ca_file %s: %w", files.Cert, id, files.CA, err)
	}
	m := &material{cert: pair, id: id, roots: roots, files: files, clients: map[Role]credentials.TransportCredentials{}}
	m.server = credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
	})
	return m, nil
}

func intermediates(chain [][]byte) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, der := range chain[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			pool.AddCert(c)
		}
	}
	return pool
}
