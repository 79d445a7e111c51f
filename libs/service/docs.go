package service

import (
	_ "embed"

	"github.com/muprotocol/mu/libs/config"
)

//go:embed base.go
var baseSource []byte

// ConfigDocs returns the doc comments of Base's fields, for --help; a
// service merges them with its own (config.Merge).
func ConfigDocs() config.Docs {
	return config.MustParseDocs(baseSource)
}
