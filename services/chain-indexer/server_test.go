package chainindexer

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/service"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// fixture is a market with two providers (A authorized with regions r1
// and r2, B not), two developers with escrows at A, stacks s1 (dev1, r1),
// s2 (dev1, r2) and s3 (dev2, r1, deleted), and a node following it.
type fixture struct {
	m            *market
	led          ledger.Ledger
	ownerA       *ledger.Keypair
	a, b         ledger.Provider
	r1, r2       ledger.Region
	dev1, dev2   *ledger.Keypair
	s1, s2, s3   ledger.Stack
	srv          *Server
	c            chainindexerv1.ChainIndexerServiceClient
	beforeServer uint64 // ledger slot when the node started
}

func newFixture(t *testing.T, cfg Config) *fixture {
	led := openLocal(t)
	f := &fixture{m: newMarket(t, led), led: led}
	f.ownerA, f.a = f.m.provider("alpha", true)
	_, f.b = f.m.provider("beta", false)
	f.r1 = f.m.region(f.ownerA, 1, "eu1", 100)
	f.r2 = f.m.region(f.ownerA, 2, "us1", 100)
	f.dev1 = f.m.developer(f.a.ID, 1000)
	f.dev2 = f.m.developer(f.a.ID, 500)
	f.s1 = f.m.stack(f.dev1, f.r1.ID, "name: one")
	f.s2 = f.m.stack(f.dev1, f.r2.ID, "name: two")
	f.s3 = f.m.stack(f.dev2, f.r1.ID, "name: three")
	f.s3 = must[ledger.Stack](t)(led.DeleteStack(ctxT(t), f.dev2, f.s3.ID))
	f.srv, f.c = start(t, cfg, led)
	synced(t, f.c, led)
	return f
}

func ids[T any](items []T, id func(T) []byte) []string {
	var out []string
	for _, it := range items {
		out = append(out, ledger.Pubkey(id(it)).String())
	}
	return out
}

func names(keys ...ledger.Pubkey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.String())
	}
	return out
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	m := map[string]int{}
	for _, g := range got {
		m[g]++
	}
	for _, w := range want {
		if m[w]--; m[w] < 0 {
			return false
		}
	}
	return true
}

