// Command mu is the developer CLI of mu, the decentralized serverless cloud.
// The commands live in internal/cmd; this file only wires them to the process.
package main

import (
	"os"

	"github.com/muprotocol/mu/cli/internal/cmd"
)

func main() { os.Exit(cmd.Execute()) }
