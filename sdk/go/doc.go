// Package mu is the Go SDK for mu functions: Go programs compiled with
// GOOS=wasip1 GOARCH=wasm that a mu runtime runs to answer HTTP requests
// routed to them by a stack's gateways.
//
// A function registers named handlers and serves:
//
//	func main() {
//		mu.Handle("greet_user", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
//			return mu.Text(200, "Hello, "+req.Param("name")+"!"), nil
//		})
//		mu.Run()
//	}
//
// The manifest routes an endpoint to "<function service>.greet_user"; one
// module may register any number of handlers.
//
// # Serving
//
// Run speaks the mu function protocol (package
// github.com/muprotocol/mu/libs/fnproto) over stdin and stdout. The runtime
// writes one ExecuteFunction frame per request; Run calls the handler
// registered under its name, answers with a FunctionResult and waits for the
// next request, so one instance serves many requests in turn, one at a time,
// without starting goroutines of its own. When the runtime closes stdin, Run
// returns and the program exits with status 0.
//
// # Reactor builds
//
// `mu build` compiles functions with -buildmode=c-shared, which makes a WASI
// reactor instead of a command. The SDK then exports mu_init and mu_serve:
// the runtime calls mu_init once (it runs main, so handlers are registered
// exactly as above, and Run returns at once) and mu_serve once per request,
// which serves the one ExecuteFunction frame on stdin with the same frames as
// Run. The runtime runs each call on its own thread instead of waking the
// function's, which makes calls several times cheaper. Both builds are
// served; nothing in a function's code changes.
//
// A handler's outcome maps onto the protocol as follows:
//   - a *Response is sent as the HTTP response; its status must be within
//     100..599;
//   - an error wrapping a *StatusError (see Errorf) becomes a text/plain
//     response with that status;
//   - any other error fails the request with a FatalError carrying the
//     error's message, which the gateway reports as a 500;
//   - a panic is recovered: the stack trace is logged at error level and the
//     request fails with FatalError("panic: ..."); the instance keeps serving;
//   - a request for a name nobody registered fails with FatalError naming
//     the registered handlers.
//
// App is the explicit form: New, (*App).Handle and (*App).Serve over any
// io.Reader and io.Writer, which is how a function is tested on the host
// without wasm. Handle and Run use DefaultApp.
//
// # Standard output belongs to the protocol
//
// Because stdout carries protocol frames, a stray print would corrupt the
// stream and make the runtime discard the instance. On wasip1 the package
// therefore keeps file descriptor 1 for the protocol when it is initialised
// and points os.Stdout at os.Stderr, so fmt.Println, log and anything else
// that writes to os.Stdout ends up on stderr, which the runtime turns into
// error-level log lines. Run does the same on other platforms. Code that
// writes to file descriptor 1 directly (syscall.Write(1, ...)) still breaks
// the stream. For levelled, structured logs use Context.Logger.
//
// # Logs
//
// Context.Logger returns a *slog.Logger whose records become protocol Log
// frames with the body "message key=value ...". Frames are buffered and
// reach the runtime together with the next database, storage or HTTP
// request, the end of the request, or once 64 KiB have accumulated: a
// request costs one write to stdout however much it logs. An instance killed
// in the middle of a handler (fuel or time exhausted) loses the log lines it
// has not flushed yet; stderr is not buffered.
//
// # Host services
//
// Context.Table, Context.DB, Context.Storage and Context.Fetch reach the
// stack's key/value tables, storage boxes and outgoing HTTP through the
// runtime: each call writes one request frame and blocks until the runtime's
// reply. A failure reported by the service is a *DBError, *StorageError or
// *FetchError.
//
// Tables hold bytes under byte keys, in key order. Writes can expire
// (Table.PutTTL, DB.BatchPutTTL); scans come one page at a time with an
// opaque cursor (Table.ScanPage, DB.BatchScanPage) or as iterators over
// every page (Table.All, Table.Keys). Scan, ScanKeys, BatchScan and
// BatchScanKeys return the first page only.
//
// Storage boxes hold objects under string keys. Put and Get move a whole
// object in one frame; Box.Create, Box.PutReader, Box.Open and Box.GetRange
// stream objects of any size in chunks of Box.ChunkSize (1 MiB), holding
// about one chunk in memory, and a read that finds the object replaced
// midway fails with ErrObjectChanged. Box.Stat reads metadata, Box.ListPage
// and Box.Objects list with metadata one page at a time, and Box.SignURL
// makes a URL for direct browser downloads and uploads.
//
// A reply of the wrong kind means the stream is out of step; the
// call returns an error wrapping ErrProtocol, the request fails with a
// FatalError and Serve stops.
//
// A Context is valid until its handler returns. Its methods may be called
// from goroutines the handler starts (host calls are serialised), but not
// after the handler has returned: they then fail with ErrCallEnded.
package mu
