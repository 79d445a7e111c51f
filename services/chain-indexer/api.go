package chainindexer

import (
	"bytes"
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/rpcerr"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	"github.com/muprotocol/mu/services/chain-indexer/internal/index"
)

// matcher selects the events of one kind a request wants.
type matcher = func(*index.Event) bool

// idField checks an optional 32-byte id field: empty means "any".
func idField(field string, b []byte) error {
	if len(b) != 0 && len(b) != 32 {
		return rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, "chain-indexer: %s is %d bytes, want 32 (or empty for any)", field, len(b))
	}
	return nil
}

// same reports whether an optional filter id accepts got.
func same(want, got []byte) bool { return len(want) == 0 || bytes.Equal(want, got) }

func providerMatch(authorizedOnly bool) (live, snapshot matcher) {
	live = func(e *index.Event) bool {
		// A provider losing its authorization is sent once.
		return e.Provider != nil && (!authorizedOnly || e.Provider.GetAuthorized() || e.PrevAuthorized)
	}
	snapshot = func(e *index.Event) bool {
		return e.Provider != nil && (!authorizedOnly || e.Provider.GetAuthorized())
	}
	return live, snapshot
}

func regionMatch(providerID []byte) (matcher, error) {
	if err := idField("provider_id", providerID); err != nil {
		return nil, err
	}
	return func(e *index.Event) bool {
		return e.Region != nil && same(providerID, e.Region.GetProviderId())
	}, nil
}

// stackMatch matches stacks of any state; the caller adds the state rule.
func (s *Server) stackMatch(regionID, owner []byte, stackIDs [][]byte) (matcher, error) {
	if err := idField("region_id", regionID); err != nil {
		return nil, err
	}
	if err := idField("owner", owner); err != nil {
		return nil, err
	}
	if len(stackIDs) > s.cfg.MaxFilterIDs {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.RequestTooLarge, "chain-indexer: stack_ids has %d ids, more than max_filter_ids %d", len(stackIDs), s.cfg.MaxFilterIDs)
	}
	var ids map[string]bool
	if len(stackIDs) > 0 {
		ids = make(map[string]bool, len(stackIDs))
		for i, id := range stackIDs {
			if len(id) != 32 {
				return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.InvalidRequest, "chain-indexer: stack_ids[%d] is %d bytes, want 32", i, len(id))
			}
			ids[string(id)] = true
		}
	}
	return func(e *index.Event) bool {
		st := e.Stack
		return st != nil && same(regionID, st.GetRegionId()) && same(owner, st.GetOwner()) && (ids == nil || ids[string(st.GetId())])
	}, nil
}

func active(e *index.Event) bool {
	return e.Stack.GetState() == chainindexerv1.StackState_STACK_STATE_ACTIVE
}

func escrowMatch(developer, providerID []byte) (matcher, error) {
	if err := idField("developer", developer); err != nil {
		return nil, err
	}
	if err := idField("provider_id", providerID); err != nil {
		return nil, err
	}
	return func(e *index.Event) bool {
		return e.Escrow != nil && same(developer, e.Escrow.GetDeveloper()) && same(providerID, e.Escrow.GetProviderId())
	}, nil
}

// indexError maps an error of the index to a status.
func indexError(err error) error {
	switch {
	case errors.Is(err, index.ErrNotServing):
		return status.Errorf(codes.Unavailable, "chain-indexer: %v: the ledger has not been read yet; retry", err)
	case errors.Is(err, index.ErrOutOfRange):
		return status.Errorf(codes.OutOfRange, "chain-indexer: %v; start over with from_sequence 0 (or a List)", err)
	case errors.Is(err, index.ErrTooManySubscribers):
		return rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted, "chain-indexer: %v (max_watchers); retry later", err)
	case errors.Is(err, index.ErrClosed):
		return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "chain-indexer: shutting down")
	}
	return status.Errorf(codes.Internal, "chain-indexer: %v", err)
}

// list runs one List: the matching objects of kind and the response built
// from them, refused when it would not fit a gRPC message.
func list[R proto.Message](s *Server, kind index.Kind, match matcher, build func([]*index.Event, uint64) R) (R, error) {
	var zero R
	evs, pos, err := s.idx.Objects(kind, match)
	if err != nil {
		return zero, indexError(err)
	}
	resp := build(evs, pos.Seq)
	if size := proto.Size(resp); size > s.cfg.MaxMessageBytes {
		return zero, rpcerr.Errorf(codes.ResourceExhausted, rpcerr.ResultTooLarge,
			"chain-indexer: %d %ss make a %d-byte response, more than max_message_bytes %d; narrow the filter, or Watch (one object per message)",
			len(evs), kind, size, s.cfg.MaxMessageBytes)
	}
	return resp, nil
}

