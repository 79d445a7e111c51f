package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
)

// The ledger step: how long a stack takes to be served after it is
// written on the ledger, against the direct deploy of the same stack,
// side by side in one run. One region in this process (storage, the local
// ledger with its dev market, the chain-indexer, a runtime and a gateway
// that follow it); hello's module is compiled once before the trials, so
// both paths measure delivery, not compilation.
//
//   - direct: Region.Deploy (upload to storage, RuntimeService.Deploy,
//     GatewayService.PutStack), then GETs until the first 200;
//   - ledger create: create_stack on the local ledger (binaries already in
//     storage), then GETs until the first 200: the indexer's change feed,
//     its Watch, the runtime's deploy and the gateway's routes;
//   - ledger update: update_stack adding a route, then GETs of the new
//     route until the first 200.

type ledgerTrial struct {
	write time.Duration // the ledger write itself (or the Deploy call)
	first time.Duration // from the start of the write to the first 200
}

type ledgerResult struct {
	direct, create, update []ledgerTrial
}

func (s *Suite) runLedger(ctx context.Context) error {
	trials := 10
	if s.opts.Quick {
		trials = 3
	}
	h, err := s.helloWasm(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mubench-ledger-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	artifacts := filepath.Join(filepath.Dir(s.wasmCache), "mubench-ledger-runtime")
	reg, err := region.Start(ctx, region.Options{
		DataDir: filepath.Join(tmp, "region"),
		Storage: &region.StorageOptions{},
		Ledger:  &region.LedgerOptions{},
		Runtime: &region.RuntimeOptions{Config: func(_ int, c *runtime.Config) { c.DataDir = artifacts }},
		Gateway: &region.GatewayOptions{},
	})
	if err != nil {
		return err
	}
	defer reg.Close()
	dev := reg.Market().Keys.Developer
	base := "http://" + reg.Gateway().Addr() + "/"
	// Upload and compile once.
	warm, err := reg.Post(ctx, dev, 1_000_000, h.manifest, h.binaries())
	if err != nil {
		return err
	}
	if _, err := firstOK(ctx, base+ids.StackID(warm.ID).String()+"/greeting/greet/bench"); err != nil {
		return err
	}
	extra := withRoute(h.manifest, "/v2/{name}")

	res := &ledgerResult{}
	for i := range trials {
		// direct
		id, err := newStackID()
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := reg.Deploy(ctx, id, 1, h.manifest, h.binaries()); err != nil {
			return err
		}
		w := time.Since(t0)
		if _, err := firstOK(ctx, base+id.String()+"/greeting/greet/bench"); err != nil {
			return err
		}
		res.direct = append(res.direct, ledgerTrial{write: w, first: time.Since(t0)})

		// ledger create
		t0 = time.Now()
		st, err := reg.Ledger().CreateStack(ctx, dev, reg.Market().Region.ID, uint64(i+1), mustYAML(h.manifest))
		if err != nil {
			return err
		}
		w = time.Since(t0)
		sid := ids.StackID(st.ID)
		if _, err := firstOK(ctx, base+sid.String()+"/greeting/greet/bench"); err != nil {
			return err
		}
		res.create = append(res.create, ledgerTrial{write: w, first: time.Since(t0)})

		// ledger update
		t0 = time.Now()
		if _, err := reg.Ledger().UpdateStack(ctx, dev, st.ID, mustYAML(extra)); err != nil {
			return err
		}
		w = time.Since(t0)
		if _, err := firstOK(ctx, base+sid.String()+"/greeting/v2/bench"); err != nil {
			return err
		}
		res.update = append(res.update, ledgerTrial{write: w, first: time.Since(t0)})
	}
	s.res.ledger = res
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	s.res.add("ledger_write_to_first_request_ms", ms(median(firstTimes(res.create))), "ms",
		"create_stack on the local ledger → first 200 from the gateway (indexer, runtime deploy, routes), median")
	s.res.add("ledger_update_to_served_ms", ms(median(firstTimes(res.update))), "ms",
		"update_stack adding a route → first 200 on the new route, median")
	s.res.add("direct_deploy_to_first_request_ms", ms(median(firstTimes(res.direct))), "ms",
		"Region.Deploy (no ledger) → first 200, median, same run")
	s.logf("ledger: create → first 200 %s, update → served %s, direct %s (medians of %d)",
		median(firstTimes(res.create)).Round(10*time.Microsecond), median(firstTimes(res.update)).Round(10*time.Microsecond),
		median(firstTimes(res.direct)).Round(10*time.Microsecond), trials)
	return nil
}

func firstTimes(ts []ledgerTrial) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.first
	}
	return out
}

func writeTimes(ts []ledgerTrial) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.write
	}
	return out
}

// firstOK GETs url until it answers 200 and returns how many tries it
// took; a 404 or 503 while the stack is on its way is expected.
func firstOK(ctx context.Context, url string) (int, error) {
	for n := 1; ; n++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return n, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		if ctx.Err() != nil {
			return n, fmt.Errorf("bench: %s never answered 200: %w", url, ctx.Err())
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func mustYAML(m *manifest.Manifest) []byte {
	b, err := m.Marshal()
	if err != nil {
		panic(fmt.Sprintf("bench: marshal a manifest that parsed: %v", err))
	}
	return b
}

// withRoute returns a copy of m whose first gateway also routes GET path
// to its first endpoint's function.
func withRoute(m *manifest.Manifest, path string) *manifest.Manifest {
	c := *m
	c.Gateways = append([]manifest.Gateway(nil), m.Gateways...)
	g := c.Gateways[0]
	e := g.Endpoints[0]
	e.Path, e.Method = path, "GET"
	g.Endpoints = append(append([]manifest.Endpoint(nil), g.Endpoints...), e)
	c.Gateways[0] = g
	return &c
}

func (r *Results) writeLedgerMarkdown(w func(string, ...any)) {
	l := r.ledger
	if l == nil {
		return
	}
	w("\n## Deploy through the ledger\n\n")
	w("One region in the bench process (storage, the local ledger with its dev market, the chain-indexer, a runtime and a gateway following it). " +
		"hello's module is compiled before the trials, so every path measures delivery, not compilation. Per trial, side by side: " +
		"**direct** = `Region.Deploy` (upload, RuntimeService.Deploy, GatewayService.PutStack); **create** = `create_stack` on the ledger; " +
		"**update** = `update_stack` adding a route, timed to the first 200 on that route. \"first 200\" counts from the start of the write " +
		"and includes the GET loop's 200 µs polling.\n\n")
	w("| path | trials | write (median) | write → first 200 (median) | fastest | slowest |\n|---|---|---|---|---|---|\n")
	for _, row := range []struct {
		name string
		ts   []ledgerTrial
	}{{"direct", l.direct}, {"ledger create", l.create}, {"ledger update", l.update}} {
		f := firstTimes(row.ts)
		lo, hi := f[0], f[0]
		for _, d := range f {
			lo, hi = min(lo, d), max(hi, d)
		}
		w("| %s | %d | %s | %s | %s | %s |\n", row.name, len(row.ts), dur(median(writeTimes(row.ts))), dur(median(f)), dur(lo), dur(hi))
	}
}
