package service

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/rpcerr"
)

// Rules say which roles may call each gRPC method of a service over mTLS.
// A key is a full method name ("/mu.runtime.v1.RuntimeService/Invoke") or
// a service's full name and "/*" ("/mu.chainindexer.v1.ChainIndexerService/*")
// for its methods without a rule of their own. The health and reflection
// services need no rule: any verified certificate may call them. A method
// without a rule is refused to everyone, and Runner.Start fails when a
// registered method has none, so a new method cannot go unguarded.
//
// With plaintext there are no checks. In-process calls (NewUnary) never
// pass a network and are not checked either.
type Rules map[string][]certs.Role

// AnyRole is every role of a region, for methods any node may call.
var AnyRole = certs.Roles

// allowed returns the roles of method and whether it has a rule.
func (rs Rules) allowed(method string) ([]certs.Role, bool) {
	if roles, ok := rs[method]; ok {
		return roles, true
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		if roles, ok := rs[method[:i]+"/*"]; ok {
			return roles, true
		}
	}
	return nil, false
}

// open reports whether method is of a service any verified caller may use.
func open(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// missing returns the registered methods of srv without a rule, sorted.
func (rs Rules) missing(srv *grpc.Server) []string {
	var out []string
	for name, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + name + "/" + m.Name
			if _, ok := rs.allowed(full); !ok && !open(full) {
				out = append(out, full)
			}
		}
	}
	sort.Strings(out)
	return out
}

type callerKey struct{}

// Caller returns the verified identity of the gRPC peer calling the
// handler of ctx. ok is false when the call is trusted without one: the
// service runs with plaintext, or the call is in process. A handler that
// needs more than the method's Rules (an operator-only variant of a call)
// checks it with RequireRole.
func Caller(ctx context.Context) (id certs.Identity, ok bool) {
	id, ok = ctx.Value(callerKey{}).(certs.Identity)
	return id, ok
}

// WithCaller returns ctx carrying id as the caller, as the Runner's
// interceptors set it; for tests of handlers.
func WithCaller(ctx context.Context, id certs.Identity) context.Context {
	return context.WithValue(ctx, callerKey{}, id)
}

// RequireRole returns nil when ctx's call is trusted (see Caller) or its
// caller has one of roles, and else a PermissionDenied error naming the
// caller, what it asked (what) and the roles allowed.
func RequireRole(ctx context.Context, what string, roles ...certs.Role) error {
	id, ok := Caller(ctx)
	if !ok || hasRole(roles, id.Role) {
		return nil
	}
	return denied(id, what, roles)
}

func hasRole(roles []certs.Role, r certs.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

func denied(id certs.Identity, what string, roles []certs.Role) error {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	allowed := "none"
	if len(names) > 0 {
		allowed = strings.Join(names, ", ")
	}
	return rpcerr.Errorf(codes.PermissionDenied, rpcerr.CallerNotAuthorized, "%s may not call %s: allowed roles: %s", id, what, allowed)
}

// authorizer is the Runner's check of every gRPC call in mTLS mode.
type authorizer struct {
	name  string
	rules Rules
}

// authorize returns ctx with the caller's identity, or the error to answer.
func (a *authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	id, err := peerIdentity(ctx)
	if err != nil {
		return nil, rpcerr.Errorf(codes.PermissionDenied, rpcerr.CallerNotAuthorized, "%s: %s: %v", a.name, method, err)
	}
	if !open(method) {
		roles, _ := a.rules.allowed(method)
		if !hasRole(roles, id.Role) {
			return nil, denied(id, method, roles)
		}
	}
	return WithCaller(ctx, id), nil
}

// peerIdentity is the mu identity of the verified certificate of ctx's
// gRPC peer.
func peerIdentity(ctx context.Context) (certs.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return certs.Identity{}, fmt.Errorf("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return certs.Identity{}, fmt.Errorf("the caller at %s presented no verified certificate", p.Addr)
	}
	id, err := certs.ParseIdentity(info.State.VerifiedChains[0][0])
	if err != nil {
		return certs.Identity{}, fmt.Errorf("the caller at %s: %w", p.Addr, err)
	}
	return id, nil
}

func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, callerStream{ServerStream: ss, ctx: ctx})
}

// callerStream is a server stream whose context carries the caller.
type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s callerStream) Context() context.Context { return s.ctx }
