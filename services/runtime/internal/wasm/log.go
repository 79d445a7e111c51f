package wasm

import (
	"bytes"
	"context"

	"github.com/muprotocol/mu/libs/fnproto"
)

// LogSource tells where a log line came from.
type LogSource int

const (
	// SourceLog is a Log message of the protocol.
	SourceLog LogSource = iota + 1
	// SourceStderr is a line the function wrote to stderr.
	SourceStderr
)

// Log is one log line of an instance.
type Log struct {
	Source LogSource
	Level  fnproto.LogLevel
	Body   string
	// Context is the context of the call during which the line was
	// written (its trace span), nil outside a call (start-up).
	Context context.Context
}

func (i *Instance) emit(l Log) {
	if i.cfg.Log != nil {
		l.Context = i.logCtx
		i.cfg.Log(l)
	}
}

// drainStderr emits complete lines (and, with all, the rest), cutting lines
// longer than MaxStderrLine.
func (i *Instance) drainStderr(all bool) {
	max := i.e.cfg.MaxStderrLine
	for {
		j := bytes.IndexByte(i.stderr, '\n')
		if j < 0 {
			if len(i.stderr) > max {
				j = max
			} else {
				break
			}
		}
		line := i.stderr[:j]
		if len(line) > max {
			line = line[:max]
		}
		i.emit(Log{Source: SourceStderr, Level: fnproto.LogLevelError, Body: string(line)})
		if j < len(i.stderr) && i.stderr[j] == '\n' {
			j++
		}
		i.stderr = i.stderr[j:]
	}
	if all && len(i.stderr) > 0 {
		i.emit(Log{Source: SourceStderr, Level: fnproto.LogLevelError, Body: string(i.stderr)})
		i.stderr = i.stderr[:0]
	}
}

// flushStderr emits what is left of stderr; called when the instance dies.
func (i *Instance) flushStderr() { i.drainStderr(true) }
