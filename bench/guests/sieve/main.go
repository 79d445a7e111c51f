// Command sieve counts the primes below 10^7 with a bit sieve (see package guests).
package main

import (
	"os"
	"strconv"
	"time"
)

const limit = 10_000_000

// sieve returns the number of primes below n, marking composites in a
// freshly allocated bit set of n bits.
func sieve(n int) int {
	bits := make([]uint64, (n+63)/64)
	count := 0
	for i := 2; i < n; i++ {
		if bits[i>>6]&(1<<(i&63)) != 0 {
			continue
		}
		count++
		for j := i * i; j < n; j += i {
			bits[j>>6] |= 1 << (j & 63)
		}
	}
	return count
}

func main() {
	reps := 1
	if len(os.Args) > 1 {
		reps, _ = strconv.Atoi(os.Args[1])
	}
	for range reps {
		t := time.Now()
		r := sieve(limit)
		ns := time.Since(t).Nanoseconds()
		os.Stdout.WriteString(strconv.Itoa(r) + " " + strconv.FormatInt(ns, 10) + "\n")
	}
}
