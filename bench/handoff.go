package bench

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// handoffWAT is a guest reduced to the runtime's calling pattern, with no
// work of its own. Its _start loops forever on host "wait" (which blocks
// until a call arrives, as the runtime's fd_read does) and host "done" (the
// runtime's FunctionResult); its export "handle" calls "done" once, which
// is how a call would look if the host invoked an export directly.
const handoffWAT = `(module
  (import "host" "wait" (func $wait))
  (import "host" "done" (func $done))
  (memory (export "memory") 1)
  (func (export "_start") (loop $serve (call $wait) (call $done) (br $serve)))
  (func (export "handle") (call $done)))`

// handoffResult compares the two ways of calling into an instance.
type handoffResult struct {
	// parked is the round trip of a call handed to an instance whose _start
	// is parked in a host function on its own goroutine (how the runtime
	// serves command modules: channel send, wake the instance's locked OS thread, return to
	// wasm, host call back, wake the caller).
	parked time.Duration
	// direct is a call of an exported function on the caller's goroutine.
	direct time.Duration
	// parallel figures: calls per second with n callers, each with its own instance.
	parkedRPS, directRPS float64
	callers              int
}

// measureHandoff times both calling patterns on the runtime's engine
// settings (fuel and epoch interruption on).
func measureHandoff(ctx context.Context, calls int) (*handoffResult, error) {
	eng, err := newFuelEngine(true)
	if err != nil {
		return nil, err
	}
	defer eng.close()
	wasm, err := wasmtime.Wat2Wasm(handoffWAT)
	if err != nil {
		return nil, err
	}
	mod, err := wasmtime.NewModule(eng.engine, wasm)
	if err != nil {
		return nil, err
	}
	defer mod.Close()
	res := &handoffResult{callers: 8}

	seq := func(inst *handoffInstance) time.Duration {
		ds := make([]time.Duration, 0, calls)
		for range calls {
			t := time.Now()
			if err := inst.call(); err != nil {
				return 0
			}
			ds = append(ds, time.Since(t))
		}
		return median(ds)
	}
	par := func(mk func() (*handoffInstance, error)) (float64, error) {
		insts := make([]*handoffInstance, 0, res.callers)
		defer func() {
			for _, in := range insts {
				in.close()
			}
		}()
		for range res.callers {
			in, err := mk()
			if err != nil {
				return 0, err
			}
			insts = append(insts, in)
		}
		var wg sync.WaitGroup
		start := time.Now()
		for _, in := range insts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range calls {
					if in.call() != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		return float64(calls*res.callers) / time.Since(start).Seconds(), nil
	}
	parked := func() (*handoffInstance, error) { return newParkedInstance(eng, mod) }
	direct := func() (*handoffInstance, error) { return newDirectInstance(eng, mod) }

	for _, side := range []struct {
		mk   func() (*handoffInstance, error)
		lat  *time.Duration
		rate *float64
	}{{parked, &res.parked, &res.parkedRPS}, {direct, &res.direct, &res.directRPS}} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, err := side.mk()
		if err != nil {
			return nil, err
		}
		seq(in) // warm up
		*side.lat = seq(in)
		in.close()
		if *side.rate, err = par(side.mk); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// handoffInstance is one instance of handoffWAT called one way or the other.
type handoffInstance struct {
	call  func() error
	close func()
}

func hostFuncs(eng *fuelEngine, wait, done func() *wasmtime.Trap) (*wasmtime.Linker, error) {
	l := wasmtime.NewLinker(eng.engine)
	if err := l.FuncWrap("host", "wait", wait); err != nil {
		return nil, err
	}
	if err := l.FuncWrap("host", "done", done); err != nil {
		return nil, err
	}
	return l, nil
}

func newStore(eng *fuelEngine) (*wasmtime.Store, error) {
	store := wasmtime.NewStore(eng.engine)
	if err := store.SetFuel(1 << 62); err != nil {
		store.Close()
		return nil, err
	}
	store.SetEpochDeadline(1 << 40)
	return store, nil
}

// newParkedInstance runs _start on its own goroutine; each call is a
// channel send that unparks it and a channel receive of its "done".
func newParkedInstance(eng *fuelEngine, mod *wasmtime.Module) (*handoffInstance, error) {
	store, err := newStore(eng)
	if err != nil {
		return nil, err
	}
	calls := make(chan chan struct{})
	quit := make(chan struct{})
	exited := make(chan struct{})
	var cur chan struct{}
	l, err := hostFuncs(eng,
		func() *wasmtime.Trap {
			select {
			case c := <-calls:
				cur = c
				return nil
			case <-quit:
				return wasmtime.NewTrap("closed")
			}
		},
		func() *wasmtime.Trap { close(cur); return nil })
	if err != nil {
		return nil, err
	}
	inst, err := l.Instantiate(store, mod)
	if err != nil {
		return nil, err
	}
	start := inst.GetFunc(store, "_start")
	go func() {
		defer close(exited)
		start.Call(store)
	}()
	return &handoffInstance{
		call: func() error {
			c := make(chan struct{})
			select {
			case calls <- c:
			case <-exited:
				return errors.New("instance exited")
			}
			<-c
			return nil
		},
		close: func() {
			close(quit)
			<-exited
			store.Close()
		},
	}, nil
}

// newDirectInstance calls the export "handle" on the caller's goroutine.
func newDirectInstance(eng *fuelEngine, mod *wasmtime.Module) (*handoffInstance, error) {
	store, err := newStore(eng)
	if err != nil {
		return nil, err
	}
	done := 0
	l, err := hostFuncs(eng,
		func() *wasmtime.Trap { return wasmtime.NewTrap("not used") },
		func() *wasmtime.Trap { done++; return nil })
	if err != nil {
		return nil, err
	}
	inst, err := l.Instantiate(store, mod)
	if err != nil {
		return nil, err
	}
	handle := inst.GetFunc(store, "handle")
	return &handoffInstance{
		call: func() error {
			_, err := handle.Call(store)
			return err
		},
		close: func() { store.Close() },
	}, nil
}
