// Package guests holds the CPU-bound WebAssembly guests of the fuel
// benchmark, one main package per directory, each built for wasip1:
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
