module github.com/muprotocol/mu/sdk/go

go 1.26

require github.com/muprotocol/mu/libs/fnproto v0.0.0

replace github.com/muprotocol/mu/libs/fnproto => ../../libs/fnproto