func TestServer_ListsEveryKindWithFilters(t *testing.T) {
	f := newFixture(t, testConfig())
	ctx := ctxT(t)
	st := must[*chainindexerv1.GetStatusResponse](t)(f.c.GetStatus(ctx, &chainindexerv1.GetStatusRequest{}))

	t.Run("providers", func(t *testing.T) {
		for _, c := range []struct {
			req  *chainindexerv1.ListProvidersRequest
			want []string
		}{
			{&chainindexerv1.ListProvidersRequest{}, names(f.a.ID, f.b.ID)},
			{&chainindexerv1.ListProvidersRequest{AuthorizedOnly: true}, names(f.a.ID)},
		} {
			resp := must[*chainindexerv1.ListProvidersResponse](t)(f.c.ListProviders(ctx, c.req))
			if got := ids(resp.Providers, (*chainindexerv1.Provider).GetId); !sameSet(got, c.want) {
				t.Errorf("%v: got %v, want %v", c.req, got, c.want)
			}
			if resp.Sequence != st.Sequence {
				t.Errorf("sequence %d, want %d", resp.Sequence, st.Sequence)
			}
		}
	})

	t.Run("regions", func(t *testing.T) {
		for _, c := range []struct {
			req  *chainindexerv1.ListRegionsRequest
			want []string
		}{
			{&chainindexerv1.ListRegionsRequest{}, names(f.r1.ID, f.r2.ID)},
			{&chainindexerv1.ListRegionsRequest{ProviderId: f.a.ID.Bytes()}, names(f.r1.ID, f.r2.ID)},
			{&chainindexerv1.ListRegionsRequest{ProviderId: f.b.ID.Bytes()}, nil},
		} {
			resp := must[*chainindexerv1.ListRegionsResponse](t)(f.c.ListRegions(ctx, c.req))
			if got := ids(resp.Regions, (*chainindexerv1.Region).GetId); !sameSet(got, c.want) {
				t.Errorf("%v: got %v, want %v", c.req, got, c.want)
			}
		}
		resp := must[*chainindexerv1.ListRegionsResponse](t)(f.c.ListRegions(ctx, &chainindexerv1.ListRegionsRequest{}))
		want := &chainindexerv1.Region{
			Id: f.r1.ID.Bytes(), ProviderId: f.a.ID.Bytes(), RegionNum: 1, Name: "eu1", BaseUrl: "https://eu1.example.com",
			Rates: &typesv1.Rates{
				FunctionPerTeraMbInstructions: 1, DbPerMillionReads: 2, DbPerMillionWrites: 3, DbPerGibMonthStored: 4,
				GatewayPerMillionRequests: 5, GatewayPerGibTraffic: 6, StoragePerGibMonthStored: 7, StoragePerGibTraffic: 8,
			},
			MinEscrowBalance: 100, MaxGigaInstructionsPerCall: 9, MinMemoryLimitBytes: 1 << 20, MaxMemoryLimitBytes: 1 << 30,
		}
		var got *chainindexerv1.Region
		for _, r := range resp.Regions {
			if bytes.Equal(r.Id, want.Id) {
				got = r
			}
		}
		if !proto.Equal(got, want) {
			t.Errorf("region r1:\n got %v\nwant %v", got, want)
		}
	})

	t.Run("stacks", func(t *testing.T) {
		for _, c := range []struct {
			name string
			req  *chainindexerv1.ListStacksRequest
			want []string
		}{
			{"active by default", &chainindexerv1.ListStacksRequest{}, names(f.s1.ID, f.s2.ID)},
			{"include deleted", &chainindexerv1.ListStacksRequest{IncludeDeleted: true}, names(f.s1.ID, f.s2.ID, f.s3.ID)},
			{"region", &chainindexerv1.ListStacksRequest{RegionId: f.r1.ID.Bytes()}, names(f.s1.ID)},
			{"region with deleted", &chainindexerv1.ListStacksRequest{RegionId: f.r1.ID.Bytes(), IncludeDeleted: true}, names(f.s1.ID, f.s3.ID)},
			{"owner", &chainindexerv1.ListStacksRequest{Owner: f.dev1.Pubkey().Bytes()}, names(f.s1.ID, f.s2.ID)},
			{"ids", &chainindexerv1.ListStacksRequest{StackIds: [][]byte{f.s2.ID.Bytes(), f.s3.ID.Bytes()}}, names(f.s2.ID)},
			{"all filters", &chainindexerv1.ListStacksRequest{RegionId: f.r2.ID.Bytes(), Owner: f.dev1.Pubkey().Bytes(), StackIds: [][]byte{f.s2.ID.Bytes()}}, names(f.s2.ID)},
			{"no match", &chainindexerv1.ListStacksRequest{RegionId: f.r2.ID.Bytes(), Owner: f.dev2.Pubkey().Bytes(), IncludeDeleted: true}, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp := must[*chainindexerv1.ListStacksResponse](t)(f.c.ListStacks(ctx, c.req))
				if got := ids(resp.Stacks, (*chainindexerv1.Stack).GetId); !sameSet(got, c.want) {
					t.Errorf("got %v, want %v", got, c.want)
				}
			})
		}
		resp := must[*chainindexerv1.ListStacksResponse](t)(f.c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{IncludeDeleted: true, Owner: f.dev2.Pubkey().Bytes()}))
		want := &chainindexerv1.Stack{
			Id: f.s3.ID.Bytes(), Owner: f.dev2.Pubkey().Bytes(), RegionId: f.r1.ID.Bytes(), Seed: f.s3.Seed, Revision: 1,
			Manifest: []byte("name: three"), State: chainindexerv1.StackState_STACK_STATE_DELETED, Enabled: false,
		}
		if len(resp.Stacks) != 1 || !proto.Equal(resp.Stacks[0], want) {
			t.Errorf("deleted stack:\n got %v\nwant %v", resp.Stacks, want)
		}
		active := must[*chainindexerv1.ListStacksResponse](t)(f.c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{StackIds: [][]byte{f.s1.ID.Bytes()}}))
		if len(active.Stacks) != 1 || !active.Stacks[0].Enabled || active.Stacks[0].State != chainindexerv1.StackState_STACK_STATE_ACTIVE {
			t.Errorf("active stack s1: %v", active.Stacks)
		}
	})

	t.Run("escrows", func(t *testing.T) {
		for _, c := range []struct {
			req  *chainindexerv1.ListEscrowsRequest
			want []string
		}{
			{&chainindexerv1.ListEscrowsRequest{}, names(f.dev1.Pubkey(), f.dev2.Pubkey())},
			{&chainindexerv1.ListEscrowsRequest{Developer: f.dev1.Pubkey().Bytes()}, names(f.dev1.Pubkey())},
			{&chainindexerv1.ListEscrowsRequest{ProviderId: f.a.ID.Bytes()}, names(f.dev1.Pubkey(), f.dev2.Pubkey())},
			{&chainindexerv1.ListEscrowsRequest{Developer: f.dev2.Pubkey().Bytes(), ProviderId: f.b.ID.Bytes()}, nil},
		} {
			resp := must[*chainindexerv1.ListEscrowsResponse](t)(f.c.ListEscrows(ctx, c.req))
			if got := ids(resp.Escrows, (*chainindexerv1.Escrow).GetDeveloper); !sameSet(got, c.want) {
				t.Errorf("%v: got %v, want %v", c.req, got, c.want)
			}
		}
		resp := must[*chainindexerv1.ListEscrowsResponse](t)(f.c.ListEscrows(ctx, &chainindexerv1.ListEscrowsRequest{Developer: f.dev2.Pubkey().Bytes()}))
		if len(resp.Escrows) != 1 || resp.Escrows[0].Balance != 500 {
			t.Errorf("escrow of dev2: %v, want balance 500", resp.Escrows)
		}
	})
}

