// Command loop runs a tight xorshift loop of 50 million steps (see package guests).
package main

import (
	"os"
	"strconv"
	"time"
)

const steps = 50_000_000

func loop(n int) uint64 {
	x := uint64(88172645463325252)
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func main() {
	reps := 1
	if len(os.Args) > 1 {
		reps, _ = strconv.Atoi(os.Args[1])
	}
	for range reps {
		t := time.Now()
		r := loop(steps)
		ns := time.Since(t).Nanoseconds()
		os.Stdout.WriteString(strconv.FormatUint(r, 10) + " " + strconv.FormatInt(ns, 10) + "\n")
	}
}
