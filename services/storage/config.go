package storage

import (
	_ "embed"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/service"
)

// Config configures a storage node. DefaultConfig fills every field; a YAML
// file, MU_STORAGE_<FIELD> environment variables and flags only override it.
type Config struct {
	// Base holds the settings every service shares: node_name, grpc_addr,
	// admin_addr (/metrics, /healthz, /readyz), shutdown_timeout, logging.
	service.Base
}

// DefaultConfig returns the defaults: loopback listeners.
func DefaultConfig() Config {
	return Config{Base: service.DefaultBase(
		"127.0.0.1:12030", // gRPC API
		"127.0.0.1:12031", // /metrics, /healthz, /readyz
	)}
}

// Validate reports every invalid field at once, wrapped in
// service.ErrInvalidConfig.
func (c Config) Validate() error {
	return service.Invalid("storage", c.Base.Validate())
}

//go:embed config.go
var configSource []byte

// ConfigDocs returns the doc comments of every setting, for --help.
func ConfigDocs() config.Docs {
	return config.Merge(service.ConfigDocs(), config.MustParseDocs(configSource))
}
