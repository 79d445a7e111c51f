module github.com/muprotocol/mu/sdk/go

go 1.26

require github.com/muprotocol/mu/libs v0.0.0

replace (
	github.com/muprotocol/mu/libs => ../../libs
	github.com/muprotocol/mu/proto => ../../proto
)
