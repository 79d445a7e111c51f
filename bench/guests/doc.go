// Package guests holds the WebAssembly guests of the benchmarks, one main
// package per directory, each built for wasip1.
//
// kv (with its mu.yaml) is the muDB benchmark's function: GET /get?key=
// answers Table.Get, POST /put?key= does Table.Put of the body, one db call
// per request; it is built as a reactor like every mu function.
//
// The others are the CPU-bound guests of the fuel benchmark, plain WASI
// commands:
//
//   - fib: recursive fib(30), call-heavy;
//   - loop: a tight xorshift loop, branch- and arithmetic-bound;
//   - sieve: a sieve of Eratosthenes over 10^7 bits, memory-bound.
//
// Each guest runs its workload the number of times given as its first
// argument (default 1), times every repetition itself and prints one line
// per repetition on stdout: "<result> <nanoseconds>". Timing inside the guest
// leaves out the Go runtime's start-up, so the host compares only the
// workload with fuel metering on and off.
package guests
