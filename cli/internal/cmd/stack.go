package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/reqsign"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/gateway"
)

// stackJSON is a stack in listings.
type stackJSON struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Region   string `json:"region"`
	Seed     uint64 `json:"seed"`
	Revision uint64 `json:"revision"`
	State    string `json:"state"`
	Enabled  bool   `json:"enabled"`
}

func stackView(x *chainindexerv1.Stack, regions map[string]string) stackJSON {
	v := stackJSON{ID: ledger.Pubkey(x.GetId()).String(), Seed: x.GetSeed(), Revision: x.GetRevision(), Enabled: x.GetEnabled(),
		State: strings.ToLower(strings.TrimPrefix(x.GetState().String(), "STACK_STATE_"))}
	if m, err := manifest.Parse(x.GetManifest()); err == nil {
		v.Name = m.Name
	}
	v.Region = regions[string(x.GetRegionId())]
	if v.Region == "" {
		v.Region = ledger.Pubkey(x.GetRegionId()).String()
	}
	return v
}

// myStacks lists the stacks of the signing key (deleted ones too with
// deleted).
func (s *session) myStacks(ctx context.Context, owner ledger.Pubkey, deleted bool) ([]*chainindexerv1.Stack, map[string]string, error) {
	cctx, cancel := s.c.ctx(ctx)
	defer cancel()
	resp, err := s.ix.ListStacks(cctx, &chainindexerv1.ListStacksRequest{Owner: owner.Bytes(), IncludeDeleted: deleted})
	if err != nil {
		return nil, nil, s.ixErr(err)
	}
	names, err := s.regionNames(ctx)
	if err != nil {
		return nil, nil, err
	}
	return resp.GetStacks(), names, nil
}

// regionNames maps every region's id to its name.
func (s *session) regionNames(ctx context.Context) (map[string]string, error) {
	rs, err := s.regions(ctx, nil)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, r := range rs {
		names[string(r.GetId())] = r.GetName()
	}
	return names, nil
}

// stackURLs lists stack x's endpoints on the gateway at base as
// "METHOD URL" (none for a manifest that does not parse).
func stackURLs(base string, x *chainindexerv1.Stack) []string {
	urls := []string{}
	if m, err := manifest.Parse(x.GetManifest()); err == nil {
		for _, e := range region.StackEndpoints(base, ids.StackID(x.GetId()), m) {
			urls = append(urls, e.Method+" "+e.URL)
		}
	}
	return urls
}

// findStack resolves STACK (an id, or the name of one of your stacks).
func (s *session) findStack(ctx context.Context, owner ledger.Pubkey, arg string) (*chainindexerv1.Stack, error) {
	if id, err := ids.ParseStackID(arg); err == nil {
		cctx, cancel := s.c.ctx(ctx)
		defer cancel()
		resp, err := s.ix.ListStacks(cctx, &chainindexerv1.ListStacksRequest{StackIds: [][]byte{id.Bytes()}, IncludeDeleted: true})
		if err != nil {
			return nil, s.ixErr(err)
		}
		if len(resp.GetStacks()) == 1 {
			return resp.GetStacks()[0], nil
		}
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("no stack %s on the ledger", id)}
	}
	stacks, _, err := s.myStacks(ctx, owner, false)
	if err != nil {
		return nil, err
	}
	var found []*chainindexerv1.Stack
	for _, x := range stacks {
		if m, err := manifest.Parse(x.GetManifest()); err == nil && m.Name == arg {
			found = append(found, x)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("no stack of yours (%s) is named %q, and it is not a stack id; mu stack list shows yours", owner, arg)}
	}
	return nil, &exitError{code: ExitUsage, err: fmt.Errorf("%d of your stacks are named %q: give the id (mu stack list)", len(found), arg)}
}

