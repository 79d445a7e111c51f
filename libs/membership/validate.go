package membership

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Validate reports every invalid field, named cluster_<field>, at once
// (errors.Join). With membership off only the settings that are set are
// checked, so the zero Config is valid; with it on, the timings and
// multipliers must be set too. It never includes the secret key in an
// error.
func (c Config) Validate() error {
	var errs []error
	bad := func(setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster_"+setting+": "+format, args...))
	}
	on := c.Enabled()

	if c.BindAddr != "" {
		if host, _, err := checkHostPort(c.BindAddr, 0); err != nil {
			bad("bind_addr", "%q: %v", c.BindAddr, err)
		} else if host != "" {
			if err := checkIP(host); err != nil {
				bad("bind_addr", "%q: host %v", c.BindAddr, err)
			}
		}
	}
	if c.AdvertiseAddr != "" {
		if host, _, err := checkHostPort(c.AdvertiseAddr, 0); err != nil {
			bad("advertise_addr", "%q: %v", c.AdvertiseAddr, err)
		} else if err := checkIP(host); err != nil {
			bad("advertise_addr", "%q: host %v", c.AdvertiseAddr, err)
		} else if ip, _ := netip.ParseAddr(host); ip.IsUnspecified() || ip.IsMulticast() {
			bad("advertise_addr", "%q: host is not an address other nodes can reach", c.AdvertiseAddr)
		}
	}
	for i, a := range c.Join {
		host, _, err := checkHostPort(a, 1)
		switch {
		case err != nil:
			bad("join", "entry %d %q: %v", i, a, err)
		case checkIP(host) == nil:
			if ip, _ := netip.ParseAddr(host); ip.IsUnspecified() || ip.IsMulticast() {
				bad("join", "entry %d %q: host is not a node's address", i, a)
			}
		case strings.ContainsAny(host, ":%"):
			bad("join", "entry %d %q: host %v", i, a, checkIP(host))
		case !isHostName(host):
			bad("join", "entry %d %q: host is neither an IP address nor a host name", i, a)
		}
	}
	if c.SecretKey != "" {
		if _, err := decodeKey(c.SecretKey); err != nil {
			bad("secret_key", "%v", err)
		}
		if c.SecretKeyFile != "" {
			bad("secret_key_file", "set only one of cluster_secret_key and cluster_secret_key_file")
		}
	}
	if on && c.SecretKey == "" && c.SecretKeyFile == "" && !c.Plaintext {
		bad("secret_key", "gossip must be encrypted: set cluster_secret_key or cluster_secret_key_file, or cluster_plaintext: true (regions on one machine only)")
	}
	if c.Plaintext && (c.SecretKey != "" || c.SecretKeyFile != "") {
		bad("plaintext", "is set together with a gossip key: choose one")
	}

	durations := []struct {
		setting string
		d       time.Duration
	}{
		{"join_retry", c.JoinRetry},
		{"probe_interval", c.ProbeInterval},
		{"probe_timeout", c.ProbeTimeout},
		{"gossip_interval", c.GossipInterval},
		{"leave_timeout", c.LeaveTimeout},
		{"push_pull_interval", c.PushPullInterval},
	}
	if c.SecretKeyFile != "" && c.KeyReloadInterval <= 0 {
		bad("key_reload_interval", "%v is not a positive duration", c.KeyReloadInterval)
	}
	if c.JoinWait < 0 {
		bad("join_wait", "%v is negative", c.JoinWait)
	}
	for _, d := range durations {
		if (on || d.d != 0) && d.d <= 0 {
			bad(d.setting, "%v is not a positive duration", d.d)
		}
	}
	if c.ProbeTimeout > 0 && c.ProbeInterval > 0 && c.ProbeTimeout >= c.ProbeInterval {
		bad("probe_timeout", "%v is not below cluster_probe_interval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	ints := []struct {
		setting string
		n       int
	}{
		{"suspicion_mult", c.SuspicionMult},
		{"suspicion_max_timeout_mult", c.SuspicionMaxTimeoutMult},
		{"gossip_nodes", c.GossipNodes},
		{"retransmit_mult", c.RetransmitMult},
	}
	for _, n := range ints {
		if (on || n.n != 0) && n.n < 1 {
			bad(n.setting, "%d is below 1", n.n)
		}
	}
	return errors.Join(errs...)
}

// checkHostPort splits host:port and checks the port is a number from
// minPort to 65535.
func checkHostPort(s string, minPort int) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, errors.New("not host:port")
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || int(port) < minPort {
		return "", 0, fmt.Errorf("port %q is not a number from %d to 65535", p, minPort)
	}
	return host, int(port), nil
}

// checkIP reports whether host is an IP address literal without a zone.
func checkIP(host string) error {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%q is not an IP address", host)
	}
	if ip.Zone() != "" {
		return fmt.Errorf("%q has a zone, which is not supported", host)
	}
	return nil
}

// isHostName reports whether s looks like a DNS name: dot-separated
// labels of letters, digits, '-' and '_', 1 to 63 bytes each, not starting
// or ending with '-', at most 253 bytes, one trailing dot allowed.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}

// decodeKey decodes a SecretKey: standard base64 of 16, 24 or 32 bytes.
// Its errors do not quote the key.
func decodeKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not standard base64")
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("decodes to %d bytes, want 16, 24 or 32 (AES-128, -192 or -256)", n)
	}
	return key, nil
}
