// Command fib computes fib(30) recursively (see package guests).
package main

import (
	"os"
	"strconv"
	"time"
)

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func main() {
	reps := 1
	if len(os.Args) > 1 {
		reps, _ = strconv.Atoi(os.Args[1])
	}
	for range reps {
		t := time.Now()
		r := fib(30)
		ns := time.Since(t).Nanoseconds()
		os.Stdout.WriteString(strconv.Itoa(r) + " " + strconv.FormatInt(ns, 10) + "\n")
	}
}
