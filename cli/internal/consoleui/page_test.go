package consoleui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/muprotocol/mu/cli/internal/consoleui"
	"github.com/muprotocol/mu/cli/internal/consoleui/browsertest"
)

// The page's files are embedded, reference each other, and stay small.
func TestStaticFiles(t *testing.T) {
	sub, err := fs.Sub(consoleui.Static, "static")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	files := map[string]string{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		total += len(b)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"index.html", "app.css", "app.js"} {
		if _, ok := files[f]; !ok {
			t.Errorf("static/%s is missing", f)
		}
	}
	if !strings.Contains(files["index.html"], `<script type="module" src="app.js">`) {
		t.Errorf("index.html does not load app.js as a module")
	}
	imp := regexp.MustCompile(`from '\./([a-z]+\.js)'`)
	for name, text := range files {
		for _, m := range imp.FindAllStringSubmatch(text, -1) {
			if _, ok := files[m[1]]; !ok {
				t.Errorf("%s imports %s, which is not in static/", name, m[1])
			}
		}
	}
	t.Logf("page weight: %d bytes in %d files", total, len(files))
	if total > 60*1024 {
		t.Errorf("the page weighs %d bytes; keep it under 60 KiB", total)
	}
}

const (
	addrDev   = "DevKey1111111111111111111111111111111111111"
	provAcme  = "AcmeProv11111111111111111111111111111111111"
	provBolt  = "BoltProv11111111111111111111111111111111111"
	provCirr  = "CirrProv11111111111111111111111111111111111"
	regEast   = "RegEast111111111111111111111111111111111111"
	regWest   = "RegWest111111111111111111111111111111111111"
	regNorth  = "RegNorth11111111111111111111111111111111111"
	stackGree = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"
	stackTodo = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
	stackOld  = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"
)

type escrow struct {
	Provider      string `json:"provider"`
	ProviderName  string `json:"provider_name"`
	Balance       int64  `json:"balance"`
	Minimum       int64  `json:"minimum"`
	BurnPerHour   *int64 `json:"burn_per_hour"`
	TimeLeft      string `json:"time_left"`
	Warning       bool   `json:"warning"`
	WarningReason string `json:"warning_reason"`
	ActiveStacks  int    `json:"active_stacks"`
}

// fakeAPI serves consoleui.Static and canned answers for every endpoint of
// the console's API contract, and records what the page sends.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu          sync.Mutex
	escrows     []*escrow
	bodies      []string // bodies of POST .../recharge and .../withdraw
	queries     map[string]string
	logFetches  int
	ownProvider bool
	clients     map[chan string]struct{}
	done        chan struct{}
}

func region(id, prov, provName, name string, number int, minEscrow int64, sampleCost string, scale int64) map[string]any {
	rates := map[string]int64{}
	for i, k := range []string{"function", "db_reads", "db_writes", "db_stored", "gateway_requests", "gateway_traffic", "storage_stored", "storage_traffic"} {
		rates[k] = (int64(i) + 1) * 100 * scale
	}
	return map[string]any{
		"id": id, "provider": prov, "provider_name": provName, "number": number, "name": name,
		"base_url": "https://" + name + ".example", "min_escrow": minEscrow, "usage_signer": "Signer" + name,
		"rates": rates,
		"rate_units": map[string]string{
			"function": "1T MB-instructions", "db_reads": "1M reads", "db_writes": "1M writes", "db_stored": "GiB-month",
			"gateway_requests": "1M requests", "gateway_traffic": "GiB", "storage_stored": "GiB-month", "storage_traffic": "GiB",
		},
		"sample": "1M hello requests", "sample_cost": sampleCost,
	}
}

func stack(id, name, reg string, rev int, state string, enabled bool) map[string]any {
	return map[string]any{
		"id": id, "name": name, "region": reg, "seed": "seed-" + name, "revision": rev, "state": state, "enabled": enabled,
		"urls": []string{"GET http://127.0.0.1:12080/" + id + "/api/hello/{name}", "POST http://127.0.0.1:12080/" + id + "/api/echo"},
	}
}

