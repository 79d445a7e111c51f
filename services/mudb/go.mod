module github.com/muprotocol/mu/services/mudb

go 1.26
