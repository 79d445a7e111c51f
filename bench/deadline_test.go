package bench

import (
	"context"
	"io"
	"testing"
	"time"
)

// The deadline benchmark end to end, briefly: a real region, 8 concurrent
// spinners and one alone, each ended by its deadline and never before it.
// The figures themselves are what `mubench -only deadline` reports.
func TestDeadline_SpinnersEndAtTheirDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a region and spins both cores for a few hundred ms")
	}
	s := &Suite{opts: Options{Log: io.Discard}, res: &Results{}}
	plan := deadlinePlan{timeout: 200 * time.Millisecond, spinners: 8, rounds: 1, baseline: 1}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := s.measureDeadline(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if d.timeout != plan.timeout || d.tick <= 0 {
		t.Fatalf("region ran with CallTimeout %v, EpochTick %v; want %v and a tick", d.timeout, d.tick, plan.timeout)
	}
	for _, c := range []struct {
		rounds []*deadlineRound
		calls  int
	}{{d.loaded, 8}, {d.alone, 1}} {
		if len(c.rounds) != 1 || len(c.rounds[0].calls) != c.calls {
			t.Fatalf("want 1 round of %d calls, got %d rounds", c.calls, len(c.rounds))
		}
		r := c.rounds[0]
		if r.started != 0 {
			t.Errorf("%d calls: %d instances started during the round, want every call on its prewarmed one", c.calls, r.started)
		}
		for _, call := range r.calls {
			if call.overrun < 0 || call.rpcOverrun < 0 || call.startDelay < 0 || call.fuel == 0 {
				t.Errorf("%d calls: a call %+v", c.calls, call)
			}
		}
		mean, mx := r.stat(runtimeOverrun)
		rmean, rmax := r.stat(rpcOverrun)
		t.Logf("%d calls: overrun in the runtime mean %v max %v (%.1f%%), RPC mean %v max %v", c.calls, mean, mx, pct(mx, d.timeout), rmean, rmax)
	}
	s.res.deadline = d
	if b := s.res.deadlineBound(); b == "" {
		t.Error("no bound-by text")
	}
}
