package gateway

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/usage"
)

// NodeConfig is a gateway node's settings (the mu-gateway command's): the
// gateway's Config plus the runtime it calls when it is not clustered and
// the stacks it installs from files.
type NodeConfig struct {
	Config
	// RuntimeAddr is the gRPC address (host:port) of the one runtime that
	// serves every stack (static mode). Either it or cluster_bind_addr is
	// required, not both: a clustered gateway places stacks on the
	// runtime members of its member list instead.
	RuntimeAddr string
	// Stacks installs stacks from manifest files at start, each
	// BASE58_ID=PATH.
	Stacks []string
}

//go:embed node.go
var nodeSource []byte

// DefaultNodeConfig is DefaultConfig with no runtime and no stacks.
func DefaultNodeConfig() NodeConfig { return NodeConfig{Config: DefaultConfig()} }

// NodeConfigDocs documents every NodeConfig setting.
func NodeConfigDocs() config.Docs {
	return config.Merge(ConfigDocs(), config.MustParseDocs(nodeSource))
}

// CheckNode requires exactly one of runtime_addr and cluster_bind_addr.
func CheckNode(c NodeConfig) error {
	switch clustered := c.Cluster.Enabled(); {
	case c.RuntimeAddr == "" && !clustered:
		return service.Invalid("gateway", []error{errors.New("runtime_addr (--runtime-addr, MU_GATEWAY_RUNTIME_ADDR) " +
			"or cluster_bind_addr (--cluster-bind-addr, MU_GATEWAY_CLUSTER_BIND_ADDR) is required: one runtime for every stack, " +
			"or placement on the runtime members of the cluster")})
	case c.RuntimeAddr != "" && clustered:
		return service.Invalid("gateway", []error{errors.New("runtime_addr and cluster_bind_addr exclude each other: " +
			"set runtime_addr for one runtime, or cluster_bind_addr (and cluster_join) to place stacks on the cluster's runtimes")})
	}
	return nil
}

// Node is a gateway with what a stand-alone node owns besides it: the
// runtime connections it dials in static mode (a clustered gateway owns its
// own) and the tracer provider of both (nil with tracing off). Close
// closes all three.
type Node struct {
	*Server
	conns *Conns
	tp    *sdktrace.TracerProvider
	// flush bounds the provider's last export: shutdown_timeout.
	flush time.Duration
}

// NewNode checks c (CheckNode), builds the tracer provider and the
// transport credentials from c.Base, dials c.RuntimeAddr in static mode,
// creates the gateway and installs c.Stacks. Without billing_addr usage is
// discarded (logged). The returned Node is not started.
func NewNode(c NodeConfig, log *slog.Logger) (*Node, error) {
	if err := CheckNode(c); err != nil {
		return nil, err
	}
	deps := Deps{Logger: log}
	if c.BillingAddr == "" {
		log.Warn("no billing_addr: usage is discarded, nothing is billed")
		deps.Usage = usage.Discard{}
	}
	// One provider for the gateway and the runtime connection dialled
	// here (the gateway would build its own from the same settings).
	tp, err := c.Base.NewTracerProvider("gateway")
	if err != nil {
		return nil, err
	}
	n := &Node{tp: tp, flush: c.ShutdownTimeout}
	if tp != nil {
		deps.TracerProvider = tp
	}
	tlsc, err := service.NewTLS(c.Base, log)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	n.conns = NewConns(append(RuntimeDialOptions(c.Base, tlsc), service.TraceDialOptions(deps.TracerProvider)...)...)
	if c.RuntimeAddr != "" {
		rt, err := DialRuntime(n.conns, c.RuntimeAddr)
		if err != nil {
			n.Close()
			return nil, err
		}
		deps.Runtimes = rt
	}
	if n.Server, err = New(c.Config, deps); err != nil {
		n.Close()
		return nil, err
	}
	for _, spec := range c.Stacks {
		if err := n.PutStackSpec(spec); err != nil {
			n.Close()
			return nil, service.Invalid("gateway", []error{err})
		}
	}
	return n, nil
}

// Close closes the gateway (if it was created), the runtime connections
// and the tracer provider, flushing its spans within shutdown_timeout.
func (n *Node) Close() error {
	var err error
	if n.Server != nil {
		err = n.Server.Close()
	}
	if n.conns != nil {
		err = errors.Join(err, n.conns.Close())
	}
	if n.tp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.flush)
		defer cancel()
		err = errors.Join(err, n.tp.Shutdown(ctx))
	}
	return err
}