// checkLive checks that a live event is an UPSERT after the bookmark.
func checkLive(t *testing.T, m *chainindexerv1.ChangeMeta, after uint64) {
	t.Helper()
	if m.GetType() != chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT || m.GetSequence() <= after || m.GetSlot() == 0 {
		t.Fatalf("live change %v, want an UPSERT after sequence %d with its slot", m, after)
	}
}

func TestServer_WatchDeliversLedgerWritesOfEveryKind(t *testing.T) {
	f := newFixture(t, testConfig())
	ctx := ctxT(t)

	t.Run("providers", func(t *testing.T) {
		w := must[grpc.ServerStreamingClient[chainindexerv1.WatchProvidersResponse]](t)(f.c.WatchProviders(ctx, &chainindexerv1.WatchProvidersRequest{AuthorizedOnly: true}))
		objs, bm := snapshot(t, w)
		if len(objs) != 1 || !bytes.Equal(objs[0].Provider.Id, f.a.ID.Bytes()) {
			t.Fatalf("snapshot %v, want provider A only", objs)
		}
		check(t, f.led.AuthorizeProvider(ctx, f.m.auth, f.b.ID))
		ev := nextChange(t, w)
		checkLive(t, ev.Change, bm)
		if !bytes.Equal(ev.Provider.Id, f.b.ID.Bytes()) || !ev.Provider.Authorized {
			t.Errorf("event %v, want provider B authorized", ev.Provider)
		}
	})

	t.Run("regions", func(t *testing.T) {
		w := must[grpc.ServerStreamingClient[chainindexerv1.WatchRegionsResponse]](t)(f.c.WatchRegions(ctx, &chainindexerv1.WatchRegionsRequest{ProviderId: f.a.ID.Bytes()}))
		objs, bm := snapshot(t, w)
		if len(objs) != 2 {
			t.Fatalf("snapshot of %d regions, want 2", len(objs))
		}
		cfg := regionConfig("eu1-renamed", 100)
		must[ledger.Region](t)(f.led.UpdateRegion(ctx, f.ownerA, f.r1.ID, cfg))
		ev := nextChange(t, w)
		checkLive(t, ev.Change, bm)
		if ev.Region.Name != "eu1-renamed" {
			t.Errorf("event %v, want the new name", ev.Region)
		}
	})

	t.Run("stacks", func(t *testing.T) {
		w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{RegionId: f.r1.ID.Bytes()}))
		objs, bm := snapshot(t, w)
		if len(objs) != 1 || !bytes.Equal(objs[0].Stack.Id, f.s1.ID.Bytes()) {
			t.Fatalf("snapshot %v, want the active stack s1 only (s3 is deleted, s2 in r2)", objs)
		}
		f.m.stack(f.dev1, f.r2.ID, "name: elsewhere") // filtered out
		s4 := f.m.stack(f.dev1, f.r1.ID, "name: four")
		ev := nextChange(t, w)
		checkLive(t, ev.Change, bm)
		if !bytes.Equal(ev.Stack.Id, s4.ID.Bytes()) || !ev.Stack.Enabled || string(ev.Stack.Manifest) != "name: four" {
			t.Fatalf("event %v, want the new stack s4 (and not the one in r2)", ev.Stack)
		}
		must[ledger.Stack](t)(f.led.DeleteStack(ctx, f.dev1, s4.ID))
		del := nextChange(t, w)
		if del.Change.Type != chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT || del.Stack.State != chainindexerv1.StackState_STACK_STATE_DELETED ||
			del.Stack.Enabled || del.Change.Sequence <= ev.Change.Sequence {
			t.Errorf("delete of s4: %v %v, want an UPSERT in STACK_STATE_DELETED, disabled, later", del.Change, del.Stack)
		}
	})

	t.Run("escrows", func(t *testing.T) {
		w := must[grpc.ServerStreamingClient[chainindexerv1.WatchEscrowsResponse]](t)(f.c.WatchEscrows(ctx, &chainindexerv1.WatchEscrowsRequest{Developer: f.dev1.Pubkey().Bytes()}))
		objs, bm := snapshot(t, w)
		if len(objs) != 1 {
			t.Fatalf("snapshot of %d escrows, want 1", len(objs))
		}
		must[ledger.Escrow](t)(f.led.RechargeEscrow(ctx, f.dev2, f.a.ID, 1)) // filtered out
		must[ledger.Escrow](t)(f.led.RechargeEscrow(ctx, f.dev1, f.a.ID, 7))
		ev := nextChange(t, w)
		checkLive(t, ev.Change, bm)
		if !bytes.Equal(ev.Escrow.Developer, f.dev1.Pubkey().Bytes()) || ev.Escrow.Balance != objs[0].Escrow.Balance+7 {
			t.Errorf("event %v, want dev1's balance up by 7", ev.Escrow)
		}
	})
}

