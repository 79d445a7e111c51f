//go:build !unix

package region

// lockDir: without flock, builds are serialised within this process only.
func lockDir(string) (unlock func(), err error) { return func() {}, nil }
