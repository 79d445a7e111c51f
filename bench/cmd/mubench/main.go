// Command mubench runs mu's benchmark suite (package bench).
//
//	mubench [-out DIR] [-quick] [-only part,part]
//
// The full run writes DIR/results.json, DIR/results.md and CPU profiles
// under DIR/profiles; -only runs some parts and merges their figures into
// the DIR/results.json and DIR/results.md already there; -quick prints the
// key figures, one "name: value" per line, and writes nothing. Progress
// goes to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/muprotocol/mu/bench"
)

func main() {
	bench.MaybeRunChild() // the load generator (throughput, muDB and storage64 steps) is this binary in a process of its own
	out := flag.String("out", "bench", "directory for results.json, results.md and profiles/")
	quick := flag.Bool("quick", false, "measure the key figures only and print them (under a minute)")
	only := flag.String("only", "", "comma-separated parts to run: fuel, coldstart, instancestart, throughput, wrk, profile, mudb, storage64, ledger, deadline, density, idlestacks, placement (default all; the others' figures are kept from DIR)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := bench.Options{Out: *out, Quick: *quick, Log: os.Stderr}
	if *only != "" {
		opts.Only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			opts.Only[strings.TrimSpace(p)] = true
		}
	}
	res, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mubench:", err)
		os.Exit(1)
	}
	if *quick {
		for _, line := range res.QuickLines() {
			fmt.Println(line)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "wrote %s/results.json and %s/results.md in %s\n", *out, *out, res.Duration.Round(1e8))
}
