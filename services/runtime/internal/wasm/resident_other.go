//go:build !linux

package wasm

// privatePages is not known off Linux (no pagemap): callers fall back to
// the declared size.
func privatePages(base uintptr, size uint64) (uint64, bool) { return 0, false }
