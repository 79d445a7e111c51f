// Package blobgen makes the deterministic objects of the storage64 bench
// step: the same bytes in the blob guest (wasm) and in the load generator,
// so both paths store and read identical content without holding it.
//
// An object is a sequence of 1 MiB chunks; chunk i is one fixed
// pseudo-random block whose first 8 bytes are i, big endian. Making a
// chunk costs an 8-byte store, not a pass over its bytes (that would be
// fuel in the guest). The checksum is CRC-32 (IEEE): cheap enough to run
// over 64 MiB inside a fuel-metered function.
package blobgen

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"
)

// ChunkSize is the generator's unit: 1 MiB.
const ChunkSize = 1 << 20

var (
	blockOnce sync.Once
	block     []byte
)

// base is the shared pseudo-random block (xorshift64, fixed seed).
func base() []byte {
	blockOnce.Do(func() {
		block = make([]byte, ChunkSize)
		x := uint64(0x9e3779b97f4a7c15)
		for i := 0; i < ChunkSize; i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			binary.LittleEndian.PutUint64(block[i:], x)
		}
	})
	return block
}

// Chunk fills buf (ChunkSize bytes, or fewer for the last chunk) with
// chunk i. buf must hold the base block already (NewChunkBuf) or be
// refilled by the caller; only the header changes between chunks.
func Chunk(buf []byte, i int64) {
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], uint64(i))
	copy(buf, h[:])
}

// NewChunkBuf returns a ChunkSize buffer holding the base block.
func NewChunkBuf() []byte { return append([]byte(nil), base()...) }

// Reader yields the object of size bytes; it is only an io.Reader (no
// ReaderAt or Seeker), so clients stream it as they would a request body.
type Reader struct {
	size, off int64
	buf       []byte
}

// NewReader returns the object of size bytes as a stream.
func NewReader(size int64) *Reader { return &Reader{size: size, buf: NewChunkBuf()} }

func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.size {
		i, at := r.off/ChunkSize, int(r.off%ChunkSize)
		Chunk(r.buf, i)
		k := copy(p[n:], r.buf[at:min(ChunkSize, at+int(r.size-r.off))])
		n += k
		r.off += int64(k)
	}
	return n, nil
}

// Sum is the CRC-32 (IEEE) of the object of size bytes.
func Sum(size int64) uint32 {
	h := crc32.NewIEEE()
	io.CopyBuffer(h, NewReader(size), make([]byte, ChunkSize))
	return h.Sum32()
}
