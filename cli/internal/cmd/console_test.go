package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/project"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	"github.com/muprotocol/mu/region"
	billing "github.com/muprotocol/mu/services/billing"
)

// consoleRegion is a local region with one served stack and a console
// for its developer.
type consoleRegion struct {
	r       *region.Region
	s       *session
	c       *console
	client  *http.Client // holds the console's session cookie
	console *httptest.Server
	stack   ids.StackID
	url     string // the stack's greet endpoint, for name "dev"
}

// startConsoleRegion starts a region like mu run's, with a hello stack
// whose requests cost 1,000 base units each (settlement only when the
// test asks), and a console signed by the stack's developer.
func startConsoleRegion(t *testing.T) *consoleRegion {
	t.Helper()
	ctx := context.Background()
	m, bins := buildInit(t, t.TempDir(), "greeter")
	r, err := region.Start(ctx, region.Options{
		DataDir: t.TempDir(),
		Mudb:    &region.MudbOptions{},
		Storage: &region.StorageOptions{},
		Ledger: &region.LedgerOptions{Market: func(s *region.MarketSettings) {
			s.Region.Rates.GatewayPerMillionRequests = 1_000_000_000 // 1,000 a request
			s.Region.MinEscrowBalance = 1_000
			s.Escrow = 5_500
		}},
		Billing: &region.BillingOptions{Config: func(c *billing.Config) { c.SettleInterval = time.Hour }},
		Runtime: &region.RuntimeOptions{},
		Gateway: &region.GatewayOptions{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	mk := r.Market()
	st, err := r.Post(ctx, mk.Keys.Developer, 1, m, bins)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.StackID(st.ID)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.WaitServed(wctx, id, st.Revision); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "dev.json")
	if err := ledger.SaveKeypair(keyFile, mk.Keys.Developer); err != nil {
		t.Fatal(err)
	}
	cmd := &cobra.Command{}
	f := addRegionFlags(cmd, false)
	f.gateway, f.storage, f.indexer, f.billing, f.keypair = "http://"+r.Gateway().Addr(), r.Storage().URL(), r.ChainIndexer().Addr(), r.Billing().Addr(), keyFile
	cmd.SetContext(ctx)
	s, err := openSession(cmd, f, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := newConsole(s, mk.Keys.Developer, 24*time.Hour)
	srv := httptest.NewServer(c)
	c.allow(srv.Listener.Addr())
	t.Cleanup(func() { c.stop(); srv.Close() })
	client := consoleClient(t, c, srv)
	var url string
	for _, e := range r.URLs(id, m) {
		url = strings.Replace(e.URL, "{name}", "dev", 1)
	}
	return &consoleRegion{r: r, s: s, c: c, client: client, console: srv, stack: id, url: url}
}

// consoleClient opens the console's URL with a cookie jar, as a browser
// does, and returns the client holding the session.
func consoleClient(t *testing.T, c *console, srv *httptest.Server) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	resp, err := client.Get(c.URL(srv.Listener.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" {
		t.Fatalf("opening the console's URL: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return client
}

// buildInit makes a project named name with mu init under parent and
// builds it.
func buildInit(t *testing.T, parent, name string) (*manifest.Manifest, map[string][]byte) {
	t.Helper()
	dir := filepath.Join(parent, name)
	sdk, _ := filepath.Abs("../../../sdk/go")
	if code := Run(context.Background(), []string{"init", dir, "--sdk-dir", sdk}, nil, io.Discard, io.Discard); code != ExitOK {
		t.Fatalf("init: exit %d", code)
	}
	p, err := project.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := buildProject(context.Background(), io.Discard, p)
	if err != nil {
		t.Fatal(err)
	}
	return b.Manifest, b.Binaries
}

// getJSON GETs the console's path into v.
func (cr *consoleRegion) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := cr.client.Get(cr.console.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

// post POSTs a JSON body as the page does and returns status and body.
func (cr *consoleRegion) post(t *testing.T, path, body, origin string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, cr.console.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := cr.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// settle sends every request so far to billing and settles it on the
// ledger.
func (cr *consoleRegion) settle(t *testing.T, requests int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cr.r.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := cr.r.Billing().Client().GetUsage(ctx, &billingv1.GetUsageRequest{StackId: cr.stack.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		var p usagePoint
		for _, x := range resp.GetTotals() {
			p.add(x)
		}
		if p.Requests >= uint64(requests) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("billing has %d requests, want %d", p.Requests, requests)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := cr.r.Billing().Client().Settle(ctx, &billingv1.SettleRequest{}); err != nil {
		t.Fatal(err)
	}
}

// sse reads a server-sent event stream.
type sse struct {
	events chan [2]string // name, data
}

func openSSE(t *testing.T, client *http.Client, url string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	s := &sse{events: make(chan [2]string, 256)}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var name string
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.HasPrefix(l, "event: "):
				name = strings.TrimPrefix(l, "event: ")
			case strings.HasPrefix(l, "data: "):
				s.events <- [2]string{name, strings.TrimPrefix(l, "data: ")}
			}
		}
	}()
	return s
}

// waitEvent waits for an event named name whose data satisfies ok.
func (s *sse) waitEvent(t *testing.T, name string, ok func(data string) bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-s.events:
			if e[0] == name && ok(e[1]) {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event as wanted within 30 s", name)
		}
	}
}

// TestConsole_APIServesTheMarketStacksUsageAndEscrowLive drives the
// console's API against a local region: the market, the stack, its usage
// after requests, its logs; a settlement that drains the escrow pauses
// the stack (seen live), and a top-up through the API resumes it.
func TestConsole_APIServesTheMarketStacksUsageAndEscrowLive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm and starts a region")
	}
	cr := startConsoleRegion(t)
	mk := cr.r.Market()

	var sess map[string]any
	cr.getJSON(t, "/api/session", &sess)
	if sess["address"] != mk.Keys.Developer.Pubkey().String() {
		t.Fatalf("session %v", sess)
	}
	var regions []regionJSON
	cr.getJSON(t, "/api/regions", &regions)
	if len(regions) != 1 || regions[0].ProviderName != "local" || regions[0].Rates["gateway_requests"] != 1_000_000_000 || regions[0].MinEscrow != 1000 {
		t.Fatalf("regions %+v", regions)
	}
	var stacks []consoleStack
	cr.getJSON(t, "/api/stacks", &stacks)
	if len(stacks) != 1 || stacks[0].ID != cr.stack.String() || stacks[0].State != "active" || !stacks[0].Enabled || len(stacks[0].URLs) != 1 {
		t.Fatalf("stacks %+v", stacks)
	}
	events := openSSE(t, cr.client, cr.console.URL+"/api/events")

	for range 5 {
		if body := getBody(t, cr.url); body != "Hello, dev!" {
			t.Fatalf("GET: %q", body)
		}
	}
	cr.settle(t, 5) // 5,000 of 5,500: under the minimum of 1,000
	events.waitEvent(t, "stack", func(d string) bool { return strings.Contains(d, `"enabled":false`) })
	// A paused stack answers 402, unbilled: the gateway counts it a client
	// error, which the usage below shows beside the billed units.
	if resp, err := http.Get(cr.url); err != nil || resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("GET of a paused stack: %v %v, want 402", resp, err)
	} else {
		resp.Body.Close()
	}
	var esc []escrowJSON
	cr.getJSON(t, "/api/escrows", &esc)
	if len(esc) != 1 || esc[0].Balance != 500 || esc[0].Minimum != 1000 || !esc[0].Warning || !strings.Contains(esc[0].WarningReason, "top-up of at least 500") {
		t.Fatalf("escrows %+v", esc)
	}
	var u struct {
		Buckets     []usagePoint   `json:"buckets"`
		Totals      usagePoint     `json:"totals"`
		Cost        string         `json:"cost"`
		Settlements []settlementUI `json:"settlements"`
	}
	cr.getJSON(t, "/api/stacks/"+cr.stack.String()+"/usage?buckets=12&minutes=720", &u)
	var sum uint64
	for _, b := range u.Buckets {
		sum += b.Requests
	}
	if len(u.Buckets) != 12 || u.Totals.Requests != 5 || sum != 5 || u.Totals.MBInstructions == 0 || u.Cost == "0" || u.Totals.ClientErrors != 1 || u.Totals.Errors != 0 {
		t.Fatalf("usage %+v", u)
	}
	if len(u.Settlements) != 1 || u.Settlements[0].Units.Requests != 5 || u.Settlements[0].Charged != 5000 {
		t.Fatalf("settlements %+v", u.Settlements)
	}
	resp, err := cr.client.Get(cr.console.URL + "/api/stacks/" + cr.stack.String() + "/logs?tail=20")
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(logs), "greeting") {
		t.Fatalf("logs: %d %s", resp.StatusCode, logs)
	}

	// Writes: only from the console's own page; a top-up through the API.
	path := "/api/escrows/" + mk.Provider.ID.String() + "/recharge"
	for _, origin := range []string{"http://evil.example", "", "null", "https://" + cr.console.Listener.Addr().String()} {
		if code, body := cr.post(t, path, `{"amount":1000}`, origin); code != http.StatusForbidden || !strings.Contains(body, "refused") {
			t.Fatalf("top-up from origin %q: %d %s", origin, code, body)
		}
	}
	// No session cookie, or another Host (a rebound name): refused.
	if resp, err := http.Get(cr.console.URL + "/api/session"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the API without the session: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodGet, cr.console.URL+"/api/session", nil)
	req.Host = "evil.example:" + strings.Split(cr.console.Listener.Addr().String(), ":")[1]
	if resp, err := cr.client.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("another Host: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get(cr.console.URL + "/?token=wrong"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if code, body := cr.post(t, path, `{"amount":1000}`, cr.console.URL); code != http.StatusBadRequest || !strings.Contains(body, "holds 0") {
		t.Fatalf("top-up from an empty wallet: %d %s", code, body)
	}
	ctx := waitCtxFor(t)
	if err := cr.r.Ledger().Mint(ctx, mk.Keys.Authority, mk.Keys.Developer.Pubkey(), 100_000); err != nil {
		t.Fatal(err)
	}
	code, body := cr.post(t, path, `{"amount":100000}`, cr.console.URL)
	if code != 200 {
		t.Fatalf("top-up: %d %s", code, body)
	}
	var after escrowJSON
	// 5,000 burned in the last hour: 100,500 lasts under a day, which the
	// console's 24 h threshold warns about.
	if err := json.Unmarshal([]byte(body), &after); err != nil || after.Balance != 100_500 || !after.Warning || !strings.Contains(after.WarningReason, "at the recent burn rate") || after.BurnPerHour == nil || *after.BurnPerHour != 5000 {
		t.Fatalf("after the top-up %s (%v)", body, err)
	}
	if e, err := cr.r.Ledger().Escrow(ctx, mk.Keys.Developer.Pubkey(), mk.Provider.ID); err != nil || e.Balance != 100_500 {
		t.Fatalf("the ledger's escrow %+v %v", e, err)
	}
	events.waitEvent(t, "stack", func(d string) bool { return strings.Contains(d, `"enabled":true`) })
	events.waitEvent(t, "escrow", func(d string) bool { return strings.Contains(d, `"balance":100500`) })
	if code, body := cr.post(t, path, `{"amount":0}`, cr.console.URL); code != http.StatusBadRequest || !strings.Contains(body, "amount") {
		t.Fatalf("zero top-up: %d %s", code, body)
	}
	var prov map[string]any
	cr.getJSON(t, "/api/provider", &prov)
	if prov["provider"] != nil {
		t.Fatalf("a developer key owns no provider: %v", prov)
	}
	// The page itself is served.
	resp, err = http.Get(cr.console.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<") {
		t.Fatalf("page: %d %s", resp.StatusCode, page)
	}
}

func waitCtxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestConsoleCommand_ServesOnLoopbackOnlyAndStopsOnCancel runs mu console
// as a person does: it prints the page's URL, the page and the API answer
// there, and it refuses to listen beyond loopback.
func TestConsoleCommand_ServesOnLoopbackOnlyAndStopsOnCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm and starts a region")
	}
	cr := startConsoleRegion(t)
	keyFile := filepath.Join(t.TempDir(), "dev.json")
	if err := ledger.SaveKeypair(keyFile, cr.r.Market().Keys.Developer); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--gateway", "http://" + cr.r.Gateway().Addr(), "--indexer", cr.r.ChainIndexer().Addr(), "--billing", cr.r.Billing().Addr(), "--keypair", keyFile}
	var out, errb strings.Builder
	if code := Run(context.Background(), append([]string{"console", "--addr", "0.0.0.0:0"}, flags...), nil, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "loopback only") {
		t.Fatalf("--addr 0.0.0.0:0: exit %d %s", code, errb.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"console", "--addr", "127.0.0.1:0"}, flags...), nil, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://127.0.0.1:") {
		t.Fatalf("console printed %q (%v)", line, err)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	opened, err := client.Get(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	opened.Body.Close()
	base := strings.TrimSuffix(opened.Request.URL.String(), "/") + "/"
	if !strings.Contains(line, "?token=") || opened.Request.URL.RawQuery != "" {
		t.Fatalf("printed %q, landed on %s", line, opened.Request.URL)
	}
	var sess map[string]any
	resp, err := client.Get(base + "api/session")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	if sess["address"] != cr.r.Market().Keys.Developer.Pubkey().String() {
		t.Fatalf("session %v", sess)
	}
	if page := getBody(t, base); !strings.Contains(page, `type="module"`) {
		t.Fatalf("the page: %.200s", page)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("console exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("console did not stop after cancel")
	}
}
