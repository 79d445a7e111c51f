package cmd

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mr-tron/base58"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/cli/internal/consoleui"
	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

func newConsoleCommand() *cobra.Command {
	var addr string
	var warn time.Duration
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the marketplace console (a web page) for your profile on 127.0.0.1",
		Long: `Console serves a web page on --addr (127.0.0.1 only) for the profile's region
and key: the market's providers and regions with their prices side by side,
your stacks with their state, usage over time and the metered units behind
each settlement, their logs, your escrows with their time left and forms to
top them up or withdraw, and for a provider key its regions and earnings.
The page talks only to this command, which asks the chain-indexer, billing
and the gateway, and signs ledger writes with your key: the key never
reaches the browser. Stacks and escrows update live. It prints the page's
URL and serves until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, _, err := net.SplitHostPort(addr)
			if err != nil || (host != "127.0.0.1" && host != "localhost" && host != "::1") {
				return &exitError{code: ExitUsage, err: fmt.Errorf("--addr %q: the console signs with your key and listens on loopback only (127.0.0.1:PORT)", addr)}
			}
			s, key, err := openKeyed(cmd, f, true)
			if err != nil {
				return err
			}
			defer s.Close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("--addr: %w", err)}
			}
			if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
				ln.Close()
				return &exitError{code: ExitUsage, err: fmt.Errorf("--addr %q resolved to %s, not a loopback address", addr, ln.Addr())}
			}
			c := newConsole(s, key, warn)
			c.allow(ln.Addr())
			srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintln(cmd.OutOrStdout(), c.URL(ln.Addr()))
			fmt.Fprintf(cmd.ErrOrStderr(), "console for %s (profile %q); press Ctrl-C to stop\n", key.Pubkey(), s.t.profile)
			go func() {
				<-cmd.Context().Done()
				c.stop()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return &exitError{code: ExitUsage, err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:12090", "where to serve the page (loopback only)")
	cmd.Flags().DurationVar(&warn, "warn", 24*time.Hour, "warn about an escrow that lasts less than this at its recent burn rate")
	f = addRegionFlags(cmd, false)
	return cmd
}

// console is the page's HTTP/JSON API over a session.
type console struct {
	s    *session
	key  *ledger.Keypair
	warn time.Duration
	mux  *http.ServeMux
	// done ends the event streams when the console stops.
	done     chan struct{}
	stopOnce sync.Once
	// token is the session's secret (in the printed URL, then a cookie);
	// hosts the Host values of the console's own address (allow).
	token  string
	hosts  map[string]bool
	cookie string
}

func newConsole(s *session, key *ledger.Keypair, warn time.Duration) *console {
	var tok [24]byte
	if _, err := rand.Read(tok[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	c := &console{s: s, key: key, warn: warn, mux: http.NewServeMux(), done: make(chan struct{}), token: base58.Encode(tok[:])}
	static, err := fs.Sub(consoleui.Static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	c.mux.Handle("GET /", http.FileServerFS(static))
	c.mux.HandleFunc("GET /api/session", c.session)
	c.mux.HandleFunc("GET /api/providers", c.providers)
	c.mux.HandleFunc("GET /api/regions", c.regions)
	c.mux.HandleFunc("GET /api/stacks", c.stacks)
	c.mux.HandleFunc("GET /api/stacks/{id}", c.stack)
	c.mux.HandleFunc("GET /api/stacks/{id}/usage", c.usage)
	c.mux.HandleFunc("GET /api/stacks/{id}/logs", c.logs)
	c.mux.HandleFunc("GET /api/escrows", c.escrows)
	c.mux.HandleFunc("POST /api/escrows", c.createEscrow)
	c.mux.HandleFunc("POST /api/escrows/{provider}/{action}", c.moveEscrow)
	c.mux.HandleFunc("GET /api/provider", c.provider)
	c.mux.HandleFunc("GET /api/events", c.events)
	return c
}

func (c *console) stop() { c.stopOnce.Do(func() { close(c.done) }) }

// sessionCookie, with the console's port, names the cookie that carries
// the console's token once the printed URL was opened (cookies do not tell
// ports apart: two consoles on one machine keep one each).
const sessionCookie = "mu_console_"

// allow records the address the console serves on: requests must name it
// in Host (a page of another site whose name was rebound to 127.0.0.1
// names its own), and writes must come from a page of that origin.
func (c *console) allow(addr net.Addr) {
	_, port, _ := net.SplitHostPort(addr.String())
	c.cookie = sessionCookie + port
	c.hosts = map[string]bool{}
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
		c.hosts[h+":"+port] = true
	}
}

// URL is where a person opens the console: it carries the token once,
// which the console turns into a cookie.
func (c *console) URL(addr net.Addr) string {
	return "http://" + addr.String() + "/?token=" + c.token
}

// ServeHTTP checks every request before the API sees it: the Host must be
// the console's own address (no DNS rebinding), the API needs the
// session's cookie (no other local user or page without the printed URL),
// and a write must be JSON from the console's own origin (no cross-site
// form or fetch may sign with the key).
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !c.hosts[r.Host] {
		writeAPIError(w, http.StatusMisdirectedRequest, fmt.Errorf("host %q is not this console's address", r.Host))
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	if tok := r.URL.Query().Get("token"); tok != "" && r.URL.Path == "/" {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(c.token)) != 1 {
			writeAPIError(w, http.StatusUnauthorized, errors.New("this is not the token mu console printed; open the URL it printed"))
			return
		}
		http.SetCookie(w, &http.Cookie{Name: c.cookie, Value: c.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		ck, err := r.Cookie(c.cookie)
		if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(c.token)) != 1 {
			writeAPIError(w, http.StatusUnauthorized, errors.New("no console session: open the URL mu console printed (it carries the session's token)"))
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if o := r.Header.Get("Origin"); !c.hosts[strings.TrimPrefix(o, "http://")] || !strings.HasPrefix(o, "http://") {
			writeAPIError(w, http.StatusForbidden, fmt.Errorf("writes from origin %q are refused: the console signs with your key, for its own page only", o))
			return
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			writeAPIError(w, http.StatusUnsupportedMediaType, errors.New("send application/json"))
			return
		}
	}
	c.mux.ServeHTTP(w, r)
}

func writeAPIJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// writeAPIError answers {"error": message} with code.
func writeAPIError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// apiFail answers 502 for a region service that did not answer, 400 for
// what the person can act on (an exitError), 502 otherwise.
func apiFail(w http.ResponseWriter, err error) {
	var xerr *exitError
	var unreachable unreachableError
	if errors.As(err, &unreachable) {
		writeAPIError(w, http.StatusBadGateway, err)
		return
	}
	if errors.As(err, &xerr) {
		writeAPIError(w, http.StatusBadRequest, err)
		return
	}
	writeAPIError(w, http.StatusBadGateway, err)
}

func (c *console) session(w http.ResponseWriter, r *http.Request) {
	t := c.s.t
	writeAPIJSON(w, map[string]any{
		"profile": t.profile, "address": c.key.Pubkey().String(), "gateway": t.gateway.v, "indexer": t.indexer.v,
		"billing": t.billing.v, "warn_hours": c.warn.Hours(),
	})
}

func (c *console) providers(w http.ResponseWriter, r *http.Request) {
	ps, err := c.s.providers(r.Context())
	if err != nil {
		apiFail(w, err)
		return
	}
	rs, err := c.s.regions(r.Context(), nil)
	if err != nil {
		apiFail(w, err)
		return
	}
	count := map[string]int{}
	for _, x := range rs {
		count[string(x.GetProviderId())]++
	}
	out := []providerJSON{}
	for _, p := range ps {
		v := providerView(p)
		v.Regions = count[string(p.GetId())]
		out = append(out, v)
	}
	writeAPIJSON(w, out)
}

func (c *console) regions(w http.ResponseWriter, r *http.Request) {
	byID, err := c.s.providersByID(r.Context())
	if err != nil {
		apiFail(w, err)
		return
	}
	rs, err := c.s.regions(r.Context(), nil)
	if err != nil {
		apiFail(w, err)
		return
	}
	writeAPIJSON(w, regionViews(rs, byID))
}

// consoleStack is a stack in the console: its listing and its URLs.
type consoleStack struct {
	stackJSON
	URLs []string `json:"urls"`
}

func (c *console) stackEntry(x *chainindexerv1.Stack, names map[string]string) consoleStack {
	v := consoleStack{stackJSON: stackView(x, names), URLs: []string{}}
	if c.s.t.gateway.v != "" && v.State != "deleted" {
		v.URLs = stackURLs(c.s.t.gateway.v, x)
	}
	return v
}

func (c *console) stacks(w http.ResponseWriter, r *http.Request) {
	stacks, names, err := c.s.myStacks(r.Context(), c.key.Pubkey(), true)
	if err != nil {
		apiFail(w, err)
		return
	}
	out := []consoleStack{}
	for _, x := range stacks {
		out = append(out, c.stackEntry(x, names))
	}
	writeAPIJSON(w, out)
}

// ownStack finds one of the key's stacks by the path's id.
func (c *console) ownStack(w http.ResponseWriter, r *http.Request) (*chainindexerv1.Stack, bool) {
	id, err := ids.ParseStackID(r.PathValue("id"))
	if err != nil {
		writeAPIError(w, http.StatusNotFound, fmt.Errorf("no stack %q: %v", r.PathValue("id"), err))
		return nil, false
	}
	x, err := c.s.findStack(r.Context(), c.key.Pubkey(), id.String())
	if err != nil {
		var unreachable unreachableError
		if errors.As(err, &unreachable) {
			apiFail(w, err)
		} else {
			writeAPIError(w, http.StatusNotFound, err)
		}
		return nil, false
	}
	if string(x.GetOwner()) != string(c.key.Pubkey().Bytes()) {
		writeAPIError(w, http.StatusForbidden, fmt.Errorf("stack %s is not yours", id))
		return nil, false
	}
	return x, true
}

func (c *console) stack(w http.ResponseWriter, r *http.Request) {
	x, ok := c.ownStack(w, r)
	if !ok {
		return
	}
	names, err := c.s.regionNames(r.Context())
	if err != nil {
		apiFail(w, err)
		return
	}
	out := struct {
		consoleStack
		Served any    `json:"served"`
		Error  string `json:"served_error,omitempty"`
	}{consoleStack: c.stackEntry(x, names)}
	if c.s.t.gateway.v != "" && out.State != "deleted" {
		st, found, err := c.s.gatewayStatus(r.Context(), ids.StackID(x.GetId()))
		switch {
		case err != nil:
			out.Error = err.Error()
		case found:
			out.Served = st
		}
	}
	writeAPIJSON(w, out)
}

// usagePoint is the usage of one period in the console's units.
type usagePoint struct {
	Start          string `json:"start,omitempty"`
	End            string `json:"end,omitempty"`
	Requests       uint64 `json:"requests"`
	TrafficBytes   uint64 `json:"traffic_bytes"`
	MBInstructions uint64 `json:"mb_instructions"`
	DBReads        uint64 `json:"db_reads"`
	DBWrites       uint64 `json:"db_writes"`
	StorageBytes   uint64 `json:"storage_bytes"`
	// Answers by the gateway with a 5xx and a 4xx status (not billed: the
	// gateway's own counts, since it started).
	Errors       uint64 `json:"errors"`
	ClientErrors uint64 `json:"client_errors"`
}

// add counts one usage total in p (amounts past 64 bits saturate).
func (p *usagePoint) add(t *billingv1.UsageTotal) {
	a := u128(t.GetAmount())
	v := uint64(^uint64(0))
	if a.IsUint64() {
		v = a.Uint64()
	}
	switch t.GetKind() {
	case typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS:
		p.Requests += v
	case typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES:
		p.TrafficBytes += v
	case typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS:
		p.MBInstructions += v
	case typesv1.UsageKind_USAGE_KIND_DB_READS:
		p.DBReads += v
	case typesv1.UsageKind_USAGE_KIND_DB_WRITES:
		p.DBWrites += v
	case typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES:
		p.StorageBytes += v
	}
}

// Bounds of a usage query, so that one page load cannot ask billing for
// thousands of periods.
const (
	maxUsageBuckets = 200
	maxUsageMinutes = 60 * 24 * 31
)

func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func (c *console) usage(w http.ResponseWriter, r *http.Request) {
	x, ok := c.ownStack(w, r)
	if !ok {
		return
	}
	buckets, err := queryInt(r, "buckets", 24, 1, maxUsageBuckets)
	if err == nil {
		var minutes int
		if minutes, err = queryInt(r, "minutes", 24*60, 1, maxUsageMinutes); err == nil {
			span := time.Duration(minutes) * time.Minute
			if span%(time.Duration(buckets)*usageResolution) != 0 {
				err = fmt.Errorf("minutes=%d over buckets=%d: each bucket must be a whole number of hours (billing keeps usage by the hour)", minutes, buckets)
			} else {
				c.writeUsage(w, r, x, buckets, span)
				return
			}
		}
	}
	writeAPIError(w, http.StatusBadRequest, err)
}

// usageResolution is the time resolution of billing's usage queries (its
// bucket_size default): the console's buckets are whole multiples of it,
// aligned to it, the last one holding the current hour.
const usageResolution = time.Hour

func (c *console) writeUsage(w http.ResponseWriter, r *http.Request, x *chainindexerv1.Stack, buckets int, span time.Duration) {
	if c.s.t.billing.v == "" {
		apiFail(w, c.s.t.need(c.s.t.billing, "billing address", "billing", "billing"))
		return
	}
	cc, err := c.s.c.dial(c.s.t.billing, "billing", certs.RoleBilling)
	if err != nil {
		apiFail(w, err)
		return
	}
	bc := billingv1.NewBillingServiceClient(cc)
	ctx, cancel := c.s.c.ctx(r.Context())
	defer cancel()
	to := time.Now().UTC().Truncate(usageResolution).Add(usageResolution)
	from := to.Add(-span)
	step := span / time.Duration(buckets)
	out := struct {
		From        string         `json:"from"`
		To          string         `json:"to"`
		Buckets     []usagePoint   `json:"buckets"`
		Totals      usagePoint     `json:"totals"`
		Cost        string         `json:"cost"`
		Settlements []settlementUI `json:"settlements"`
		// MoreSettlements: the window holds more than the newest
		// maxConsoleSettlements listed.
		MoreSettlements bool `json:"more_settlements"`
	}{From: from.Format(time.RFC3339), To: to.Format(time.RFC3339), Buckets: []usagePoint{}, Settlements: []settlementUI{}}
	bill := func(a, b time.Time) (*billingv1.GetUsageResponse, error) {
		resp, err := bc.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: x.GetId(), StartTime: timestamppb.New(a), EndTime: timestamppb.New(b)})
		return resp, remoteErr(c.s.t.billing, "billing", err)
	}
	for i := range buckets {
		a, b := from.Add(time.Duration(i)*step), from.Add(time.Duration(i+1)*step)
		resp, err := bill(a, b)
		if err != nil {
			apiFail(w, err)
			return
		}
		p := usagePoint{Start: a.Format(time.RFC3339), End: b.Format(time.RFC3339)}
		for _, t := range resp.GetTotals() {
			p.add(t)
		}
		out.Buckets = append(out.Buckets, p)
	}
	c.addResponses(r.Context(), ids.StackID(x.GetId()), out.Buckets, &out.Totals)
	resp, err := bill(from, to)
	if err != nil {
		apiFail(w, err)
		return
	}
	cost := new(big.Int)
	for _, t := range resp.GetTotals() {
		out.Totals.add(t)
		if t.GetCost() != nil {
			cost.Add(cost, u128(t.GetCost()))
		}
	}
	out.Cost = cost.String()
	settled, more, err := listSettlements(ctx, bc, &billingv1.ListSettlementsRequest{StackId: x.GetId(), StartTime: timestamppb.New(from)}, maxConsoleSettlements)
	if err != nil {
		apiFail(w, remoteErr(c.s.t.billing, "billing", err))
		return
	}
	out.MoreSettlements = more
	for _, st := range settled {
		u := settlementUI{Time: st.GetTime().AsTime().UTC().Format(time.RFC3339), Seed: fmt.Sprint(st.GetSeed()), Charged: st.GetCharged(),
			Status: strings.ToLower(strings.TrimPrefix(st.GetStatus().String(), "SETTLEMENT_STATUS_")), Error: st.GetError()}
		for _, t := range st.GetUsage() {
			u.Units.add(t)
		}
		out.Settlements = append(out.Settlements, u)
	}
	writeAPIJSON(w, out)
}

// addResponses adds the gateway's hourly error counts of stack id to the
// buckets (and totals) they fall in. A gateway that does not answer
// leaves them 0: errors are not billed, and the rest of the page stands.
func (c *console) addResponses(ctx context.Context, id ids.StackID, buckets []usagePoint, totals *usagePoint) {
	if c.s.t.gateway.v == "" {
		return
	}
	st, found, err := c.s.gatewayStatus(ctx, id)
	if err != nil || !found {
		return
	}
	for _, rb := range st.Responses {
		at, err := time.Parse(time.RFC3339, rb.Start)
		if err != nil {
			continue
		}
		for i := range buckets {
			a, _ := time.Parse(time.RFC3339, buckets[i].Start)
			b, _ := time.Parse(time.RFC3339, buckets[i].End)
			if !at.Before(a) && at.Before(b) {
				buckets[i].Errors += rb.C5xx
				buckets[i].ClientErrors += rb.C4xx
				totals.Errors += rb.C5xx
				totals.ClientErrors += rb.C4xx
			}
		}
	}
}

// maxConsoleSettlements bounds the settlements a usage view lists.
const maxConsoleSettlements = 500

// listSettlements pages through billing's settlements for req, newest
// first, up to limit of them (0: all); more says some were left out.
func listSettlements(ctx context.Context, bc billingv1.BillingServiceClient, req *billingv1.ListSettlementsRequest, limit int) (out []*billingv1.Settlement, more bool, err error) {
	for {
		resp, err := bc.ListSettlements(ctx, req)
		if err != nil {
			return out, false, err
		}
		out = append(out, resp.GetSettlements()...)
		if limit > 0 && len(out) >= limit {
			return out[:limit], len(out) > limit || resp.GetNextPageToken() != "", nil
		}
		if resp.GetNextPageToken() == "" {
			return out, false, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// settlementUI is one settlement and the metered units it charged for.
type settlementUI struct {
	Time    string     `json:"time"`
	Seed    string     `json:"seed"`
	Charged uint64     `json:"charged"`
	Status  string     `json:"status"`
	Error   string     `json:"error,omitempty"`
	Units   usagePoint `json:"units"`
}

func (c *console) logs(w http.ResponseWriter, r *http.Request) {
	x, ok := c.ownStack(w, r)
	if !ok {
		return
	}
	tail, err := queryInt(r, "tail", 50, 0, 1000)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, err)
		return
	}
	if err := c.s.t.need(c.s.t.gateway, "gateway URL", "gateway", "gateway"); err != nil {
		apiFail(w, err)
		return
	}
	ctx, cancel := c.s.c.ctx(r.Context())
	defer cancel()
	var buf strings.Builder
	uri := fmt.Sprintf("/_mu/stacks/%s/logs?tail=%d", ids.StackID(x.GetId()), tail)
	if err := streamLogs(ctx, &buf, c.s, c.key, uri, false); err != nil {
		apiFail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, buf.String())
}

// escrowOf is the key's escrow with provider p, warned at c.warn.
func (c *console) escrowOf(ctx context.Context, p *chainindexerv1.Provider) (escrowJSON, error) {
	v, err := c.s.escrowStatus(ctx, c.key.Pubkey(), p)
	if err != nil {
		return v, err
	}
	v.warn(c.warn)
	return v, nil
}

func (c *console) escrows(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.s.c.ctx(r.Context())
	defer cancel()
	er, err := c.s.ix.ListEscrows(ctx, &chainindexerv1.ListEscrowsRequest{Developer: c.key.Pubkey().Bytes()})
	if err != nil {
		apiFail(w, c.s.ixErr(err))
		return
	}
	byID, err := c.s.providersByID(r.Context())
	if err != nil {
		apiFail(w, err)
		return
	}
	out := []escrowJSON{}
	for _, e := range er.GetEscrows() {
		p := byID[string(e.GetProviderId())]
		if p == nil {
			continue
		}
		v, err := c.escrowOf(r.Context(), p)
		if err != nil {
			apiFail(w, err)
			return
		}
		out = append(out, v)
	}
	writeAPIJSON(w, out)
}

// maxConsoleBody bounds a write's JSON body.
const maxConsoleBody = 4 << 10

// readBody decodes a small JSON body into v.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxConsoleBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = fmt.Errorf("more than the %d bytes a console request may have", maxConsoleBody)
		}
		writeAPIError(w, http.StatusBadRequest, fmt.Errorf("body: %v", err))
		return false
	}
	return true
}

func (c *console) createEscrow(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Provider string `json:"provider"`
	}
	if !readBody(w, r, &body) {
		return
	}
	p, err := c.s.findProvider(r.Context(), body.Provider)
	if err != nil {
		apiFail(w, err)
		return
	}
	if err := c.s.createEscrow(r.Context(), c.key, p); err != nil {
		apiFail(w, err)
		return
	}
	c.answerEscrow(w, r, p)
}

// answerEscrow writes the escrow with p once the indexer has the write.
func (c *console) answerEscrow(w http.ResponseWriter, r *http.Request, p *chainindexerv1.Provider) {
	if err := c.s.sync(r.Context(), true); err != nil {
		apiFail(w, err)
		return
	}
	v, err := c.escrowOf(r.Context(), p)
	if err != nil {
		apiFail(w, err)
		return
	}
	writeAPIJSON(w, v)
}

func (c *console) moveEscrow(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if action != "recharge" && action != "withdraw" {
		writeAPIError(w, http.StatusNotFound, fmt.Errorf("no escrow action %q (recharge, withdraw)", action))
		return
	}
	var body struct {
		Amount uint64 `json:"amount"`
	}
	if !readBody(w, r, &body) {
		return
	}
	if body.Amount == 0 {
		writeAPIError(w, http.StatusBadRequest, errors.New("amount: want a positive whole number of token base units"))
		return
	}
	p, err := c.s.findProvider(r.Context(), r.PathValue("provider"))
	if err != nil {
		apiFail(w, err)
		return
	}
	if _, err := c.s.moveEscrow(r.Context(), c.key, p, body.Amount, action == "withdraw"); err != nil {
		apiFail(w, err)
		return
	}
	c.answerEscrow(w, r, p)
}

func (c *console) provider(w http.ResponseWriter, r *http.Request) {
	ps, err := c.s.providers(r.Context())
	if err != nil {
		apiFail(w, err)
		return
	}
	var p *chainindexerv1.Provider
	for _, x := range ps {
		if string(x.GetOwner()) == string(c.key.Pubkey().Bytes()) {
			p = x
		}
	}
	if p == nil {
		writeAPIJSON(w, map[string]any{"provider": nil})
		return
	}
	rs, err := c.s.regions(r.Context(), p.GetId())
	if err != nil {
		apiFail(w, err)
		return
	}
	ctx, cancel := c.s.c.ctx(r.Context())
	defer cancel()
	type regionUse struct {
		Region   regionJSON `json:"region"`
		Stacks   int        `json:"stacks"`
		Earnings uint64     `json:"earnings"` // settled charges less the marketplace's commission, base units
		Requests uint64     `json:"requests"`
		Error    string     `json:"billing_error,omitempty"`
	}
	state, err := c.s.l.State(ctx)
	if err != nil {
		apiFail(w, c.s.ledErr(err))
		return
	}
	views := regionViews(rs, map[string]*chainindexerv1.Provider{string(p.GetId()): p})
	out := []regionUse{}
	var bc billingv1.BillingServiceClient
	if c.s.t.billing.v != "" {
		if cc, err := c.s.c.dial(c.s.t.billing, "billing", certs.RoleBilling); err == nil {
			bc = billingv1.NewBillingServiceClient(cc)
		}
	}
	for i, rv := range views {
		u := regionUse{Region: rv}
		st, err := c.s.ix.ListStacks(ctx, &chainindexerv1.ListStacksRequest{RegionId: rs[i].GetId()})
		if err != nil {
			apiFail(w, c.s.ixErr(err))
			return
		}
		u.Stacks = len(st.GetStacks())
		for _, x := range st.GetStacks() {
			if bc == nil {
				break
			}
			if resp, err := bc.GetUsage(ctx, &billingv1.GetUsageRequest{StackId: x.GetId()}); err != nil {
				u.Error = remoteErr(c.s.t.billing, "billing", err).Error()
			} else {
				var pt usagePoint
				for _, t := range resp.GetTotals() {
					pt.add(t)
				}
				u.Requests += pt.Requests
			}
			if settled, _, err := listSettlements(ctx, bc, &billingv1.ListSettlementsRequest{StackId: x.GetId(), PageSize: 1000}, 0); err != nil {
				u.Error = remoteErr(c.s.t.billing, "billing", err).Error()
			} else {
				for _, s := range settled {
					// What reached the provider: the charge less the
					// marketplace's commission, as the ledger splits it.
					u.Earnings += s.GetCharged() - ledger.Commission(s.GetCharged(), state.CommissionMicros)
				}
			}
		}
		out = append(out, u)
	}
	writeAPIJSON(w, map[string]any{"provider": providerView(p), "regions": out})
}

// events streams the key's stack and escrow changes as server-sent
// events, from the indexer's Watch streams, until the page goes away.
func (c *console) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeAPIError(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	type event struct {
		name string
		data any
	}
	ch := make(chan event, 64)
	// A watch that ends (the indexer restarted, say) ends the stream: the
	// page's EventSource reconnects and a new one starts both watches.
	ended := make(chan struct{}, 2)
	send := func(e event) {
		select {
		case ch <- e:
		case <-ctx.Done():
		}
	}
	owner := c.key.Pubkey().Bytes()
	go func() {
		defer func() { ended <- struct{}{} }()
		names := map[string]string{}
		if rs, err := c.s.regions(ctx, nil); err == nil {
			for _, x := range rs {
				names[string(x.GetId())] = x.GetName()
			}
		}
		ws, err := c.s.ix.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{Owner: owner})
		if err != nil {
			return
		}
		for {
			m, err := ws.Recv()
			if err != nil {
				return
			}
			if m.GetStack() != nil {
				send(event{"stack", c.stackEntry(m.GetStack(), names)})
			}
		}
	}()
	go func() {
		defer func() { ended <- struct{}{} }()
		we, err := c.s.ix.WatchEscrows(ctx, &chainindexerv1.WatchEscrowsRequest{Developer: owner})
		if err != nil {
			return
		}
		byID := map[string]*chainindexerv1.Provider{}
		for {
			m, err := we.Recv()
			if err != nil {
				return
			}
			e := m.GetEscrow()
			if e == nil {
				continue
			}
			p := byID[string(e.GetProviderId())]
			if p == nil {
				if all, err := c.s.providersByID(ctx); err == nil {
					byID = all
					p = byID[string(e.GetProviderId())]
				}
			}
			if p == nil {
				continue
			}
			if v, err := c.escrowOf(ctx, p); err == nil {
				send(event{"escrow", v})
			}
		}
	}()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ended:
			return
		case <-ping.C:
			io.WriteString(w, ": ping\n\n")
		case e := <-ch:
			b, err := json.Marshal(e.data)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.name, b)
		}
		fl.Flush()
	}
}
