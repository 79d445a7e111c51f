package membership

import (
	"context"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"
)

// newStdLogger returns a *log.Logger for memberlist that writes into a slog
// Logger: memberlist prefixes each line with its level ("[DEBUG]",
// "[INFO]", "[WARN]", "[ERR]" or "[ERROR]"), which becomes the slog
// level; lines without one are logged at info.
//
// While the List closes, memberlist's goroutines still running log the
// errors the closed sockets cause ("use of closed network connection");
// those come out at debug level, and after Close nothing comes out.
func newStdLogger(l *slog.Logger, state *atomic.Int32) *log.Logger {
	return log.New(slogWriter{l, state}, "", 0)
}

// States of a List, for its memberlist logger.
const (
	running = iota
	closing
	closed
)

// slogWriter receives one line per Write (a log.Logger writes each
// message in one call).
type slogWriter struct {
	l     *slog.Logger
	state *atomic.Int32
}

func (w slogWriter) Write(p []byte) (int, error) {
	state := w.state.Load()
	if state == closed {
		return len(p), nil
	}
	level, msg := parseLevel(strings.TrimSpace(string(p)))
	if state == closing {
		level = slog.LevelDebug
	}
	ctx := context.Background()
	if w.l.Enabled(ctx, level) {
		w.l.Log(ctx, level, msg, "component", "memberlist")
	}
	return len(p), nil
}

// parseLevel splits memberlist's level prefix off a line.
func parseLevel(line string) (slog.Level, string) {
	levels := []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo},
		{"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
	}
	for _, l := range levels {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			return l.level, strings.TrimSpace(rest)
		}
	}
	return slog.LevelInfo, line
}
