package mu

import (
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
)

func TestNew_FrameLimitFromRuntimeEnvironment(t *testing.T) {
	t.Setenv(FrameSizeEnv, "4096")
	if got := New().maxFrame; got != 4096 {
		t.Fatalf("maxFrame = %d, want 4096 from %s", got, FrameSizeEnv)
	}
	if got := New(WithMaxFrameSize(1000)).maxFrame; got != 1000 {
		t.Fatalf("option should win: %d", got)
	}
	t.Setenv(FrameSizeEnv, "junk")
	if got := New().maxFrame; got != fnproto.DefaultMaxFrameSize {
		t.Fatalf("junk env: %d", got)
	}
}
