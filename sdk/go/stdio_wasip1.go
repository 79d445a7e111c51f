//go:build wasip1

package mu

// On wasip1 the process is a mu function: take stdout for the protocol
// before any other package's init (every importer initialises after this
// package) can print to it.
func init() { protocolStdout() }
