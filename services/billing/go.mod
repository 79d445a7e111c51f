module github.com/muprotocol/mu/services/billing

go 1.26