func TestServer_EscrowUnderRegionMinimumDisablesStacksAsStackChanges(t *testing.T) {
	f := newFixture(t, testConfig())
	ctx := ctxT(t)
	w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{StackIds: [][]byte{f.s1.ID.Bytes()}}))
	snapshot(t, w)
	must[ledger.Region](t)(f.led.UpdateRegion(ctx, f.ownerA, f.r1.ID, regionConfig("eu1", 5000))) // dev1 holds 1000
	off := nextChange(t, w)
	if off.Stack.Enabled || off.Stack.State != chainindexerv1.StackState_STACK_STATE_ACTIVE {
		t.Fatalf("after the minimum rose: %v, want an active, disabled stack", off.Stack)
	}
	must[ledger.Escrow](t)(f.led.RechargeEscrow(ctx, f.dev1, f.a.ID, 4000))
	on := nextChange(t, w)
	if !on.Stack.Enabled {
		t.Fatalf("after the recharge: %v, want enabled", on.Stack)
	}
}

func TestServer_WatchResumesFromAnySequence(t *testing.T) {
	f := newFixture(t, testConfig())
	ctx := ctxT(t)
	list := must[*chainindexerv1.ListStacksResponse](t)(f.c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{}))
	for _, m := range []string{"rev: 2", "rev: 3", "rev: 4"} {
		must[ledger.Stack](t)(f.led.UpdateStack(ctx, f.dev1, f.s1.ID, []byte(m)))
	}
	synced(t, f.c, f.led)
	w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{FromSequence: list.Sequence + 1}))
	var seqs []uint64
	for rev := uint64(2); rev <= 4; rev++ {
		ev := recv(t, w)
		if ev.Change.Type != chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT || ev.Stack.Revision != rev {
			t.Fatalf("resumed event %v %v, want revision %d (no snapshot)", ev.Change, ev.Stack, rev)
		}
		seqs = append(seqs, ev.Change.Sequence)
	}
	// Resume from the middle, as a client that saw the first one.
	w2 := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{FromSequence: seqs[0] + 1}))
	if ev := recv(t, w2); ev.Change.Sequence != seqs[1] || ev.Stack.Revision != 3 {
		t.Fatalf("resume from %d: %v, want sequence %d", seqs[0]+1, ev.Change, seqs[1])
	}
}

