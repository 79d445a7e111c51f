package mu

// Reactor mode. A function built with -buildmode=c-shared (what `mu build`
// does) is a WASI reactor: the runtime calls _initialize, then mu_init once
// (which runs main, so handlers are registered as usual and Run returns at
// once), then mu_serve once per request, on the caller's own thread. The
// frames on stdin and stdout are the same as in command mode; only the loop
// moves from the function to the runtime, which saves two thread hand-offs
// per request. See reactor_wasip1.go for the exports.
var (
	// reactorMode is set by mu_init before main runs.
	reactorMode bool
	// reactorApp is the App whose Run main called (DefaultApp if none).
	reactorApp *App
	// reactorConn serves every mu_serve call of the instance.
	reactorConn *conn
)
