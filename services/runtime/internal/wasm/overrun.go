package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
)

// Overrun is what MeasureDeadlineOverrun measured: how long calls that spin
// until their wall-clock deadline ran past it.
type Overrun struct {
	Spinners int
	Timeout  time.Duration
	Tick     time.Duration
	// Mean and Max are how long after its deadline a call returned.
	Mean, Max time.Duration
	// Early counts calls that returned before their deadline (must be 0).
	Early int
}

// MaxFraction is Max as a fraction of Timeout.
func (o Overrun) MaxFraction() float64 { return float64(o.Max) / float64(o.Timeout) }

func (o Overrun) String() string {
	return fmt.Sprintf("%d spinners, timeout %s, tick %s: overrun mean %s, max %s (%.1f%%), %d early",
		o.Spinners, o.Timeout, o.Tick, o.Mean.Round(time.Microsecond), o.Max.Round(time.Microsecond), 100*o.MaxFraction(), o.Early)
}

// spinnerWAT is a reactor whose mu_serve never returns (and never calls).
const spinnerWAT = `(module
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "mu_init"))
  (func (export "mu_serve") (result i32) (loop $l (br $l)) (i32.const 0)))`

// MeasureDeadlineOverrun runs spinners concurrent calls of a module that
// spins forever, each with timeout and unlimited fuel, on an engine made
// from cfg, and reports how far past its deadline each one ended. It is
// the figure the bench suite reports as "overrun of 8 concurrent spinners"
// (target: at most 10% of the timeout plus one EpochTick).
func MeasureDeadlineOverrun(ctx context.Context, cfg Config, spinners int, timeout time.Duration) (Overrun, error) {
	e, err := NewEngine(cfg)
	if err != nil {
		return Overrun{}, err
	}
	defer e.Close()
	bin, err := wasmtime.Wat2Wasm(spinnerWAT)
	if err != nil {
		return Overrun{}, err
	}
	mod, err := e.Compile(bin)
	if err != nil {
		return Overrun{}, err
	}
	defer mod.Close()
	insts := make([]*Instance, spinners)
	for k := range insts {
		if insts[k], err = e.NewInstance(ctx, mod, InstanceConfig{}); err != nil {
			return Overrun{}, err
		}
		defer insts[k].Close()
	}
	o := Overrun{Spinners: spinners, Timeout: timeout, Tick: e.cfg.EpochTick}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sum  time.Duration
		errs []error
	)
	for _, inst := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := inst.Call(ctx, "spin", &fnproto.Request{Method: "GET"}, nil, Limits{Fuel: 1 << 62, Timeout: timeout})
			over := time.Since(start) - timeout
			mu.Lock()
			defer mu.Unlock()
			if ce, ok := AsCallError(err); !ok || ce.Kind != KindDeadline {
				errs = append(errs, fmt.Errorf("spinner ended with %v, not its deadline", err))
				return
			}
			if over < 0 {
				o.Early++
			}
			sum += over
			o.Max = max(o.Max, over)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	o.Mean = sum / time.Duration(spinners)
	return o, nil
}
