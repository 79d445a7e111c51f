package mu_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

type stringer struct{}

func (stringer) String() string { return "as string" }

type lazy struct{}

func (lazy) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestLogger_RecordsBecomeLogFrames(t *testing.T) {
	type line struct {
		level fnproto.LogLevel
		body  string
	}
	tests := []struct {
		name string
		log  func(ctx *mu.Context)
		want []line // nil: nothing is sent
	}{
		{"info with attrs", func(ctx *mu.Context) { ctx.Logger().Info("saved", "id", 7, "ok", true) },
			[]line{{fnproto.LogLevelInfo, "saved id=7 ok=true"}}},
		{"no attrs", func(ctx *mu.Context) { ctx.Logger().Warn("careful") },
			[]line{{fnproto.LogLevelWarn, "careful"}}},
		{"no message", func(ctx *mu.Context) { ctx.Logger().Info("", "k", "v") },
			[]line{{fnproto.LogLevelInfo, "k=v"}}},
		{"error level and error value", func(ctx *mu.Context) { ctx.Logger().Error("failed", "err", errors.New("no such key")) },
			[]line{{fnproto.LogLevelError, `failed err="no such key"`}}},
		{"above error", func(ctx *mu.Context) { ctx.Log(slog.LevelError+4, "worse") },
			[]line{{fnproto.LogLevelError, "worse"}}},
		{"debug dropped by default", func(ctx *mu.Context) { ctx.Logger().Debug("hidden"); ctx.Log(mu.LevelTrace, "hidden") }, nil},
		{"quoting", func(ctx *mu.Context) {
			ctx.Logger().Info("q", "space", "a b", "eq", "a=b", "quote", `a"b`, "empty", "", "nl", "a\nb", "plain", "héllo")
		}, []line{{fnproto.LogLevelInfo, `q space="a b" eq="a=b" quote="a\"b" empty="" nl="a\nb" plain=héllo`}}},
		{"kinds", func(ctx *mu.Context) {
			ctx.Logger().Info("k", "i", -3, "u", uint64(4), "f", 1.5, "d", 1500*time.Millisecond,
				"t", time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), "s", stringer{}, "lv", lazy{}, "b", []byte("raw"), "nil", nil)
		}, []line{{fnproto.LogLevelInfo, "k i=-3 u=4 f=1.5 d=1.5s t=2024-05-06T07:08:09Z s=\"as string\" lv=resolved b=raw nil=<nil>"}}},
		{"groups", func(ctx *mu.Context) {
			ctx.Logger().With("svc", "todo").WithGroup("req").With("id", 1).Info("x", "n", 2, slog.Group("user", "name", "ann"), slog.Group("empty"))
		}, []line{{fnproto.LogLevelInfo, "x svc=todo req.id=1 req.n=2 req.user.name=ann"}}},
		{"Context.Log", func(ctx *mu.Context) { ctx.Log(slog.LevelWarn, "w", "a", 1, slog.Int("b", 2)) },
			[]line{{fnproto.LogLevelWarn, "w a=1 b=2"}}},
		{"invalid UTF-8 is replaced", func(ctx *mu.Context) { ctx.Logger().Info("bad \xff byte") },
			[]line{{fnproto.LogLevelInfo, "bad \uFFFD byte"}}},
		{"order", func(ctx *mu.Context) {
			l := ctx.Logger()
			l.Info("1")
			l.Warn("2")
			l.Error("3")
		}, []line{{fnproto.LogLevelInfo, "1"}, {fnproto.LogLevelWarn, "2"}, {fnproto.LogLevelError, "3"}}},
	}
	app := mu.New()
	for _, tt := range tests {
		log := tt.log
		app.Handle(tt.name, func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
			log(ctx)
			return mu.Status(204), nil
		})
	}
	rt := serve(t, app)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := rt.call(tt.name, get(nil), nil)
			ex.result(t)
			var got []line
			for _, l := range ex.logs {
				got = append(got, line{l.Level, l.Body})
			}
			if len(got) != len(tt.want) {
				t.Fatalf("logs %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("log %d = %v %q\nwant     %v %q", i, got[i].level, got[i].body, tt.want[i].level, tt.want[i].body)
				}
			}
		})
	}
}

func TestLogger_LevelMapping(t *testing.T) {
	lv := new(slog.LevelVar)
	lv.Set(mu.LevelTrace - 4)
	app := mu.New(mu.WithLogLevel(lv))
	app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		for _, l := range []slog.Level{mu.LevelTrace - 4, mu.LevelTrace, slog.LevelDebug - 1, slog.LevelDebug, slog.LevelInfo - 1,
			slog.LevelInfo, slog.LevelWarn - 1, slog.LevelWarn, slog.LevelError - 1, slog.LevelError, slog.LevelError + 8} {
			ctx.Log(l, l.String())
		}
		return mu.Status(204), nil
	})
	rt := serve(t, app)
	var got []string
	for _, l := range rt.call("f", get(nil), nil).logs {
		got = append(got, l.Body+":"+l.Level.String())
	}
	want := "DEBUG-8:trace DEBUG-4:trace DEBUG-1:trace DEBUG:debug DEBUG+3:debug INFO:info INFO+3:info WARN:warn WARN+3:warn ERROR:error ERROR+8:error"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}

	lv.Set(slog.LevelError) // changes apply while serving
	if logs := rt.call("f", get(nil), nil).logs; len(logs) != 2 {
		t.Errorf("at level ERROR: %d logs, want 2", len(logs))
	}
}

func TestLogger_LongLinesAreCutToTheFrameLimit(t *testing.T) {
	app := mu.New(mu.WithMaxFrameSize(512))
	app.Handle("f", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		ctx.Logger().Info(strings.Repeat("é", 1000))
		return mu.Status(204), nil
	})
	rt := serve(t, app)
	logs := rt.call("f", get(nil), nil).logs
	if len(logs) != 1 {
		t.Fatalf("%d logs", len(logs))
	}
	body := logs[0].Body
	if len(body) > 512 || !strings.HasSuffix(body, "é …[truncated]") {
		t.Errorf("cut line (%d bytes) ends %q", len(body), body[len(body)-20:])
	}
}

func TestLogger_ManyLogsAreFlushedBeforeTheRequestEnds(t *testing.T) {
	app := mu.New()
	app.Handle("chatty", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		for range 5000 {
			ctx.Logger().Info(strings.Repeat("x", 100))
		}
		return mu.Status(204), nil
	})
	rt := serve(t, app)
	w0 := rt.writes.Load()
	if logs := rt.call("chatty", get(nil), nil).logs; len(logs) != 5000 {
		t.Fatalf("%d logs", len(logs))
	}
	// ~560 KB of frames: flushed in 64 KiB batches, not one write per line.
	if n := rt.writes.Load() - w0; n < 5 || n > 20 {
		t.Errorf("%d writes for 5000 log lines", n)
	}
}
