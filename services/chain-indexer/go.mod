module github.com/muprotocol/mu/services/chain-indexer

go 1.26