// ListProviders returns the providers, optionally only authorized ones.
func (s *Server) ListProviders(_ context.Context, req *chainindexerv1.ListProvidersRequest) (*chainindexerv1.ListProvidersResponse, error) {
	_, snap := providerMatch(req.GetAuthorizedOnly())
	return list(s, index.KindProvider, snap, func(evs []*index.Event, seq uint64) *chainindexerv1.ListProvidersResponse {
		r := &chainindexerv1.ListProvidersResponse{Sequence: seq, Providers: make([]*chainindexerv1.Provider, len(evs))}
		for i, e := range evs {
			r.Providers[i] = e.Provider
		}
		return r
	})
}

// ListRegions returns the regions, optionally of one provider.
func (s *Server) ListRegions(_ context.Context, req *chainindexerv1.ListRegionsRequest) (*chainindexerv1.ListRegionsResponse, error) {
	match, err := regionMatch(req.GetProviderId())
	if err != nil {
		return nil, err
	}
	return list(s, index.KindRegion, match, func(evs []*index.Event, seq uint64) *chainindexerv1.ListRegionsResponse {
		r := &chainindexerv1.ListRegionsResponse{Sequence: seq, Regions: make([]*chainindexerv1.Region, len(evs))}
		for i, e := range evs {
			r.Regions[i] = e.Region
		}
		return r
	})
}

// ListStacks returns the stacks matching every filter; deleted ones only
// with include_deleted.
func (s *Server) ListStacks(_ context.Context, req *chainindexerv1.ListStacksRequest) (*chainindexerv1.ListStacksResponse, error) {
	match, err := s.stackMatch(req.GetRegionId(), req.GetOwner(), req.GetStackIds())
	if err != nil {
		return nil, err
	}
	withDeleted := req.GetIncludeDeleted()
	return list(s, index.KindStack, func(e *index.Event) bool { return match(e) && (withDeleted || active(e)) },
		func(evs []*index.Event, seq uint64) *chainindexerv1.ListStacksResponse {
			r := &chainindexerv1.ListStacksResponse{Sequence: seq, Stacks: make([]*chainindexerv1.Stack, len(evs))}
			for i, e := range evs {
				r.Stacks[i] = e.Stack
			}
			return r
		})
}

// ListEscrows returns the escrows matching every filter.
func (s *Server) ListEscrows(_ context.Context, req *chainindexerv1.ListEscrowsRequest) (*chainindexerv1.ListEscrowsResponse, error) {
	match, err := escrowMatch(req.GetDeveloper(), req.GetProviderId())
	if err != nil {
		return nil, err
	}
	return list(s, index.KindEscrow, match, func(evs []*index.Event, seq uint64) *chainindexerv1.ListEscrowsResponse {
		r := &chainindexerv1.ListEscrowsResponse{Sequence: seq, Escrows: make([]*chainindexerv1.Escrow, len(evs))}
		for i, e := range evs {
			r.Escrows[i] = e.Escrow
		}
		return r
	})
}

// WatchProviders streams provider changes (see the proto for the Watch
// semantics shared by every Watch).
func (s *Server) WatchProviders(req *chainindexerv1.WatchProvidersRequest, stream grpc.ServerStreamingServer[chainindexerv1.WatchProvidersResponse]) error {
	live, snap := providerMatch(req.GetAuthorizedOnly())
	return watch(s, stream, req.GetFromSequence(), live, snap, func(e *index.Event) *chainindexerv1.WatchProvidersResponse {
		return &chainindexerv1.WatchProvidersResponse{Change: e.Meta(), Provider: e.Provider}
	}, func(m *chainindexerv1.ChangeMeta) *chainindexerv1.WatchProvidersResponse {
		return &chainindexerv1.WatchProvidersResponse{Change: m}
	})
}

// WatchRegions streams region changes.
func (s *Server) WatchRegions(req *chainindexerv1.WatchRegionsRequest, stream grpc.ServerStreamingServer[chainindexerv1.WatchRegionsResponse]) error {
	match, err := regionMatch(req.GetProviderId())
	if err != nil {
		return err
	}
	return watch(s, stream, req.GetFromSequence(), match, match, func(e *index.Event) *chainindexerv1.WatchRegionsResponse {
		return &chainindexerv1.WatchRegionsResponse{Change: e.Meta(), Region: e.Region}
	}, func(m *chainindexerv1.ChangeMeta) *chainindexerv1.WatchRegionsResponse {
		return &chainindexerv1.WatchRegionsResponse{Change: m}
	})
}

// WatchStacks streams stack changes, deleted stacks included; its
// snapshot holds the active stacks only.
func (s *Server) WatchStacks(req *chainindexerv1.WatchStacksRequest, stream grpc.ServerStreamingServer[chainindexerv1.WatchStacksResponse]) error {
	match, err := s.stackMatch(req.GetRegionId(), req.GetOwner(), req.GetStackIds())
	if err != nil {
		return err
	}
	snap := func(e *index.Event) bool { return match(e) && active(e) }
	return watch(s, stream, req.GetFromSequence(), match, snap, func(e *index.Event) *chainindexerv1.WatchStacksResponse {
		return &chainindexerv1.WatchStacksResponse{Change: e.Meta(), Stack: e.Stack}
	}, func(m *chainindexerv1.ChangeMeta) *chainindexerv1.WatchStacksResponse {
		return &chainindexerv1.WatchStacksResponse{Change: m}
	})
}

