module github.com/muprotocol/mu/libs

go 1.26.0

require gopkg.in/yaml.v3 v3.0.1

require (
	github.com/mr-tron/base58 v1.2.0
	google.golang.org/protobuf v1.36.12 // indirect
)

require github.com/muprotocol/mu/proto v0.0.0

replace github.com/muprotocol/mu/proto => ../proto
