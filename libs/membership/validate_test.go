package membership

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/config"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.Enabled() {
		t.Error("DefaultConfig is enabled")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	c.BindAddr = "0.0.0.0:7946"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "cluster_secret_key: gossip must be encrypted") {
		t.Errorf("DefaultConfig with a BindAddr and no key: %v, want gossip must be encrypted", err)
	}
	c.SecretKeyFile = "/etc/mu/gossip/keys"
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig with a BindAddr and a key file: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config (off): %v", err)
	}
	// Every field of the enabled DefaultConfig is set except the optional
	// ones.
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		switch name {
		case "AdvertiseAddr", "Join", "SecretKey", "Plaintext":
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("DefaultConfig leaves %s unset", name)
		}
	}
}

func TestValidate(t *testing.T) {
	// on is membership on, plaintext unless f sets a key.
	on := func(f func(*Config)) Config {
		c := DefaultConfig()
		c.BindAddr = "127.0.0.1:0"
		f(&c)
		if c.SecretKey == "" && c.SecretKeyFile == "" {
			c.Plaintext = true
		}
		return c
	}
	noKey := DefaultConfig()
	noKey.BindAddr = "127.0.0.1:0"
	valid := []Config{
		on(func(c *Config) {}),
		on(func(c *Config) { c.BindAddr = ":7946" }),
		on(func(c *Config) { c.BindAddr = "[::]:7946" }),
		on(func(c *Config) { c.BindAddr = "[::1]:0" }),
		on(func(c *Config) { c.AdvertiseAddr = "10.0.0.1:7946" }),
		on(func(c *Config) { c.AdvertiseAddr = "[fd00::1]:0" }),
		on(func(c *Config) {
			c.Join = []string{"10.0.0.1:7946", "[fd00::1]:7946", "mu-runtime.mu.svc.cluster.local:7946", "localhost:1", "node_1.:7946"}
		}),
		on(func(c *Config) { c.SecretKey = key(0, 16) }),
		on(func(c *Config) { c.SecretKey = key(0, 24) }),
		on(func(c *Config) { c.SecretKey = key(0, 32) }),
		on(func(c *Config) { c.SecretKeyFile = "/etc/mu/gossip/keys" }),
		{AdvertiseAddr: "10.0.0.1:7946", ProbeInterval: time.Second}, // off, only what is set
	}
	for _, c := range valid {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}

	cases := []struct {
		cfg  Config
		want []string // each an expected line of the error
	}{
		{on(func(c *Config) { c.BindAddr = "127.0.0.1" }), []string{`cluster_bind_addr: "127.0.0.1": not host:port`}},
		{on(func(c *Config) { c.BindAddr = "localhost:7946" }), []string{`cluster_bind_addr: "localhost:7946": host "localhost" is not an IP address`}},
		{on(func(c *Config) { c.BindAddr = "1.2.3.4:65536" }), []string{`cluster_bind_addr: "1.2.3.4:65536": port "65536" is not a number from 0 to 65535`}},
		{on(func(c *Config) { c.BindAddr = "[fe80::1%eth0]:1" }), []string{`cluster_bind_addr: "[fe80::1%eth0]:1": host "fe80::1%eth0" has a zone`}},
		{on(func(c *Config) { c.AdvertiseAddr = "mu.example:7946" }), []string{`cluster_advertise_addr: "mu.example:7946": host "mu.example" is not an IP address`}},
		{on(func(c *Config) { c.AdvertiseAddr = "0.0.0.0:7946" }), []string{`cluster_advertise_addr: "0.0.0.0:7946": host is not an address other nodes can reach`}},
		{on(func(c *Config) { c.AdvertiseAddr = "10.0.0.1:x" }), []string{`cluster_advertise_addr: "10.0.0.1:x": port "x" is not a number`}},
		{on(func(c *Config) { c.Join = []string{"ok:1", "10.0.0.1"} }), []string{`cluster_join: entry 1 "10.0.0.1": not host:port`}},
		{on(func(c *Config) { c.Join = []string{"10.0.0.1:0"} }), []string{`cluster_join: entry 0 "10.0.0.1:0": port "0" is not a number from 1 to 65535`}},
		{on(func(c *Config) { c.Join = []string{"bad host:1"} }), []string{`cluster_join: entry 0 "bad host:1": host is neither an IP address nor a host name`}},
		{on(func(c *Config) { c.Join = []string{"[::]:1"} }), []string{`cluster_join: entry 0 "[::]:1": host is not a node's address`}},
		{on(func(c *Config) { c.Join = []string{""} }), []string{`cluster_join: entry 0 "": not host:port`}},
		{on(func(c *Config) { c.SecretKey = "not base64!" }), []string{`cluster_secret_key: not standard base64`}},
		{on(func(c *Config) { c.SecretKey = key(0, 20) }), []string{`cluster_secret_key: decodes to 20 bytes, want 16, 24 or 32`}},
		{noKey, []string{`cluster_secret_key: gossip must be encrypted: set cluster_secret_key or cluster_secret_key_file, or cluster_plaintext: true`}},
		{on(func(c *Config) { c.SecretKey = key(0, 16); c.SecretKeyFile = "keys" }), []string{`cluster_secret_key_file: set only one of cluster_secret_key and cluster_secret_key_file`}},
		{on(func(c *Config) { c.SecretKey = key(0, 16); c.Plaintext = true }), []string{`cluster_plaintext: is set together with a gossip key`}},
		{on(func(c *Config) { c.SecretKeyFile = "keys"; c.KeyReloadInterval = 0 }), []string{`cluster_key_reload_interval: 0s is not a positive duration`}},
		{on(func(c *Config) { c.PushPullInterval = 0 }), []string{`cluster_push_pull_interval: 0s is not a positive duration`}},
		{on(func(c *Config) { c.ProbeTimeout = c.ProbeInterval }), []string{`cluster_probe_timeout: 500ms is not below cluster_probe_interval 500ms`}},
		{on(func(c *Config) { c.JoinRetry = 0 }), []string{`cluster_join_retry: 0s is not a positive duration`}},
		{on(func(c *Config) { c.GossipNodes = 0 }), []string{`cluster_gossip_nodes: 0 is below 1`}},
		{Config{ProbeInterval: -time.Second, SuspicionMult: -1}, []string{ // off: what is set is checked
			`cluster_probe_interval: -1s is not a positive duration`,
			`cluster_suspicion_mult: -1 is below 1`,
		}},
		// Every field wrong at once: every problem is reported.
		{Config{
			BindAddr:                "nope",
			AdvertiseAddr:           "[::]:1",
			Join:                    []string{"a:b"},
			JoinRetry:               -1,
			JoinWait:                -1,
			SecretKey:               "AAAA",
			ProbeInterval:           -1,
			ProbeTimeout:            0,
			SuspicionMult:           0,
			SuspicionMaxTimeoutMult: -2,
			GossipInterval:          0,
			GossipNodes:             -1,
			RetransmitMult:          0,
			LeaveTimeout:            -time.Second,
		}, []string{
			`cluster_bind_addr: "nope": not host:port`,
			`cluster_advertise_addr: "[::]:1": host is not an address other nodes can reach`,
			`cluster_join: entry 0 "a:b": port "b" is not a number from 1 to 65535`,
			`cluster_join_retry: -1ns is not a positive duration`,
			`cluster_join_wait: -1ns is negative`,
			`cluster_secret_key: decodes to 3 bytes, want 16, 24 or 32 (AES-128, -192 or -256)`,
			`cluster_probe_interval: -1ns is not a positive duration`,
			`cluster_probe_timeout: 0s is not a positive duration`,
			`cluster_gossip_interval: 0s is not a positive duration`,
			`cluster_push_pull_interval: 0s is not a positive duration`,
			`cluster_leave_timeout: -1s is not a positive duration`,
			`cluster_suspicion_mult: 0 is below 1`,
			`cluster_suspicion_max_timeout_mult: -2 is below 1`,
			`cluster_gossip_nodes: -1 is below 1`,
			`cluster_retransmit_mult: 0 is below 1`,
		}},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil {
			t.Errorf("%+v: no error, want %q", c.cfg, c.want)
			continue
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != len(c.want) {
			t.Errorf("%+v: %d problems, want %d:\n%v", c.cfg, len(lines), len(c.want), err)
		}
		for _, w := range c.want {
			found := false
			for _, l := range lines {
				found = found || strings.HasPrefix(l, w)
			}
			if !found {
				t.Errorf("%+v: no problem %q in\n%v", c.cfg, w, err)
			}
		}
	}
}

// TestValidateNames checks that Validate names each field the way
// libs/config names the settings of a field named Cluster.
func TestValidateNames(t *testing.T) {
	err := Config{
		BindAddr: "x", AdvertiseAddr: "x", Join: []string{"x"}, JoinRetry: -1, JoinWait: -1, SecretKey: "x",
		ProbeInterval: -1, ProbeTimeout: -1, SuspicionMult: -1, SuspicionMaxTimeoutMult: -1,
		GossipInterval: -1, GossipNodes: -1, RetransmitMult: -1, LeaveTimeout: -1,
		SecretKeyFile: "keys", KeyReloadInterval: -1, Plaintext: true, PushPullInterval: -1,
	}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		setting := config.SnakeCase("Cluster") + "_" + config.SnakeCase(typ.Field(i).Name) + ": "
		if !strings.Contains(err.Error(), setting) {
			t.Errorf("field %s: no problem named %q in\n%v", typ.Field(i).Name, setting, err)
		}
	}
}

func TestSecretKeyNotInErrors(t *testing.T) {
	secret := key(7, 20) // valid base64, wrong size
	if err := (Config{SecretKey: secret}).Validate(); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("error %v: want one that does not quote the key", err)
	}
	secret = "c2VjcmV0!!"
	if err := (Config{SecretKey: secret}).Validate(); err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("error %v: want one that does not quote the key", err)
	}
}
