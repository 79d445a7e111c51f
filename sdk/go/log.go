package mu

import (
	"context"
	"encoding"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/muprotocol/mu/libs/fnproto"
)

// logHandler is the slog.Handler behind Context.Logger: each record becomes
// one Log frame with the body "message key=value ...". Values are formatted
// like slog's TextHandler does (strings quoted when they contain spaces,
// '=', '"' or unprintable characters; groups as dotted key prefixes).
type logHandler struct {
	c      *conn
	level  slog.Leveler
	attrs  []byte // pre-formatted attributes from WithAttrs, each " k=v"
	prefix string // group prefix for later attributes, "g1.g2."
}

var logBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	bp := logBufPool.Get().(*[]byte)
	b := append((*bp)[:0], r.Message...)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.prefix, a)
		return true
	})
	body := b
	if r.Message == "" && len(body) > 0 {
		body = body[1:] // no message: drop the space before the first attribute
	}
	err := h.c.writeLog(wireLevel(r.Level), body)
	if cap(b) <= 64<<10 {
		*bp = b
		logBufPool.Put(bp)
	}
	return err
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = append([]byte(nil), h.attrs...)
	for _, a := range as {
		h2.attrs = appendAttr(h2.attrs, h.prefix, a)
	}
	return &h2
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// wireLevel maps a slog level onto the protocol's five levels.
func wireLevel(l slog.Level) fnproto.LogLevel {
	switch {
	case l < slog.LevelDebug:
		return fnproto.LogLevelTrace
	case l < slog.LevelInfo:
		return fnproto.LogLevelDebug
	case l < slog.LevelWarn:
		return fnproto.LogLevelInfo
	case l < slog.LevelError:
		return fnproto.LogLevelWarn
	}
	return fnproto.LogLevelError
}

// appendAttr appends " key=value" for a (groups flattened into dotted keys).
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		attrs := a.Value.Group()
		if len(attrs) == 0 {
			return b
		}
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, ga := range attrs {
			b = appendAttr(b, p, ga)
		}
		return b
	}
	b = append(b, ' ')
	if (prefix != "" && needsQuoting(prefix)) || needsQuoting(a.Key) {
		b = strconv.AppendQuote(b, prefix+a.Key)
	} else {
		b = append(b, prefix...)
		b = append(b, a.Key...)
	}
	b = append(b, '=')
	return appendValue(b, a.Value)
}

func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return append(b, v.Duration().String()...)
	case slog.KindTime:
		return v.Time().AppendFormat(b, time.RFC3339Nano)
	}
	switch x := v.Any().(type) {
	case nil:
		return append(b, "<nil>"...)
	case error:
		return appendString(b, x.Error())
	case encoding.TextMarshaler:
		t, err := x.MarshalText()
		if err != nil {
			return appendString(b, "!ERROR:"+err.Error())
		}
		return appendString(b, string(t))
	case []byte:
		return appendString(b, string(x))
	default:
		return appendString(b, fmt.Sprint(x))
	}
}

func appendString(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuoting reports whether s must be quoted to be read back as one
// value: it is empty or holds a space, '=', '"' or an unprintable rune.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
