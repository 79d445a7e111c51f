package blobgen

import (
	"bytes"
	"hash/crc32"
	"io"
	"testing"
)

// The reader read in odd pieces yields exactly the chunks the guest sends.
func TestReaderMatchesChunks(t *testing.T) {
	const size = 3*ChunkSize + 12345
	var want bytes.Buffer
	buf := NewChunkBuf()
	for i, left := int64(0), int64(size); left > 0; i++ {
		Chunk(buf, i)
		n := min(left, ChunkSize)
		want.Write(buf[:n])
		left -= n
	}
	var got bytes.Buffer
	if _, err := io.CopyBuffer(&got, NewReader(size), make([]byte, 77777)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("reader and chunks differ (%d vs %d bytes)", got.Len(), want.Len())
	}
	if Sum(size) != crc32.ChecksumIEEE(want.Bytes()) {
		t.Fatal("Sum differs from the CRC-32 of the content")
	}
	if bytes.Equal(want.Bytes()[:ChunkSize], want.Bytes()[ChunkSize:2*ChunkSize]) {
		t.Fatal("chunks 0 and 1 are equal")
	}
}
