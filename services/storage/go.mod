module github.com/muprotocol/mu/services/storage

go 1.26
