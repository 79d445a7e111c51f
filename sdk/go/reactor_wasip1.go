//go:build wasip1

package mu

import (
	"fmt"
	"io"
	"os"
	_ "unsafe" // for go:linkname

	"github.com/muprotocol/mu/libs/fnproto"
)

// mainMain is the program's main function; in a reactor the Go runtime does
// not run it, so mu_init does.
//
//go:linkname mainMain main.main
func mainMain()

// muInit runs main with Run in reactor mode and prepares the connection
// that mu_serve uses. The runtime calls it once, after _initialize.
//
//go:wasmexport mu_init
func muInit() {
	reactorMode = true
	mainMain()
	app := reactorApp
	if app == nil {
		app = DefaultApp
	}
	reactorConn = newConn(app, os.Stdin, protocolStdout())
}

// muServe serves the one request the runtime has put on stdin and returns
// 0, or 1 if the stream broke (the runtime then discards the instance).
//
//go:wasmexport mu_serve
func muServe() int32 {
	if reactorConn == nil {
		fmt.Fprintln(os.Stderr, "mu: "+fnproto.ExportServe+" called before "+fnproto.ExportInit)
		return 1
	}
	switch err := reactorConn.step(); err {
	case nil:
		return 0
	case io.EOF:
		fmt.Fprintln(os.Stderr, "mu: "+fnproto.ExportServe+" called with no request on stdin")
		return 1
	default:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
}
