//go:build linux

package wasm

import (
	"encoding/binary"
	"os"
	"sync"
)

// pagemap is /proc/self/pagemap, opened once: one 64-bit entry per virtual
// page of the process (Documentation/admin-guide/mm/pagemap.rst).
var pagemap struct {
	once sync.Once
	f    *os.File
	size uint64 // the page size
}

const (
	pagePresent  = 1 << 63
	pageSwapped  = 1 << 62
	pageFileOrSh = 1 << 61 // a file page or shared anonymous memory
)

// privatePages counts the pages of [base, base+size) that are resident (or
// swapped out) and private to this mapping: anonymous pages the process
// wrote, not pages of a file or of shared memory it only reads. It reports
// false where pagemap cannot be read.
func privatePages(base uintptr, size uint64) (bytes uint64, ok bool) {
	pagemap.once.Do(func() {
		pagemap.size = uint64(os.Getpagesize())
		if f, err := os.Open("/proc/self/pagemap"); err == nil {
			pagemap.f = f
		}
	})
	if pagemap.f == nil || base == 0 {
		return 0, false
	}
	if size == 0 {
		return 0, true
	}
	ps := pagemap.size
	first := uint64(base) / ps
	n := (uint64(base)%ps + size + ps - 1) / ps
	buf := make([]byte, 8*min(n, 8192))
	var pages uint64
	for done := uint64(0); done < n; {
		chunk := min(n-done, uint64(len(buf)/8))
		b := buf[:8*chunk]
		if _, err := pagemap.f.ReadAt(b, int64((first+done)*8)); err != nil {
			return 0, false
		}
		for k := uint64(0); k < chunk; k++ {
			e := binary.LittleEndian.Uint64(b[8*k:])
			if e&(pagePresent|pageSwapped) != 0 && e&pageFileOrSh == 0 {
				pages++
			}
		}
		done += chunk
	}
	return pages * ps, true
}
