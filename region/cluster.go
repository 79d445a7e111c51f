package region

import (
	"fmt"
	"net"

	"github.com/muprotocol/mu/libs/membership"
)

// ClusterOptions configure the region's member list (Options.Cluster).
// Every member binds its gossip port on 127.0.0.1 and joins through the
// members started before it.
type ClusterOptions struct {
	// Config, if set, adjusts every member's membership settings (probe
	// and suspicion timings, secret key) after the region has set the
	// bind address and the join list. The members gossip in plaintext
	// unless it sets a key.
	Config func(c *membership.Config)
}

// clusterConfig makes c the settings of the region's next member, or
// leaves it off without Options.Cluster.
func (r *Region) clusterConfig(c *membership.Config) error {
	co := r.opts.Cluster
	if co == nil {
		return nil
	}
	c.BindAddr = "127.0.0.1:0"
	if r.procs != nil {
		// A child is told its port up front.
		addr, err := freeGossipPort()
		if err != nil {
			return err
		}
		c.BindAddr = addr
	}
	r.mu.Lock()
	c.Join = append([]string(nil), r.gossip...)
	r.mu.Unlock()
	// A region on one machine gossips in plaintext, said explicitly
	// (membership refuses unencrypted gossip otherwise), unless Config
	// gives a key.
	c.Plaintext = true
	if co.Config != nil {
		co.Config(c)
		if c.SecretKey != "" || c.SecretKeyFile != "" {
			c.Plaintext = false
		}
	}
	return nil
}

// joined records a member's gossip address for the members after it.
func (r *Region) joined(addr string) {
	if addr == "" {
		return
	}
	r.mu.Lock()
	r.gossip = append(r.gossip, addr)
	r.mu.Unlock()
}

// ClusterAddr is the node's bound gossip address, or "" without
// Options.Cluster.
func (n *RuntimeNode) ClusterAddr() string { return n.clusterAddr }

// ClusterAddr is the gateway's bound gossip address, or "" without
// Options.Cluster.
func (g *GatewayNode) ClusterAddr() string { return g.clusterAddr }

// gossipPortTries bounds the search for a port free for both TCP and UDP.
const gossipPortTries = 20

// freeGossipPort is a loopback address whose port is free for TCP and
// UDP right now: memberlist binds both.
func freeGossipPort() (string, error) {
	var last error
	for range gossipPortTries {
		addr, err := freePort("127.0.0.1:0")
		if err != nil {
			return "", err
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			last = err
			continue
		}
		pc.Close()
		return addr, nil
	}
	return "", fmt.Errorf("region: no port free for both TCP and UDP on 127.0.0.1: %w", last)
}
