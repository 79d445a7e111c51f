module github.com/muprotocol/mu/libs/fnproto

go 1.26