func TestServer_WatchFromAnUnretainedSequenceIsOutOfRange(t *testing.T) {
	cfg := testConfig()
	cfg.HistoryEvents = 2
	f := newFixture(t, cfg)
	ctx := ctxT(t)
	list := must[*chainindexerv1.ListStacksResponse](t)(f.c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{}))
	for _, m := range []string{"rev: 2", "rev: 3", "rev: 4"} {
		must[ledger.Stack](t)(f.led.UpdateStack(ctx, f.dev1, f.s1.ID, []byte(m)))
	}
	st := synced(t, f.c, f.led)
	for _, c := range []struct {
		name string
		from uint64
		code codes.Code
	}{
		{"dropped", list.Sequence + 1, codes.OutOfRange},
		{"never issued", st.Sequence + 2, codes.OutOfRange},
		{"oldest retained", st.OldestResumableSequence, codes.OK},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{FromSequence: c.from}))
			if c.code == codes.OK {
				if ev := recv(t, w); ev.Change.Sequence != c.from {
					t.Fatalf("first event %v, want sequence %d", ev.Change, c.from)
				}
				return
			}
			_, err := recvErr(w)
			if status.Code(err) != c.code {
				t.Fatalf("got %v, want %v", err, c.code)
			}
		})
	}
}

func TestServer_RestartKeepsSequencesAndServesBeforeTheLedgerAnswers(t *testing.T) {
	led := openLocal(t)
	fl := &flaky{Ledger: led}
	m := newMarket(t, led)
	owner, p := m.provider("alpha", true)
	r := m.region(owner, 1, "eu1", 10)
	dev := m.developer(p.ID, 100)
	m.stack(dev, r.ID, "name: one")
	m.stack(dev, r.ID, "name: two")
	cfg := testConfig()
	cfg.DataDir = t.TempDir()

	a, ca := start(t, cfg, fl)
	synced(t, ca, led)
	w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(ca.WatchStacks(ctxT(t), &chainindexerv1.WatchStacksRequest{}))
	before, _ := snapshot(t, w)
	listA := must[*chainindexerv1.ListStacksResponse](t)(ca.ListStacks(ctxT(t), &chainindexerv1.ListStacksRequest{}))
	check(t, a.Close())

	fl.down.Store(true)
	b, cb := start(t, cfg, fl)
	listB := must[*chainindexerv1.ListStacksResponse](t)(cb.ListStacks(ctxT(t), &chainindexerv1.ListStacksRequest{}))
	if !proto.Equal(listA, listB) {
		t.Fatalf("after a restart with the ledger down:\n got %v\nwant %v", listB, listA)
	}
	if code, body := httpGet(t, "http://"+b.AdminAddr()+"/readyz"); code != 200 {
		t.Errorf("/readyz with a persisted view and the ledger down = %d %s", code, body)
	}
	// The same events, under the same sequences, from the persisted history.
	w2 := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(cb.WatchStacks(ctxT(t), &chainindexerv1.WatchStacksRequest{FromSequence: meta(before[0]).Sequence}))
	for _, want := range before {
		got := recv(t, w2)
		if !proto.Equal(got, want) {
			t.Fatalf("replay after restart:\n got %v\nwant %v", got, want)
		}
	}
	eventually(t, "the ledger to be reported unreachable", func() bool {
		st, err := cb.GetStatus(ctxT(t), &chainindexerv1.GetStatusRequest{})
		return err == nil && !st.LedgerReachable && st.LastError != ""
	})

	s3 := m.stack(dev, r.ID, "name: three") // while the indexer cannot see the ledger
	fl.down.Store(false)
	ev := nextChange(t, w2)
	if !bytes.Equal(ev.Stack.Id, s3.ID.Bytes()) || ev.Change.Sequence != listA.Sequence+1 {
		t.Fatalf("first change after restart: %v %v, want stack three with sequence %d", ev.Change, ev.Stack.GetId(), listA.Sequence+1)
	}
}

