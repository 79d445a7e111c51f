package fnproto

// A function built as a WASI reactor (how `mu build` builds SDK functions)
// exports these functions besides WASI's _initialize, and the runtime enters
// it through them instead of running _start. The frames on stdin and stdout
// are the same in both modes.
const (
	// ExportInit is called once per instance, after _initialize: the
	// function sets itself up (the Go SDK runs main, which registers the
	// handlers).
	ExportInit = "mu_init"
	// ExportServe is called once per request, with the ExecuteFunction frame
	// on stdin. It returns 0 after the function has written its
	// FunctionResult (or FatalError), and non-zero when the stream broke.
	ExportServe = "mu_serve"
)