var (
	providers = []map[string]any{
		{"id": provAcme, "name": "acme", "owner": addrDev, "deposit": 1000000, "authorized": true, "regions": 2},
		{"id": provBolt, "name": "bolt", "owner": "BoltOwner", "deposit": 1000000, "authorized": true, "regions": 1},
		{"id": provCirr, "name": "cirrus", "owner": "CirrOwner", "deposit": 1000000, "authorized": false, "regions": 0},
	}
	// In API order east, west, north; by sample cost west (120.5) < north (980) < east (3410.77),
	// which a sort of the strings would get wrong.
	regions = []map[string]any{
		region(regEast, provAcme, "acme", "east", 1, 5000, "3410.77", 1),
		region(regWest, provBolt, "bolt", "west", 1, 2000, "120.5", 2),
		region(regNorth, provAcme, "acme", "north", 2, 8000, "980", 3),
	}
	stacks = []map[string]any{
		stack(stackGree, "greeter", regEast, 3, "active", true),
		stack(stackTodo, "todo", regWest, 1, "active", false),
		stack(stackOld, "old", regNorth, 7, "deleted", true),
	}
)

func newFakeAPI(t *testing.T) *fakeAPI {
	burn := int64(400)
	f := &fakeAPI{
		t: t,
		escrows: []*escrow{
			{Provider: provAcme, ProviderName: "acme", Balance: 10000, Minimum: 5000, BurnPerHour: &burn, TimeLeft: "12h30m", ActiveStacks: 1},
			{Provider: provBolt, ProviderName: "bolt", Balance: 3000, Minimum: 5000, Warning: true,
				WarningReason: "the balance 3000 is under the region minimum 5000: the region pauses your stacks"},
		},
		queries:     map[string]string{},
		ownProvider: true,
		clients:     map[chan string]struct{}{},
		done:        make(chan struct{}),
	}
	sub, err := fs.Sub(consoleui.Static, "static")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(sub))
	mux.HandleFunc("GET /api/session", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"profile": "dev", "address": addrDev, "gateway": "http://127.0.0.1:12080",
			"indexer": "127.0.0.1:12090", "billing": "127.0.0.1:12091", "warn_hours": 24})
	})
	mux.HandleFunc("GET /api/providers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, providers) })
	mux.HandleFunc("GET /api/regions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, regions) })
	mux.HandleFunc("GET /api/stacks", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, stacks) })
	mux.HandleFunc("GET /api/stacks/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, s := range stacks {
			if s["id"] == r.PathValue("id") {
				d := map[string]any{"served": map[string]any{"revision": s["revision"], "enabled": s["enabled"], "disabled_reason": "",
					"owner": map[string]any{"node": "NodeA1111111111111111111111111111111111111", "revision": s["revision"], "deployed": true, "error": ""}}}
				for k, v := range s {
					d[k] = v
				}
				writeJSON(w, 200, d)
				return
			}
		}
		writeJSON(w, 404, map[string]string{"error": "no stack " + r.PathValue("id")})
	})
	mux.HandleFunc("GET /api/stacks/{id}/usage", func(w http.ResponseWriter, r *http.Request) {
		f.record("usage", r.URL.RawQuery)
		n, _ := strconv.Atoi(r.URL.Query().Get("buckets"))
		minutes, _ := strconv.Atoi(r.URL.Query().Get("minutes"))
		writeJSON(w, 200, usage(n, minutes))
	})
	mux.HandleFunc("GET /api/stacks/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		f.record("logs", r.URL.RawQuery)
		f.mu.Lock()
		f.logFetches++
		n := f.logFetches
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "2026-05-04T10:%02d:00Z INFO  greeter.hello: hello %d <b>not html</b>\n", i, i)
		}
	})
	mux.HandleFunc("GET /api/escrows", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, f.escrows)
	})
	mux.HandleFunc("POST /api/escrows", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Provider string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Provider == "" {
			writeJSON(w, 400, map[string]string{"error": "a provider is needed"})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		e := &escrow{Provider: req.Provider, ProviderName: "cirrus", Minimum: 0}
		f.escrows = append(f.escrows, e)
		writeJSON(w, 200, e)
	})
	mux.HandleFunc("POST /api/escrows/{provider}/{op}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct{ Amount int64 }
		if err := json.Unmarshal(body, &req); err != nil || req.Amount <= 0 {
			writeJSON(w, 400, map[string]string{"error": "bad amount: " + string(body)})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.bodies = append(f.bodies, r.PathValue("op")+" "+string(body))
		for _, e := range f.escrows {
			if e.Provider != r.PathValue("provider") {
				continue
			}
			switch r.PathValue("op") {
			case "recharge":
				e.Balance += req.Amount
			case "withdraw":
				if req.Amount > e.Balance {
					writeJSON(w, 400, map[string]string{"error": fmt.Sprintf("insufficient escrow: the balance is %d", e.Balance)})
					return
				}
				e.Balance -= req.Amount
			default:
				writeJSON(w, 404, map[string]string{"error": "no such operation"})
				return
			}
			writeJSON(w, 200, e)
			return
		}
		writeJSON(w, 404, map[string]string{"error": "no escrow with provider " + r.PathValue("provider")})
	})
	mux.HandleFunc("GET /api/provider", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		own := f.ownProvider
		f.mu.Unlock()
		if !own {
			writeJSON(w, 200, map[string]any{"provider": nil})
			return
		}
		writeJSON(w, 200, map[string]any{"provider": providers[0], "regions": []map[string]any{
			{"region": regions[0], "stacks": 2, "earnings": 123456, "requests": 98765},
			{"region": regions[2], "stacks": 0, "earnings": 0, "requests": 0},
		}})
	})
	mux.HandleFunc("GET /api/events", f.events)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, map[string]string{"error": "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.done) }) // runs first: ends the event streams so Close returns
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) record(what, query string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries[what] = query
}