func TestServer_OutageKeepsServingTheViewWithoutDeletesAndCatchesUp(t *testing.T) {
	led := openLocal(t)
	fl := &flaky{Ledger: led}
	m := newMarket(t, led)
	owner, p := m.provider("alpha", true)
	r := m.region(owner, 1, "eu1", 10)
	dev := m.developer(p.ID, 100)
	m.stack(dev, r.ID, "name: one")
	m.stack(dev, r.ID, "name: two")
	cfg := testConfig()
	cfg.BookmarkInterval = 5e6 // 5ms, so the outage shows bookmarks
	s, c := start(t, cfg, fl)
	synced(t, c, led)
	ctx := ctxT(t)
	w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{}))
	snapshot(t, w)
	listBefore := must[*chainindexerv1.ListStacksResponse](t)(c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{}))

	fl.down.Store(true)
	var st1 *chainindexerv1.GetStatusResponse
	eventually(t, "the outage to be noticed", func() bool {
		st1 = must[*chainindexerv1.GetStatusResponse](t)(c.GetStatus(ctx, &chainindexerv1.GetStatusRequest{}))
		return !st1.LedgerReachable
	})
	if !strings.Contains(st1.LastError, "unavailable") || st1.LastErrorTime == nil || !st1.Serving {
		t.Errorf("status during the outage: %v", st1)
	}
	s3 := m.stack(dev, r.ID, "name: three") // the ledger moves on; the indexer cannot see it
	st2 := must[*chainindexerv1.GetStatusResponse](t)(c.GetStatus(ctx, &chainindexerv1.GetStatusRequest{}))
	if st2.Staleness.AsDuration() <= st1.Staleness.AsDuration() {
		t.Errorf("staleness did not grow during the outage: %v then %v", st1.Staleness.AsDuration(), st2.Staleness.AsDuration())
	}
	if st2.Sequence != st1.Sequence || st2.LedgerSlot != st1.LedgerSlot {
		t.Errorf("the view moved during the outage: %v then %v", st1, st2)
	}
	listDuring := must[*chainindexerv1.ListStacksResponse](t)(c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{}))
	if !proto.Equal(listBefore, listDuring) {
		t.Errorf("the served stacks changed during the outage:\n got %v\nwant %v", listDuring, listBefore)
	}
	// Only bookmarks while the ledger is down, at the same sequence.
	for range 3 {
		ev := recv(t, w)
		if ev.Change.Type != chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK || ev.Change.Sequence != st1.Sequence {
			t.Fatalf("during the outage the watch got %v, want only bookmarks at %d", ev.Change, st1.Sequence)
		}
	}
	if fails := fl.fails.Load(); fails == 0 {
		t.Fatal("the indexer never called the ledger during the outage")
	}

	fl.down.Store(false)
	ev := nextChange(t, w)
	if ev.Change.Type != chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT || !bytes.Equal(ev.Stack.Id, s3.ID.Bytes()) {
		t.Fatalf("after the outage: %v %v, want the stack created meanwhile", ev.Change, ev.Stack)
	}
	st3 := synced(t, c, led)
	if !st3.LedgerReachable || !st3.LastSyncTime.AsTime().After(st1.LastSyncTime.AsTime()) {
		t.Errorf("status after the outage: %v", st3)
	}
	_, body := httpGet(t, "http://"+s.AdminAddr()+"/metrics")
	for _, name := range []string{"mu_chain_indexer_ledger_slot", "mu_chain_indexer_sequence", "mu_chain_indexer_staleness_seconds", "mu_chain_indexer_watchers 1"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	if strings.Contains(body, "mu_chain_indexer_ledger_errors_total 0") || !strings.Contains(body, "mu_chain_indexer_ledger_errors_total") {
		t.Error("/metrics does not count the ledger errors")
	}
}

