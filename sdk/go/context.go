package mu

import (
	"context"
	"log/slog"
	"time"
)

// Context is the handler's access to the runtime for one request: logs,
// database tables, storage boxes and outgoing HTTP. It is valid until the
// handler returns. Its methods may be called from goroutines the handler
// starts; host calls are serialised. Host calls made after the handler has
// returned fail with ErrCallEnded.
type Context struct {
	c        *conn
	function string
	db       DB
	done     bool // guarded by c.mu
}

// Function returns the name of the function being executed, as registered
// with Handle.
func (ctx *Context) Function() string { return ctx.function }

// Logger returns a logger whose records are sent to the runtime as Log
// frames, body "message key=value ...", at the level mapped from slog's:
// below Debug → trace, below Info → debug, below Warn → info, below Error →
// warn, Error and above → error. Records below the App's level (WithLogLevel,
// Info by default) are dropped. The logger may be kept and used by later
// requests of the same instance.
func (ctx *Context) Logger() *slog.Logger { return ctx.c.logger }

// Log sends one log record at level, with args as slog key/value pairs
// or slog.Attr values, like ctx.Logger().Log but without recording the
// caller or the time (the runtime stamps log lines itself).
func (ctx *Context) Log(level slog.Level, msg string, args ...any) {
	h := ctx.c.logger.Handler()
	if !h.Enabled(context.Background(), level) {
		return
	}
	r := slog.NewRecord(time.Time{}, level, msg, 0)
	r.Add(args...)
	_ = h.Handle(context.Background(), r)
}

// LevelTrace is the slog level that maps to the protocol's trace level
// (anything below slog.LevelDebug does).
const LevelTrace = slog.Level(-8)