func newStackCommand() *cobra.Command {
	c := &cobra.Command{Use: "stack", Short: "Your stacks on the ledger: list, status, delete"}
	var lf *regionFlags
	var deleted bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the stacks your key owns",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, key, err := openKeyed(cmd, lf, false)
			if err != nil {
				return err
			}
			defer s.Close()
			stacks, names, err := s.myStacks(cmd.Context(), key.Pubkey(), deleted)
			if err != nil {
				return err
			}
			views := []stackJSON{}
			for _, x := range stacks {
				views = append(views, stackView(x, names))
			}
			if s.t.output == "json" {
				return printJSON(cmd.OutOrStdout(), views)
			}
			if len(views) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no stacks of %s; deploy one with mu deploy\n", key.Pubkey())
				return nil
			}
			rows := [][]string{{"STACK", "NAME", "REGION", "REVISION", "STATE", "ENABLED"}}
			for _, v := range views {
				rows = append(rows, []string{v.ID, v.Name, v.Region, fmt.Sprint(v.Revision), v.State, fmt.Sprint(v.Enabled)})
			}
			printTable(cmd.OutOrStdout(), rows)
			return nil
		},
	}
	list.Flags().BoolVar(&deleted, "deleted", false, "include deleted stacks")
	lf = addRegionFlags(list, true)

	var sf *regionFlags
	status := &cobra.Command{
		Use:   "status STACK",
		Short: "Show a stack: the ledger's revision, what the region serves, its URLs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, key, err := openKeyed(cmd, sf, false)
			if err != nil {
				return err
			}
			defer s.Close()
			x, err := s.findStack(cmd.Context(), key.Pubkey(), args[0])
			if err != nil {
				return err
			}
			names, err := s.regionNames(cmd.Context())
			if err != nil {
				return err
			}
			v := stackView(x, names)
			out := struct {
				stackJSON
				Served *gateway.StackStatus `json:"served,omitempty"`
				URLs   []string             `json:"urls,omitempty"`
				Error  string               `json:"gateway_error,omitempty"`
			}{stackJSON: v}
			id := ids.StackID(x.GetId())
			if s.t.gateway.v != "" && v.State != "deleted" {
				st, found, err := s.gatewayStatus(cmd.Context(), id)
				switch {
				case err != nil:
					out.Error = err.Error()
				case found:
					out.Served = &st
				}
				out.URLs = stackURLs(s.t.gateway.v, x)
			}
			if s.t.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "stack %s %q\n  region     %s\n  revision   %d (ledger)\n  state      %s\n  enabled    %v\n", v.ID, v.Name, v.Region, v.Revision, v.State, v.Enabled)
			switch {
			case out.Error != "":
				fmt.Fprintf(w, "  served     unknown: %s\n", out.Error)
			case out.Served != nil:
				st := out.Served
				fmt.Fprintf(w, "  gateway    revision %d, enabled %v", st.Revision, st.Enabled)
				if st.DisabledReason != "" {
					fmt.Fprintf(w, " (%s)", st.DisabledReason)
				}
				fmt.Fprintln(w)
				if o := st.Owner; o.Error != "" {
					fmt.Fprintf(w, "  owner      %s: %s\n", o.Node, o.Error)
				} else {
					fmt.Fprintf(w, "  owner      %s, revision %d installed %v\n", o.Node, o.Revision, o.Deployed)
				}
			case v.State != "deleted" && s.t.gateway.v != "":
				fmt.Fprintln(w, "  served     not by the gateway yet")
			}
			for _, u := range out.URLs {
				fmt.Fprintf(w, "  %s\n", u)
			}
			return nil
		},
	}
	sf = addRegionFlags(status, true)

	var df *regionFlags
	var yes bool
	var wait time.Duration
	del := &cobra.Command{
		Use:   "delete STACK",
		Short: "Delete a stack: its URLs stop answering and the region removes its tables and boxes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, key, err := openKeyed(cmd, df, true)
			if err != nil {
				return err
			}
			defer s.Close()
			x, err := s.findStack(cmd.Context(), key.Pubkey(), args[0])
			if err != nil {
				return err
			}
			id := ids.StackID(x.GetId())
			if x.GetState() == chainindexerv1.StackState_STACK_STATE_DELETED {
				return &exitError{code: ExitUsage, err: fmt.Errorf("stack %s is already deleted", id)}
			}
			if string(x.GetOwner()) != string(key.Pubkey().Bytes()) {
				return &exitError{code: ExitUsage, err: fmt.Errorf("stack %s is owned by %s, not by your key %s (from %s)", id, ledger.Pubkey(x.GetOwner()), key.Pubkey(), s.t.kp.from)}
			}
			if !yes {
				fmt.Fprintf(cmd.OutOrStdout(), "deleting stack %s removes its tables and boxes for good\n", id)
				if err := confirm(cmd.InOrStdin(), cmd.OutOrStdout(), "delete it?"); err != nil {
					return err
				}
			}
			ctx, cancel := s.c.ctx(cmd.Context())
			defer cancel()
			if _, err := s.l.DeleteStack(ctx, key, ledger.Pubkey(id)); err != nil {
				if errors.Is(err, ledger.ErrStackDeleted) {
					return &exitError{code: ExitUsage, err: fmt.Errorf("stack %s is already deleted", id)}
				}
				return s.ledErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stack %s deleted on the ledger\n", id)
			if wait > 0 && s.t.gateway.v != "" {
				deadline := time.Now().Add(wait)
				for {
					_, found, err := s.gatewayStatus(cmd.Context(), id)
					if err != nil {
						return err
					}
					if !found {
						fmt.Fprintln(cmd.OutOrStdout(), "the gateway no longer serves it; the region removes its tables and boxes")
						break
					}
					if time.Now().After(deadline) {
						return &exitError{code: ExitUsage, err: fmt.Errorf("stack %s is deleted on the ledger, but the gateway still served it after %s", id, wait)}
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			return nil
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	del.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the gateway to stop serving it (0: do not wait)")
	df = addRegionFlags(del, false)
	c.AddCommand(list, status, del)
	return c
}

func newLogsCommand() *cobra.Command {
	var follow bool
	var tail uint32
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "logs STACK [FUNCTION]",
		Short: "Print a stack's function logs from its owner runtime; -f follows them",
		Long: `Logs asks the region's gateway for the recent log lines of STACK (an id, or
the name of one of your stacks), optionally of one FUNCTION (a manifest
function name, or function.export), and with -f keeps printing new ones
until interrupted. The gateway streams them from the runtime that owns the
stack. The request is signed with your key: only the stack's owner reads
its logs.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, f, false)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.t.need(s.t.gateway, "gateway URL", "gateway", "gateway"); err != nil {
				return err
			}
			key, err := s.t.keypair()
			if err != nil {
				return err
			}
			x, err := s.findStack(cmd.Context(), key.Pubkey(), args[0])
			if err != nil {
				return err
			}
			q := url.Values{}
			if len(args) == 2 {
				q.Set("function", args[1])
			}
			q.Set("tail", fmt.Sprint(tail))
			if follow {
				q.Set("follow", "1")
			}
			uri := gateway.StacksPath + ids.StackID(x.GetId()).String() + "/logs?" + q.Encode()
			ctx := cmd.Context()
			if !follow { // the history only: one answer, bounded as every other
				var cancel context.CancelFunc
				ctx, cancel = s.c.ctx(ctx)
				defer cancel()
			}
			return streamLogs(ctx, cmd.OutOrStdout(), s, key, uri, s.t.output == "json")
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().Uint32Var(&tail, "tail", 100, "how many recent lines to print first")
	f = addRegionFlags(cmd, true)
	return cmd
}

// streamLogs prints the gateway's log stream at uri until it ends or ctx
// is cancelled (which ends a followed stream without an error).
func streamLogs(ctx context.Context, w io.Writer, s *session, key *ledger.Keypair, uri string, raw bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.t.gateway.v, "/")+uri, nil)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	reqsign.SignRequest(req, key.PrivateKey(), time.Now())
	// The answer's headers come within the timeout even for a followed
	// stream; its lines may take as long as they take.
	hc := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: s.t.timeout, Proxy: http.ProxyFromEnvironment}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() == context.Canceled {
			return nil
		}
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s is unreachable: %v; check the address (mu config show) or pass --gateway URL", s.t.gateway.where("the gateway"), err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s: %s: %s", s.t.gateway.where("the gateway"), resp.Status, msg)}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			gateway.LogLine
			Error *struct {
				Kind    string `json:"kind"`
				Message string `json:"message"`
			} `json:"error"`
		}
		jerr := json.Unmarshal(sc.Bytes(), &l)
		if jerr == nil && l.Error != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("the log stream from %s ended: %s", s.t.gateway.where("the gateway"), l.Error.Message)}
		}
		if raw || jerr != nil {
			fmt.Fprintf(w, "%s\n", sc.Bytes())
			continue
		}
		if l.Dropped > 0 {
			fmt.Fprintf(w, "(%d log lines dropped)\n", l.Dropped)
		}
		when := l.Time
		if t, err := time.Parse(time.RFC3339Nano, l.Time); err == nil {
			when = t.Local().Format("15:04:05.000")
		}
		fn := l.Function
		if fn == "" {
			fn = "runtime"
		}
		writeLogLine(w, when, l.Level, fn, l.TraceID, l.Body)
	}
	if err := sc.Err(); err != nil && ctx.Err() != context.Canceled {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the log stream from %s broke: %v", s.t.gateway.where("the gateway"), err)}
	}
	return nil
}

// writeLogLine writes one function log line as mu logs and mu run print
// it: time, level, function, the request's trace id (its first 8 hex
// digits, when the call was traced) and the body.
func writeLogLine(w io.Writer, when, level, fn, traceID, body string) {
	if traceID != "" {
		fmt.Fprintf(w, "%s %-5s %s [trace %.8s]: %s\n", when, strings.ToUpper(level), fn, traceID, body)
		return
	}
	fmt.Fprintf(w, "%s %-5s %s: %s\n", when, strings.ToUpper(level), fn, body)
}