func TestServer_SlowWatcherIsCutOffWhileOthersKeepReceiving(t *testing.T) {
	cfg := testConfig()
	cfg.WatchBuffer = 4
	f := newFixture(t, cfg)
	ctx := ctxT(t)
	// A small fixed HTTP/2 window, so a client that stops reading stops
	// the server's sends after a few events.
	slowC := dial(t, f.srv.Addr(), grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	slow := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(slowC.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{StackIds: [][]byte{f.s1.ID.Bytes()}}))
	snapshot(t, slow)
	fast := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{StackIds: [][]byte{f.s1.ID.Bytes()}}))
	snapshot(t, fast)

	const updates = 40
	big := bytes.Repeat([]byte("x"), 32<<10)
	got := make(chan uint64, updates)
	go func() {
		for range updates {
			ev, err := fast.Recv()
			if err != nil {
				t.Logf("fast watcher: %v", err)
				close(got)
				return
			}
			got <- ev.Stack.GetRevision()
		}
	}()
	// In lockstep with the watcher that reads, so only the other falls
	// behind.
	for i := range updates {
		must[ledger.Stack](t)(f.led.UpdateStack(ctx, f.dev1, f.s1.ID, append(big, byte('0'+i%10))))
		if rev, ok := <-got; !ok || rev != uint64(2+i) {
			t.Fatalf("the watcher that kept up got revision %d (ok=%v), want %d", rev, ok, 2+i)
		}
	}
	msgs, err := recvErr(slow)
	if status.Code(err) != codes.ResourceExhausted || len(msgs) >= updates {
		t.Fatalf("slow watcher: %d events then %v, want fewer than %d then RESOURCE_EXHAUSTED", len(msgs), err, updates)
	}
	// It resumes where it was cut off and gets the rest.
	from := f.s1.Revision
	last := uint64(0)
	for _, m := range msgs {
		if m.Change.Type == chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT {
			last, from = m.Change.Sequence, m.Stack.Revision
		}
	}
	if last == 0 {
		t.Fatal("the slow watcher got no event before it was cut off")
	}
	again := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(slowC.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{StackIds: [][]byte{f.s1.ID.Bytes()}, FromSequence: last + 1}))
	for rev := from + 1; rev < 2+updates; rev++ {
		if ev := recv(t, again); ev.Stack.Revision != rev {
			t.Fatalf("resumed at revision %d, want %d", ev.Stack.Revision, rev)
		}
	}
}

func TestServer_FilteredWatchGetsBookmarksThatAdvance(t *testing.T) {
	cfg := testConfig()
	cfg.BookmarkInterval = 5e6 // 5ms
	f := newFixture(t, cfg)
	ctx := ctxT(t)
	nobody := key(t).Pubkey()
	w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{Owner: nobody.Bytes()}))
	objs, first := snapshot(t, w)
	if len(objs) != 0 {
		t.Fatalf("snapshot of %d stacks for an owner with none", len(objs))
	}
	f.m.stack(f.dev1, f.r1.ID, "name: not yours")
	target := synced(t, f.c, f.led).Sequence
	if target <= first {
		t.Fatalf("the write issued no event (sequence %d, bookmark %d)", target, first)
	}
	for {
		ev := recv(t, w)
		if ev.Change.Type != chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK || ev.Stack != nil {
			t.Fatalf("a filtered watch got %v", ev)
		}
		if ev.Change.Sequence >= target {
			break
		}
	}
}

func TestServer_InvalidIDsNameTheField(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFilterIDs = 2
	f := newFixture(t, cfg)
	ctx := ctxT(t)
	id := make([]byte, 32)
	watchErr := func(s grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse], err error) error {
		if err != nil {
			return err
		}
		_, err = recvErr(s)
		return err
	}
	escrowErr := func(s grpc.ServerStreamingClient[chainindexerv1.WatchEscrowsResponse], err error) error {
		if err != nil {
			return err
		}
		_, err = recvErr(s)
		return err
	}
	for _, c := range []struct {
		name, field string
		call        func() error
	}{
		{"list regions", "provider_id is 5 bytes", func() error {
			_, err := f.c.ListRegions(ctx, &chainindexerv1.ListRegionsRequest{ProviderId: make([]byte, 5)})
			return err
		}},
		{"list stacks region", "region_id is 31 bytes", func() error {
			_, err := f.c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{RegionId: make([]byte, 31)})
			return err
		}},
		{"list stacks ids", "stack_ids[1] is 3 bytes", func() error {
			_, err := f.c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{StackIds: [][]byte{id, {1, 2, 3}}})
			return err
		}},
		{"too many ids", "more than max_filter_ids 2", func() error {
			_, err := f.c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{StackIds: [][]byte{id, id, id}})
			return err
		}},
		{"list escrows", "developer is 33 bytes", func() error {
			_, err := f.c.ListEscrows(ctx, &chainindexerv1.ListEscrowsRequest{Developer: make([]byte, 33)})
			return err
		}},
		{"watch stacks owner", "owner is 1 bytes", func() error {
			return watchErr(f.c.WatchStacks(ctx, &chainindexerv1.WatchStacksRequest{Owner: []byte{1}}))
		}},
		{"watch escrows", "provider_id is 2 bytes", func() error {
			return escrowErr(f.c.WatchEscrows(ctx, &chainindexerv1.WatchEscrowsRequest{ProviderId: []byte{1, 2}}))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("got %v, want INVALID_ARGUMENT naming %q", err, c.field)
			}
		})
	}
}

