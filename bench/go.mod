module github.com/muprotocol/mu/bench

go 1.26.0

require (
	github.com/bytecodealliance/wasmtime-go/v39 v39.0.1
	github.com/muprotocol/mu/libs v0.0.0
	github.com/muprotocol/mu/libs/fnproto v0.0.0
	github.com/muprotocol/mu/proto v0.0.0
	github.com/muprotocol/mu/region v0.0.0
	github.com/muprotocol/mu/services/runtime v0.0.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus v1.1.1 // indirect
	github.com/grpc-ecosystem/go-grpc-middleware/v2 v2.3.4 // indirect
	github.com/mr-tron/base58 v1.2.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/muprotocol/mu/services/gateway v0.0.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace (
	github.com/muprotocol/mu/libs => ../libs
	github.com/muprotocol/mu/proto => ../proto
	github.com/muprotocol/mu/region => ../region
	github.com/muprotocol/mu/services/gateway => ../services/gateway
	github.com/muprotocol/mu/services/runtime => ../services/runtime
)

replace github.com/muprotocol/mu/libs/fnproto => ../libs/fnproto

replace github.com/muprotocol/mu/services/mudb => ../services/mudb

// See services/mudb/go.mod: client-go's old genproto clashes with grpc's
// googleapis modules unless a post-split genproto is pinned.
replace google.golang.org/genproto => google.golang.org/genproto v0.0.0-20261026165753-2ffab32bce7e

replace github.com/muprotocol/mu/services/storage => ../services/storage
