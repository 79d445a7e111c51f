package cmd

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/muprotocol/mu/cli/internal/consoleui/browsertest"
	"github.com/muprotocol/mu/libs/ids"
)

// showView routes the page to hash and waits until view has rendered.
func showView(t *testing.T, ctx context.Context, hash, view string) {
	t.Helper()
	browsertest.Eval[chromedp.Void](t, ctx, `location.hash = `+strconv.Quote(hash))
	browsertest.WaitFor(t, ctx, "view "+view, `document.getElementById('main').dataset.view === `+strconv.Quote(view)+
		` && !document.getElementById('main').hasAttribute('aria-busy')`)
}

// TestConsoleBrowser_AgainstALocalRegion opens mu console's page in
// Chromium against a local region: the market lists the dev provider's
// prices, a stack deployed meanwhile appears without a reload, requests
// show in its charts and settlement table, a settlement that drains the
// escrow shows the stack paused, and a top-up through the page's form
// raises the balance on the ledger and resumes the stack.
func TestConsoleBrowser_AgainstALocalRegion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm, starts a region and a browser")
	}
	ctx := browsertest.StartBrowser(t) // skips without Chromium
	cr := startConsoleRegion(t)
	mk := cr.r.Market()
	start := time.Now()
	browsertest.Do(t, ctx, "open the console", chromedp.Navigate(cr.c.URL(cr.console.Listener.Addr())+"#/market"))
	browsertest.WaitFor(t, ctx, "the market table", `document.querySelectorAll('#market tbody tr').length === 1`)
	t.Logf("console: first render of the market %s after navigating", time.Since(start).Round(time.Millisecond))
	browsertest.Eval[chromedp.Void](t, ctx, `window.__sameDocument = 'yes'`)
	market := browsertest.Eval[string](t, ctx, `document.getElementById('market').innerText`)
	for _, want := range []string{"local", "1,000,000,000", "1M hello requests", "per 1M requests"} {
		if !strings.Contains(market, want) {
			t.Fatalf("the market lacks %q:\n%s", want, market)
		}
	}
	browsertest.Screenshot(t, ctx, "region-market")

	// A stack deployed while the page shows the list appears live.
	browsertest.WaitFor(t, ctx, "the event stream", `document.getElementById('conn').dataset.state === 'live'`)
	showView(t, ctx, "#/stacks", "stacks")
	row := func(id ids.StackID) string { return `#stacks tr[data-id="` + id.String() + `"]` }
	browsertest.WaitFor(t, ctx, "the served stack, active", `document.querySelector('`+row(cr.stack)+` .badge')?.textContent === 'active'`)
	dir := t.TempDir()
	m, bins := buildInit(t, dir, "second")
	pctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cr.r.Post(pctx, mk.Keys.Developer, 2, m, bins)
	if err != nil {
		t.Fatal(err)
	}
	second := ids.StackID(st.ID)
	browsertest.WaitFor(t, ctx, "the new stack's row", `document.querySelector('`+row(second)+`')`)
	browsertest.Screenshot(t, ctx, "region-stacks")

	// Requests, then a settlement that leaves the escrow under the minimum.
	for range 5 {
		if body := getBody(t, cr.url); body != "Hello, dev!" {
			t.Fatalf("GET: %q", body)
		}
	}
	cr.settle(t, 5)
	browsertest.WaitFor(t, ctx, "the stack paused by low escrow", `document.querySelector('`+row(cr.stack)+` .badge.paused')`)
	if got := browsertest.Eval[string](t, ctx, `window.__sameDocument || 'reloaded'`); got != "yes" {
		t.Fatal("the page reloaded")
	}
	browsertest.Screenshot(t, ctx, "region-stacks-paused")

	showView(t, ctx, "#/stacks/"+cr.stack.String(), "stack")
	label := browsertest.Eval[string](t, ctx, `(() => { const s = document.querySelector('#charts [data-chart="requests"] svg'); return document.getElementById(s.getAttribute('aria-labelledby')).textContent })()`)
	if !strings.Contains(label, "total 5") {
		t.Fatalf("the requests chart says %q, want a total of 5", label)
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#settlements tbody tr').length`); n != 1 {
		t.Fatalf("%d settlement rows, want 1", n)
	}
	if set := browsertest.Eval[string](t, ctx, `document.getElementById('settlements').innerText`); !strings.Contains(set, "5,000") {
		t.Fatalf("the settlement table lacks the 5,000 charged:\n%s", set)
	}
	browsertest.WaitFor(t, ctx, "the logs", `document.querySelector('pre.logs').textContent.includes('greeting')`)
	browsertest.Screenshot(t, ctx, "region-stack")

	// A top-up through the page's form.
	if err := cr.r.Ledger().Mint(pctx, mk.Keys.Authority, mk.Keys.Developer.Pubkey(), 100_000); err != nil {
		t.Fatal(err)
	}
	showView(t, ctx, "#/escrow", "escrow")
	card := `.card[data-provider="` + mk.Provider.ID.String() + `"]`
	browsertest.WaitFor(t, ctx, "the low-escrow warning", `document.querySelector('`+card+` .warn')`)
	browsertest.Do(t, ctx, "top up",
		chromedp.SendKeys(chromedp.CSS(card+` form[data-op="recharge"] input`), "100000"),
		chromedp.Click(chromedp.CSS(card+` form[data-op="recharge"] button`)))
	browsertest.WaitFor(t, ctx, "the new balance", `document.querySelector('`+card+` [data-k="balance"] dd').textContent === '100,500'`)
	e, err := cr.r.Ledger().Escrow(pctx, mk.Keys.Developer.Pubkey(), mk.Provider.ID)
	if err != nil || e.Balance != 100_500 {
		t.Fatalf("the ledger's escrow after the top-up: %+v %v", e, err)
	}
	browsertest.Screenshot(t, ctx, "region-escrow")
	showView(t, ctx, "#/stacks", "stacks")
	browsertest.WaitFor(t, ctx, "the stack resumed", `document.querySelector('`+row(cr.stack)+` .badge')?.textContent === 'active'`)
	if body := getBody(t, cr.url); body != "Hello, dev!" {
		t.Fatalf("GET after the top-up: %q", body)
	}
	// The provider's own view, in a console for the provider's key: its
	// region, its stacks, the requests served and what it earned (5,000
	// charged less the marketplace's 5%).
	pc := newConsole(cr.s, mk.Keys.Provider, 24*time.Hour)
	psrv := httptest.NewServer(pc)
	pc.allow(psrv.Listener.Addr())
	defer func() { pc.stop(); psrv.Close() }()
	browsertest.Do(t, ctx, "open the provider's console", chromedp.Navigate(pc.URL(psrv.Listener.Addr())+"#/provider"))
	browsertest.WaitFor(t, ctx, "the provider view", `document.getElementById('main').dataset.view === 'provider' && !document.getElementById('main').hasAttribute('aria-busy')`)
	pv := browsertest.Eval[string](t, ctx, `document.getElementById('main').innerText`)
	for _, want := range []string{"local", "4,750"} {
		if !strings.Contains(pv, want) {
			t.Fatalf("the provider view lacks %q:\n%s", want, pv)
		}
	}
	browsertest.Screenshot(t, ctx, "region-provider")
	browsertest.Do(t, ctx, "back to the developer's console", chromedp.Navigate(cr.console.URL+"/#/stacks"))
	browsertest.WaitFor(t, ctx, "the stacks", `document.getElementById('main').dataset.view === 'stacks'`)

	page := browsertest.Eval[int](t, ctx, `performance.getEntriesByType('resource').filter(e => !e.name.includes('/api/')).reduce((n, e) => n + e.transferSize, 0) + performance.getEntriesByType('navigation')[0].transferSize`)
	t.Logf("console page weight: %d bytes transferred (HTML, CSS, JS modules)", page)
}
