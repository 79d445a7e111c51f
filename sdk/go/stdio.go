package mu

import (
	"os"
	"sync"
)

var (
	stdoutOnce sync.Once
	stdoutFile *os.File
)

// protocolStdout keeps the process's standard output (file descriptor 1)
// for protocol frames and points os.Stdout at os.Stderr, so that prints
// from the function or its libraries cannot corrupt the stream. It runs
// once; later calls return the same file.
func protocolStdout() *os.File {
	stdoutOnce.Do(func() {
		stdoutFile = os.Stdout
		os.Stdout = os.Stderr
	})
	return stdoutFile
}
