package membership

import (
	_ "embed"

	"github.com/muprotocol/mu/libs/config"
)

//go:embed membership.go
var configSource []byte

// ConfigDocs returns the doc comments of Config's fields, for a service's
// --help (the cluster_* settings).
func ConfigDocs() config.Docs {
	return config.MustParseDocs(configSource)
}