func (f *fakeAPI) query(what string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries[what]
}

// events is GET /api/events: each client gets what send broadcasts.
func (f *fakeAPI) events(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	ch := make(chan string, 8)
	f.mu.Lock()
	f.clients[ch] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.clients, ch)
		f.mu.Unlock()
	}()
	fmt.Fprint(w, ": ping\n\n")
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-f.done:
			return
		case msg := <-ch:
			fmt.Fprint(w, msg)
			w.(http.Flusher).Flush()
		}
	}
}

func (f *fakeAPI) send(event string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.clients) == 0 {
		f.t.Fatalf("no page listens to /api/events")
	}
	for ch := range f.clients {
		ch <- "event: " + event + "\ndata: " + string(b) + "\n\n"
	}
}

func usage(n, minutes int) map[string]any {
	to := time.Now().UTC().Truncate(time.Minute)
	from := to.Add(-time.Duration(minutes) * time.Minute)
	step := time.Duration(minutes) * time.Minute / time.Duration(max(n, 1))
	keys := []string{"requests", "traffic_bytes", "mb_instructions", "db_reads", "db_writes", "storage_bytes"}
	totals := map[string]int64{}
	var buckets []map[string]any
	for i := range n {
		b := map[string]any{"start": from.Add(time.Duration(i) * step).Format(time.RFC3339), "end": from.Add(time.Duration(i+1) * step).Format(time.RFC3339)}
		vals := []int64{int64(10 * i), int64(1500 * i), int64(7 * i * i), int64(3 * i), int64(i), int64(1 << 20)}
		for k, key := range keys {
			b[key] = vals[k]
			totals[key] += vals[k]
		}
		buckets = append(buckets, b)
	}
	totals["storage_bytes"] = 1 << 20
	units := map[string]int64{"requests": 1200, "traffic_bytes": 1800000, "mb_instructions": 9000, "db_reads": 360, "db_writes": 120, "storage_bytes": 1 << 20}
	return map[string]any{
		"from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339), "buckets": buckets, "totals": totals, "cost": "1234.5",
		"settlements": []map[string]any{
			{"time": from.Add(20 * time.Minute).Format(time.RFC3339), "seed": "settle-seed-aaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "charged": 1234, "units": units},
			{"time": from.Add(50 * time.Minute).Format(time.RFC3339), "seed": "settle-seed-aaaaaaaaaaaaaaaaaaaaaaaaaaaa2", "charged": 567, "units": units},
		},
	}
}

// show routes the page to hash (no reload) and waits for the view to render.
func show(t *testing.T, ctx context.Context, hash, view string) {
	t.Helper()
	browsertest.Eval[chromedp.Void](t, ctx, `location.hash = `+strconv.Quote(hash))
	browsertest.WaitFor(t, ctx, "view "+view, `document.getElementById('main').dataset.view === `+strconv.Quote(view)+
		` && !document.getElementById('main').hasAttribute('aria-busy')`)
}

func keys(t *testing.T, ctx context.Context, sel string) []string {
	t.Helper()
	return browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll(`+strconv.Quote(sel)+`)].map(e => e.dataset.key || e.dataset.id)`)
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestConsolePage(t *testing.T) {
	f := newFakeAPI(t)
	ctx := browsertest.StartBrowser(t)
	browsertest.Do(t, ctx, "open the console", chromedp.Navigate(f.srv.URL+"/#/market"))
	browsertest.WaitFor(t, ctx, "the market table", `document.querySelectorAll('#market tbody tr').length === 3`)
	browsertest.Eval[chromedp.Void](t, ctx, `window.__sameDocument = 'yes'`)

	t.Run("header", func(t *testing.T) {
		browsertest.WaitFor(t, ctx, "the session", `document.getElementById('profile').textContent === 'dev'`)
		if got := browsertest.Eval[string](t, ctx, `document.getElementById('address').title`); got != addrDev {
			t.Errorf("address title = %q, want %q", got, addrDev)
		}
		if got := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))`); !equal(got, []string{"#/market", "#/stacks", "#/escrow", "#/provider"}) {
			t.Errorf("nav links = %v", got)
		}
	})

	t.Run("market", func(t *testing.T) {
		if got := keys(t, ctx, "#market tbody tr"); !equal(got, []string{regEast, regWest, regNorth}) {
			t.Errorf("rows before sorting = %v", got)
		}
		text := browsertest.Eval[string](t, ctx, `document.getElementById('market').innerText`)
		for _, want := range []string{"east", "acme", "bolt", "per 1T MB-instructions", "per GiB-month", "1M hello requests", "3,410.77", "5,000"} {
			if !strings.Contains(text, want) {
				t.Errorf("market table lacks %q:\n%s", want, text)
			}
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#market thead th button.sort').length`); n != 12 {
			t.Errorf("%d sortable headers, want 12 (provider, region, min escrow, 8 rates, sample cost)", n)
		}
		browsertest.Do(t, ctx, "sort by sample cost", chromedp.Click(chromedp.CSS(`#market button[data-sort="sample_cost"]`)))
		if got := keys(t, ctx, "#market tbody tr"); !equal(got, []string{regWest, regNorth, regEast}) {
			t.Errorf("rows by sample cost, ascending = %v, want west, north, east", got)
		}
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('#market button[data-sort="sample_cost"]').closest('th').getAttribute('aria-sort')`); got != "ascending" {
			t.Errorf("aria-sort = %q, want ascending", got)
		}
		// The header is a button: Enter on it sorts too, the other way.
		browsertest.Do(t, ctx, "sort again with the keyboard",
			chromedp.Focus(chromedp.CSS(`#market button[data-sort="sample_cost"]`)), chromedp.KeyEvent(kb.Enter))
		if got := keys(t, ctx, "#market tbody tr"); !equal(got, []string{regEast, regNorth, regWest}) {
			t.Errorf("rows by sample cost, descending = %v, want east, north, west", got)
		}
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('#market th[aria-sort]').getAttribute('aria-sort')`); got != "descending" {
			t.Errorf("aria-sort = %q, want descending", got)
		}
		browsertest.Screenshot(t, ctx, "market")
	})

	t.Run("stacks live", func(t *testing.T) {
		browsertest.WaitFor(t, ctx, "the event stream", `document.getElementById('conn').dataset.state === 'live'`)
		show(t, ctx, "#/stacks", "stacks")
		row := func(id string) string { return `#stacks tr[data-id="` + id + `"]` }
		for id, state := range map[string]string{stackGree: "active", stackTodo: "paused", stackOld: "deleted"} {
			if got := browsertest.Eval[string](t, ctx, `document.querySelector('`+row(id)+` .badge').textContent`); got != state {
				t.Errorf("stack %s shows %q, want %q", id, got, state)
			}
		}
		text := browsertest.Eval[string](t, ctx, `document.getElementById('stacks').innerText`)
		for _, want := range []string{"greeter", "7xKXtg…gAsU", "acme / east", "/api/hello/{name}", "Details", "Logs"} {
			if !strings.Contains(text, want) {
				t.Errorf("stacks table lacks %q:\n%s", want, text)
			}
		}
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('`+row(stackGree)+` code').title`); got != stackGree {
			t.Errorf("the short id's title = %q, want the full id", got)
		}
		browsertest.Screenshot(t, ctx, "stacks")

		paused := stack(stackGree, "greeter", regEast, 4, "active", false)
		f.send("stack", paused)
		browsertest.WaitFor(t, ctx, "greeter paused by the event", `document.querySelector('`+row(stackGree)+` .badge.paused')`)
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('`+row(stackGree)+` td.num').textContent`); got != "4" {
			t.Errorf("revision after the event = %q, want 4", got)
		}
		if got := browsertest.Eval[string](t, ctx, `window.__sameDocument || 'reloaded'`); got != "yes" {
			t.Errorf("the page reloaded")
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#stacks tbody tr').length`); n != 3 {
			t.Errorf("%d rows after the event, want 3", n)
		}
		browsertest.WaitFor(t, ctx, "the announcement", `document.getElementById('announce').textContent.includes('greeter is now paused')`)
		browsertest.Screenshot(t, ctx, "stacks-after-event")
	})

	t.Run("stack detail", func(t *testing.T) {
		show(t, ctx, "#/stacks/"+stackGree, "stack")
		if got := f.query("usage"); got != "buckets=24&minutes=1440" {
			t.Errorf("usage query = %q", got)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#charts svg').length`); n != 6 {
			t.Errorf("%d charts, want 6", n)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#charts [data-chart="requests"] svg .pt').length`); n != 24 {
			t.Errorf("requests chart has %d data points, want 24", n)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#charts [data-chart="db"] svg circle.pt').length`); n != 48 {
			t.Errorf("db chart has %d data points, want 48 (reads and writes)", n)
		}
		label := browsertest.Eval[string](t, ctx, `(() => { const s = document.querySelector('#charts [data-chart="requests"] svg'); return s.getAttribute('role') + ' ' + document.getElementById(s.getAttribute('aria-labelledby')).textContent })()`)
		if !strings.HasPrefix(label, "img Requests, 24 buckets") || !strings.Contains(label, "total 2,760") {
			t.Errorf("requests chart label = %q", label)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#charts [data-chart="traffic"] table.vh tbody tr').length`); n != 24 {
			t.Errorf("the traffic chart's data table has %d rows, want 24", n)
		}
		if got := browsertest.Eval[string](t, ctx, `[...document.querySelectorAll('#charts [data-chart="traffic"] .lbl')].map(e => e.textContent).join('|')`); !strings.Contains(got, "KiB") {
			t.Errorf("traffic axis labels %q have no byte unit", got)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#settlements tbody tr').length`); n != 2 {
			t.Errorf("%d settlement rows, want 2", n)
		}
		set := browsertest.Eval[string](t, ctx, `document.getElementById('settlements').innerText`)
		for _, want := range []string{"1,234", "567", "1,200", "1.7 MiB", "9,000"} {
			if !strings.Contains(set, want) {
				t.Errorf("settlements lack %q:\n%s", want, set)
			}
		}
		browsertest.WaitFor(t, ctx, "the logs", `document.querySelector('pre.logs').textContent.includes('hello 1')`)
		if got := f.query("logs"); got != "tail=50" {
			t.Errorf("logs query = %q", got)
		}
		browsertest.Do(t, ctx, "refresh the logs", chromedp.Click(chromedp.CSS(`#logs button`)))
		browsertest.WaitFor(t, ctx, "the refreshed logs", `document.querySelector('pre.logs').textContent.trim().endsWith('hello 2 <b>not html</b>')`)
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('pre.logs b').length`); n != 0 {
			t.Errorf("log text was parsed as HTML")
		}
		browsertest.Screenshot(t, ctx, "stack-detail")
	})

	t.Run("escrow", func(t *testing.T) {
		show(t, ctx, "#/escrow", "escrow")
		card := func(p string) string { return `.card[data-provider="` + p + `"]` }
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('`+card(provBolt)+` .warn').innerText`); !strings.Contains(got, "under the region minimum") {
			t.Errorf("bolt's warning = %q", got)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('`+card(provAcme)+` .warn').length`); n != 0 {
			t.Errorf("acme shows a warning")
		}
		stats := browsertest.Eval[string](t, ctx, `document.querySelector('`+card(provAcme)+` .stats').innerText`)
		for _, want := range []string{"10,000", "5,000", "400", "12h30m"} {
			if !strings.Contains(stats, want) {
				t.Errorf("acme's card lacks %q:\n%s", want, stats)
			}
		}
		browsertest.Do(t, ctx, "top up acme",
			chromedp.SendKeys(chromedp.CSS(card(provAcme)+` form[data-op="recharge"] input`), "2500"),
			chromedp.Click(chromedp.CSS(card(provAcme)+` form[data-op="recharge"] button`)))
		browsertest.WaitFor(t, ctx, "the new balance", `document.querySelector('`+card(provAcme)+` [data-k="balance"] dd').textContent === '12,500'`)
		f.mu.Lock()
		bodies := append([]string(nil), f.bodies...)
		f.mu.Unlock()
		if !equal(bodies, []string{`recharge {"amount":2500}`}) {
			t.Errorf("the fake received %q, want one recharge of 2500", bodies)
		}
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('`+card(provAcme)+` form[data-op="recharge"] [role=alert]').textContent`); !strings.Contains(got, "12,500") {
			t.Errorf("top-up message = %q", got)
		}

		// Enter in the field submits the form.
		browsertest.Do(t, ctx, "withdraw too much",
			chromedp.SendKeys(chromedp.CSS(card(provAcme)+` form[data-op="withdraw"] input`), "999999\r"))
		browsertest.WaitFor(t, ctx, "the server's error", `document.querySelector('`+card(provAcme)+` form[data-op="withdraw"] [role=alert]').textContent === 'insufficient escrow: the balance is 12500'`)

		browsertest.Do(t, ctx, "a bad amount", chromedp.SetValue(chromedp.CSS(card(provBolt)+` form[data-op="recharge"] input`), "12x"),
			chromedp.Click(chromedp.CSS(card(provBolt)+` form[data-op="recharge"] button`)))
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('`+card(provBolt)+` form[data-op="recharge"] [role=alert]').textContent`); !strings.Contains(got, "whole number") {
			t.Errorf("bad amount message = %q", got)
		}

		if got := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll('#create-escrow option')].map(o => o.value)`); !equal(got, []string{provCirr}) {
			t.Errorf("providers offered for a new escrow = %v, want only cirrus", got)
		}
		browsertest.Do(t, ctx, "create an escrow with cirrus", chromedp.Click(chromedp.CSS(`#create-escrow button`)))
		browsertest.WaitFor(t, ctx, "the new card", `document.querySelector('`+card(provCirr)+`')`)
		if got := browsertest.Eval[string](t, ctx, `document.getElementById('create-escrow').innerText`); !strings.Contains(got, "every provider") || strings.Contains(got, "Create escrow") {
			t.Errorf("the create form after the last provider: %q", got)
		}

		f.send("escrow", escrow{Provider: provBolt, ProviderName: "bolt", Balance: 9000, Minimum: 5000, TimeLeft: "20h", ActiveStacks: 1})
		browsertest.WaitFor(t, ctx, "bolt's card updated by the event", `document.querySelector('`+card(provBolt)+` [data-k="balance"] dd').textContent === '9,000'`)
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('`+card(provBolt)+` .warn').length`); n != 0 {
			t.Errorf("bolt's warning is still there after the top-up event")
		}
		browsertest.Screenshot(t, ctx, "escrow")
	})

	t.Run("provider", func(t *testing.T) {
		show(t, ctx, "#/provider", "provider")
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#provider-regions tbody tr').length`); n != 2 {
			t.Errorf("%d provider regions, want 2", n)
		}
		text := browsertest.Eval[string](t, ctx, `document.getElementById('main').innerText`)
		for _, want := range []string{"Provider acme", "authorized", "east", "123,456", "98,765"} {
			if !strings.Contains(text, want) {
				t.Errorf("provider view lacks %q:\n%s", want, text)
			}
		}
		browsertest.Screenshot(t, ctx, "provider")
		f.mu.Lock()
		f.ownProvider = false
		f.mu.Unlock()
		show(t, ctx, "#/market", "market")
		show(t, ctx, "#/provider", "provider")
		browsertest.WaitFor(t, ctx, "the no-provider note", `document.getElementById('no-provider')`)
		f.mu.Lock()
		f.ownProvider = true
		f.mu.Unlock()
	})

	t.Run("phone width", func(t *testing.T) {
		browsertest.Do(t, ctx, "a 375 px viewport", chromedp.EmulateViewport(375, 812))
		for _, v := range []struct{ hash, view string }{
			{"#/market", "market"}, {"#/stacks", "stacks"}, {"#/stacks/" + stackGree, "stack"}, {"#/escrow", "escrow"}, {"#/provider", "provider"},
		} {
			show(t, ctx, v.hash, v.view)
			if w := browsertest.Eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 375 {
				t.Errorf("%s at 375 px: the page is %d px wide", v.hash, w)
			}
			browsertest.Screenshot(t, ctx, "phone-"+v.view)
		}
	})

	t.Run("dark", func(t *testing.T) {
		browsertest.Do(t, ctx, "the desktop viewport", chromedp.EmulateViewport(1280, 900))
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
			t.Fatalf("prefer dark: %v", err)
		}
		show(t, ctx, "#/stacks/"+stackGree, "stack")
		if got := browsertest.Eval[string](t, ctx, `getComputedStyle(document.body).backgroundColor`); got != "rgb(17, 19, 24)" {
			t.Errorf("dark background = %q", got)
		}
		browsertest.Screenshot(t, ctx, "dark-stack-detail")
		show(t, ctx, "#/escrow", "escrow")
		browsertest.Screenshot(t, ctx, "dark-escrow")
	})
}