func TestServer_NotReadyUntilItHasAView(t *testing.T) {
	led := openLocal(t)
	fl := &flaky{Ledger: led}
	fl.down.Store(true)
	s, c := start(t, testConfig(), fl)
	ctx := ctxT(t)
	eventually(t, "a failed ledger call", func() bool { return fl.fails.Load() > 0 })
	if code, body := httpGet(t, "http://"+s.AdminAddr()+"/readyz"); code != 503 || !strings.Contains(body, "no view") {
		t.Errorf("/readyz without a view = %d %s", code, body)
	}
	if _, err := c.ListStacks(ctx, &chainindexerv1.ListStacksRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("ListStacks without a view: %v, want UNAVAILABLE", err)
	}
	st := must[*chainindexerv1.GetStatusResponse](t)(c.GetStatus(ctx, &chainindexerv1.GetStatusRequest{}))
	if st.Serving || st.LedgerReachable || st.LastSyncTime != nil {
		t.Errorf("status without a view: %v", st)
	}
	fl.down.Store(false)
	eventually(t, "readiness once the ledger answers", func() bool {
		code, _ := httpGet(t, "http://"+s.AdminAddr()+"/readyz")
		return code == 200
	})
}

func TestServer_CloseEndsWatchesWithUnavailable(t *testing.T) {
	f := newFixture(t, testConfig())
	w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctxT(t), &chainindexerv1.WatchStacksRequest{}))
	snapshot(t, w)
	done := make(chan error, 1)
	go func() { done <- f.srv.Close() }()
	if _, err := recvErr(w); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch at shutdown: %v, want UNAVAILABLE", err)
	}
	check(t, <-done)
	check(t, f.srv.Close()) // twice
}

func TestServer_MaxWatchersIsEnforced(t *testing.T) {
	cfg := testConfig()
	cfg.MaxWatchers = 1
	f := newFixture(t, cfg)
	w := must[grpc.ServerStreamingClient[chainindexerv1.WatchStacksResponse]](t)(f.c.WatchStacks(ctxT(t), &chainindexerv1.WatchStacksRequest{}))
	snapshot(t, w)
	w2 := must[grpc.ServerStreamingClient[chainindexerv1.WatchEscrowsResponse]](t)(f.c.WatchEscrows(ctxT(t), &chainindexerv1.WatchEscrowsRequest{}))
	if _, err := recvErr(w2); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_watchers") {
		t.Fatalf("a watch over max_watchers: %v", err)
	}
}

func TestServer_OpensItsOwnLedgerFromConfig(t *testing.T) {
	cfg := testConfig()
	cfg.Ledger.DataDir = t.TempDir()
	s, c := start(t, cfg, nil)
	eventually(t, "a view of the empty ledger", func() bool {
		st, err := c.GetStatus(ctxT(t), &chainindexerv1.GetStatusRequest{})
		return err == nil && st.Serving && st.LedgerReachable
	})
	check(t, s.Close())
	// The ledger's store was released: another ledger can open it.
	lc := DefaultConfig().Ledger
	lc.DataDir = cfg.Ledger.DataDir
	l, err := openLedger(t.Context(), lc)
	if err != nil {
		t.Fatalf("the node did not close the ledger it opened: %v", err)
	}
	l.Close()
}

func TestConfig_InvalidNamesTheField(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.GRPCAddr = "nope"
	_, err := New(cfg, Deps{})
	if !errors.Is(err, service.ErrInvalidConfig) || !strings.Contains(err.Error(), "grpc_addr") {
		t.Fatalf("got %v", err)
	}
}
