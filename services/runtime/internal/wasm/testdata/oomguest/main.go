// Command oomguest is a test function for the runtime's memory limit: a
// WASI command that reads its request from stdin, then allocates 16 MiB at
// a time, touching each block, until the Go runtime gives up.
package main

import "os"

var keep [][]byte

func main() {
	buf := make([]byte, 64<<10)
	if n, _ := os.Stdin.Read(buf); n == 0 {
		return
	}
	for {
		b := make([]byte, 16<<20)
		for k := 0; k < len(b); k += 4096 {
			b[k] = 1
		}
		keep = append(keep, b)
	}
}
