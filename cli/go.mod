module github.com/muprotocol/mu/cli

go 1.26

require (
	github.com/bytecodealliance/wasmtime-go/v39 v39.0.1
	github.com/muprotocol/mu/libs v0.0.0
	github.com/muprotocol/mu/proto v0.0.0
	github.com/muprotocol/mu/services/gateway v0.0.0
	github.com/muprotocol/mu/services/runtime v0.0.0
	github.com/spf13/cobra v1.10.2
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace (
	github.com/muprotocol/mu/libs => ../libs
	github.com/muprotocol/mu/proto => ../proto
	github.com/muprotocol/mu/services/gateway => ../services/gateway
	github.com/muprotocol/mu/services/runtime => ../services/runtime
)