// WatchEscrows streams escrow balance changes.
func (s *Server) WatchEscrows(req *chainindexerv1.WatchEscrowsRequest, stream grpc.ServerStreamingServer[chainindexerv1.WatchEscrowsResponse]) error {
	match, err := escrowMatch(req.GetDeveloper(), req.GetProviderId())
	if err != nil {
		return err
	}
	return watch(s, stream, req.GetFromSequence(), match, match, func(e *index.Event) *chainindexerv1.WatchEscrowsResponse {
		return &chainindexerv1.WatchEscrowsResponse{Change: e.Meta(), Escrow: e.Escrow}
	}, func(m *chainindexerv1.ChangeMeta) *chainindexerv1.WatchEscrowsResponse {
		return &chainindexerv1.WatchEscrowsResponse{Change: m}
	})
}

func bookmarkMeta(p index.Position) *chainindexerv1.ChangeMeta {
	return &chainindexerv1.ChangeMeta{Type: chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK, Sequence: p.Seq, Slot: p.Slot}
}

// watch serves one Watch stream. The sending runs on its own goroutine so
// that this one can end the RPC while a send is blocked on a client that
// does not read: when the stream's buffer overflows (RESOURCE_EXHAUSTED),
// when the node shuts down (UNAVAILABLE) or when the client goes away.
// Ending the RPC cancels the stream, which unblocks the sender.
func watch[R any](s *Server, stream grpc.ServerStreamingServer[R], from uint64, live, snapshot matcher,
	event func(*index.Event) *R, bookmark func(*chainindexerv1.ChangeMeta) *R,
) error {
	if s.run.IsClosing() {
		return indexError(index.ErrClosed)
	}
	sub, initial, at, err := s.idx.Subscribe(from, live, snapshot, s.cfg.WatchBuffer)
	if err != nil {
		return indexError(err)
	}
	defer sub.Close()
	ctx := stream.Context()
	sent := make(chan error, 1)
	go func() { sent <- sendEvents(s, ctx, stream, sub, initial, from == 0, at, event, bookmark) }()
	select {
	case err := <-sent:
		return err
	case <-sub.Cut():
		s.m.watchersCut.Inc()
		return rpcerr.Errorf(codes.ResourceExhausted, rpcerr.CapacityExhausted,
			"chain-indexer: this watch fell more than watch_buffer %d events behind; resume from the last sequence received + 1", s.cfg.WatchBuffer)
	case <-s.run.Closing():
		return rpcerr.Errorf(codes.Unavailable, rpcerr.ShuttingDown, "chain-indexer: shutting down; resume from the last sequence received + 1")
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// sendEvents sends the initial events (and, after a snapshot, its
// BOOKMARK), then live events and, every bookmark_interval in which it
// sent nothing, a BOOKMARK of the position the stream is current to.
func sendEvents[R any](s *Server, ctx context.Context, stream grpc.ServerStreamingServer[R], sub *index.Sub, initial []*index.Event,
	snapshot bool, at index.Position, event func(*index.Event) *R, bookmark func(*chainindexerv1.ChangeMeta) *R,
) error {
	for _, e := range initial {
		if err := stream.Send(event(e)); err != nil {
			return err
		}
	}
	if snapshot {
		if err := stream.Send(bookmark(bookmarkMeta(at))); err != nil {
			return err
		}
	}
	tick := time.NewTicker(s.cfg.BookmarkInterval)
	defer tick.Stop()
	quiet := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-sub.C():
			if err := stream.Send(event(e)); err != nil {
				return err
			}
			quiet = false
		case <-tick.C:
			if !quiet {
				quiet = true
				continue
			}
			// Idle: every event offered to this stream has been sent, so it
			// is current to pos.
			if idle, pos := sub.Idle(); idle {
				if err := stream.Send(bookmark(bookmarkMeta(pos))); err != nil {
					return err
				}
			}
		}
	}
}

// GetStatus reports how current the view is and whether the ledger
// answers.
func (s *Server) GetStatus(context.Context, *chainindexerv1.GetStatusRequest) (*chainindexerv1.GetStatusResponse, error) {
	st := s.idx.Status()
	ls := s.fol.state()
	resp := &chainindexerv1.GetStatusResponse{
		LedgerSlot:              st.Slot,
		Sequence:                st.Seq,
		OldestResumableSequence: st.OldestResumable,
		Staleness:               durationpb.New(s.staleness(st.SyncedAt)),
		LedgerReachable:         ls.reachable,
		LastError:               ls.lastErr,
		Serving:                 st.Serving,
		Watchers:                uint32(min(st.Subscribers, int(^uint32(0)))),
	}
	if !st.SyncedAt.IsZero() {
		resp.LastSyncTime = timestamppb.New(st.SyncedAt)
	}
	if !ls.lastErrAt.IsZero() {
		resp.LastErrorTime = timestamppb.New(ls.lastErrAt)
	}
	return resp, nil
}
