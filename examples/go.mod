module github.com/muprotocol/mu/examples

go 1.26

require (
	github.com/muprotocol/mu/libs v0.0.0
	github.com/muprotocol/mu/libs/fnproto v0.0.0
	github.com/muprotocol/mu/sdk/go v0.0.0
)

require gopkg.in/yaml.v3 v3.0.1 // indirect

replace (
	github.com/muprotocol/mu/libs => ../libs
	github.com/muprotocol/mu/libs/fnproto => ../libs/fnproto
	github.com/muprotocol/mu/proto => ../proto
	github.com/muprotocol/mu/sdk/go => ../sdk/go
)
