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
	d, err := config.ParseDocs(baseSource)
	if err != nil {
		panic("service: base.go does not parse: " + err.Error()) // compiled from this very source
	}
	return d
}
