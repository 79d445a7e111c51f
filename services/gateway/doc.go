// Package gateway is mu's public HTTP edge (design §2, §3 "Request"). It
// serves
//
//	http://gw/{stack_id}/{gateway_name}/{path}
//
// where stack_id is the base58 stack key and gateway_name a Gateway service
// of the stack's manifest, matches {path} against the gateway's endpoints,
// calls the target function through Runtime.Invoke over gRPC, writes the
// function's response, and meters the exchange for billing.
//
// # Lifecycle
//
// The gateway follows the service contract of libs/service. New(cfg, deps)
// checks the config and starts the usage batcher; Start binds the public
// HTTP listener (Config.HTTPAddr), the gRPC admin listener (GRPCAddr) and
// the admin HTTP listener (AdminAddr) and serves in the background; Close
// drains them and flushes usage. Stacks are fed with PutStack, RemoveStack and
// SetStackEnabled, and by the chain indexer (below).
//
// # Finding the runtime: static or cluster
//
// Deps.Runtimes (a RuntimeResolver) gives the runtimes to try for each
// request, owner first. StaticRuntime (DialRuntime) sends every stack to
// one runtime: `mu run`, mu-gateway --runtime-addr, tests.
//
// In cluster mode (Config.Cluster.BindAddr set, no Deps.Runtimes) the
// gateway routes straight to each stack's owner, with no extra hop (design
// section 5). Start joins the region's member list (libs/membership,
// hashicorp/memberlist gossip) once the listeners are bound, as a member
// with role gateway, region Config.RegionID and the bound gRPC admin port;
// ClusterAddr is its gossip address, for other nodes to join through. On
// every change of the list the gateway takes the runtime members whose
// region is Config.RegionID (others, and members whose gRPC address is not
// ip:port, are skipped; the latter with a warning), gives each the node id
// SHA-256(ip, gRPC port, generation) (placement.NodeIDOf) and publishes an
// immutable placement ring that requests read without a lock. A stack's
// owner is the node whose id is closest to the stack id by XOR distance;
// its candidates are the owner and then the next-closest nodes. Suspected
// members keep their stacks until they are declared dead (about 2.5 s
// after a kill with the default cluster timings); requests they fail in
// the meantime are retried (below). The gateway keeps a placement.Table of
// the stacks it serves, so each change of the list re-places exactly the
// stacks whose owner changed; their number is added to
// mu_gateway_owner_changes_total and logged ("runtime members changed",
// with joined, left and owner_changes). Connections to runtimes are made
// lazily, one per runtime, owned by the gateway; the connection of a
// member that left is closed once twice InvokeTimeout has passed (no
// request can still be using it). Close leaves the list (a graceful leave,
// bounded by cluster_leave_timeout) before the listeners stop.
// GatewayService.Placement and Status report the members, the owner and
// candidates of each stack, and the gossip address.
//
// # Retries
//
// A GET, HEAD, PUT or DELETE request (idempotent methods: running them
// twice has the effect of running them once) whose Invoke fails with gRPC
// UNAVAILABLE — the runtime is unreachable, the connection broke during the
// call, or the runtime is shutting down — is sent to the next candidate,
// up to Config.InvokeAttempts runtimes in all (default 3), all within the
// one Config.InvokeTimeout. The request body is read once and sent whole
// each time. Nothing else is retried: not other gRPC codes (an overloaded
// runtime answers RESOURCE_EXHAUSTED, 503 with Retry-After for the client
// to decide), not function failures (InvokeResponse.error: the function
// ran), not DEADLINE_EXCEEDED (the time is spent) and not a client that
// went away. POST, PATCH and other methods are never replayed, since the
// owner may have run them before it failed: they get 503
// runtime_unavailable with Retry-After. When the last attempt fails, the
// request gets what that failure maps to (below). Each retry adds one to
// mu_gateway_invoke_retries_total{method} and is logged at debug with the
// stack and the from and to nodes (at info it would be a line per request
// for a dead node's stacks until the list declares it dead). The request is metered once, however
// many runtimes were tried: one GatewayRequests record, and the traffic of
// the request as received and the response as sent.
//
// # Following the chain
//
// With Config.ChainIndexerAddr (or Deps.ChainIndexer) and Config.RegionID
// the gateway follows the chain indexer (libs/chainwatch): the stacks of
// its region (WatchStacks), the regions (WatchRegions; it keeps its own)
// and, once it knows the region's provider, that provider's escrows
// (WatchEscrows).
//
//   - An ACTIVE stack is routed at its ledger revision (PutStack; a lower
//     revision never replaces a higher one). Its manifest is parsed with
//     the gateway's own limits (manifest.Parse); one it refuses is logged
//     with the stack and revision and not routed, and an earlier revision
//     of it keeps serving.
//   - enabled=false answers 402 stack_disabled with a reason that says why
//     and what to do: "escrow balance 120 of developer D with provider P
//     is under region R's minimum 1000; add at least 880", or, for an
//     escrow at or over the minimum whose stack is still disabled, that the
//     escrow is overdrawn by usage not yet settled and must be recharged.
//     The reason follows escrow and region changes. enabled=true serves
//     again.
//   - STACK_STATE_DELETED, a DELETE, or a stack that the snapshot after an
//     OUT_OF_RANGE no longer has: RemoveStack (404 stack_not_found).
//   - An indexer that is unreachable or restarts changes nothing: the
//     gateway keeps serving what it has and resumes where it stopped.
//
// # Routing
//
// The request is checked in this order; the first failure answers:
//
//  1. Request line plus headers over Config.MaxHeaderBytes: 431.
//  2. Path not /{stack_id}/...: 404 not_found. Unknown or malformed stack
//     id: 404 stack_not_found.
//  3. The stack's own limits (below, "Per-stack limits"): 429
//     too_many_requests_in_flight, then 429 rate_limited.
//  4. Unknown gateway name: 404 gateway_not_found.
//  5. No endpoint path matches: 404 route_not_found. Paths match but none
//     has the method: 405 method_not_allowed with an Allow header listing
//     the methods of every matching path.
//  6. Stack disabled (SetStackEnabled false; escrow below the region
//     minimum): 402 stack_disabled, the message naming the reason.
//  7. A query string the function cannot be given: 400 bad_request, before
//     the body is read, the message naming the problem — more than
//     Config.MaxQueryParams parameters ("query: more than 10000
//     parameters"), a ';' separator ("query: invalid semicolon separator
//     …"), a bad escape ("query: invalid URL escape \"%zz\""), or a key or
//     value that is not UTF-8. Likewise a path parameter or header that is
//     not UTF-8.
//  8. Body over Config.MaxRequestBodyBytes: 413 body_too_large (from
//     Content-Length at once, or while reading a chunked body).
//  9. The request would not fit one function protocol frame of
//     Config.RuntimeMaxFrameSize: 413 body_too_large, naming the largest
//     body that would fit. Validate keeps MaxRequestBodyBytes within the
//     frame beside the largest request line and headers, so this only
//     happens on endpoints whose route_to and path parameter names take
//     more than 4 KiB.
//
// Matching (internal/router): path templates are split on '/'; a {param}
// segment matches any non-empty segment. Segments are compared
// percent-decoded, so an encoded '/' (%2F) stays inside one parameter.
// Among matching templates, the method is chosen first, then the most
// specific template: segment by segment from the left, a literal beats a
// param (GET /todos/new beats GET /todos/{id}; DELETE /todos/new still goes
// to DELETE /todos/{id} if /todos/new has no DELETE). Trailing slashes are
// significant: /todos/ does not match /todos. The gateway root
// (/{stack}/{gw} or /{stack}/{gw}/) is the template "/".
//
// HEAD uses a HEAD endpoint when a matching path declares one, and otherwise
// the GET endpoint that would serve GET, as net/http does: the function sees
// method "HEAD", the client gets the headers and a Content-Length of the
// body, and no body. Allow lists HEAD wherever GET is allowed. OPTIONS is
// not answered automatically (a stack that wants CORS declares OPTIONS
// endpoints).
//
// # What the function sees
//
// mu.types.v1.HttpRequest: the method as received; path_params from the
// template (decoded); query_params with the first value of each key
// ('+' decodes to a space, as in forms); every
// request header except hop-by-hop ones (Connection and the headers it
// names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade,
// Expect), as one Header per value, Host first and the rest sorted by
// canonical name; the body. Protobuf strings must be UTF-8, so a path
// parameter, query parameter or header that is not gets 400.
//
// The function's status must be 200..599 (1xx cannot end a request):
// otherwise 502 invalid_response. Its headers are forwarded except
// hop-by-hop ones, Content-Length (the gateway sets it from the body) and
// malformed fields (dropped and logged). With no Content-Type, none is sent
// (no sniffing). A body over Config.MaxResponseBytes or headers over
// Config.MaxResponseHeaderBytes give 502 response_too_large.
//
// # Errors
//
// Every response the gateway makes itself (log streams' lines aside) has a JSON body
//
//	{"error": {"kind": "fuel_exhausted", "message": "..."}}
//
// with one of the Kind* constants. Function failures (InvokeError) map as:
//
//	function_error    500  the function reported a FatalError
//	fuel_exhausted    500  it spent its whole fuel budget
//	crash             502  the instance trapped or exited
//	memory_limit      502  the instance outgrew its memory_limit
//	protocol          502  it broke the stdio protocol
//	function_failed   502  an InvokeError kind this gateway does not know
//	deadline_exceeded 504  the runtime's wall-clock limit
//
// The rule: 500 when the function ran and failed on its own terms (retrying
// the same request fails the same way), 502 when the instance broke instead
// of answering, 504 when time ran out. The runtime's InvokeError message
// (meant for the stack's developer) is included. Failures of the Invoke call
// itself, whose transport details (addresses, dial errors) only go to the
// logs:
//
//	no runtime known for the stack                   503 runtime_unavailable
//	gRPC UNAVAILABLE (after any retries)             503 runtime_unavailable
//	gRPC NOT_FOUND                                   404 function_not_found
//	gRPC DEADLINE_EXCEEDED, Config.InvokeTimeout     504 deadline_exceeded
//	gRPC RESOURCE_EXHAUSTED, CAPACITY_EXHAUSTED      503 runtime_overloaded
//	gRPC RESOURCE_EXHAUSTED, no reason (size limit)  502 message_too_large
//	gRPC FAILED_PRECONDITION, STACK_DISABLED         402 stack_disabled
//	gRPC INVALID_ARGUMENT, REQUEST_TOO_LARGE         413 body_too_large
//	gRPC INVALID_ARGUMENT, otherwise                 400 bad_request
//	any other gRPC code                              502 runtime_error
//	client disconnected                              499 client_closed (metrics and logs only)
//
// The stack's own limits (see Per-stack limits) answer 429 rate_limited
// with Retry-After in whole seconds until the stack's next token (at
// least 1), and 429 too_many_requests_in_flight with Retry-After: 1.
//
// The 503s runtime_unavailable and runtime_overloaded (the node's instance
// slots or its memory budget for active instances are full) carry a
// Retry-After header of Config.OverloadRetryAfter in whole seconds, rounded
// up. 503 shutting_down (this gateway is closing) has none.
//
// W3C trace context (traceparent, tracestate) reaches the function as
// headers; see Traces for how it reaches the runtime.
//
// # Per-stack limits
//
// Once the URL names an installed stack, and before anything else is done
// for it (no route matched, no runtime called), the request is checked
// against the stack's limits at this gateway:
//
//   - Config.StackConcurrency (stack_concurrency, default 256): the
//     stack's requests in flight, from this check until the answer is
//     written. One more gets 429 too_many_requests_in_flight with
//     Retry-After: 1.
//   - Config.StackRate and Config.StackBurst (stack_rate, default 1000
//     per second; stack_burst, default 2000): a token bucket per stack
//     (golang.org/x/time/rate), one token per request. A request that
//     finds it empty gets 429 rate_limited, the message naming the
//     stack's rate and burst, with a Retry-After of the whole seconds
//     until the next token, rounded up, at least 1. A refusal takes no
//     token.
//
// A request refused for concurrency spends no token. 0 turns either limit
// off. Config.StackLimits (stack_limits) overrides them for some stacks,
// each entry "BASE58_ID rate=R burst=B concurrency=C" (keys left out keep
// the defaults; rate=0 or concurrency=0 lifts that limit for the stack).
// Validate refuses a negative value, a burst of 0 with a rate, an id that
// does not parse, an unknown key and a stack given twice, naming the
// setting and the stack.
//
// These settings are the region's: a region's operators set them in the
// configuration of all its gateways alike (the Helm chart passes
// gateway.config through as the gateway's YAML), and each gateway keeps
// its own buckets, so behind N gateways a stack may make up to N times
// stack_rate in the region, and N times stack_concurrency at once.
//
// The state lives on the stack like its response counts (one small struct
// made when the stack is first installed, shared by its later revisions;
// the bucket itself made by its first request) and goes with it:
// RemoveStack drops it, and a stack installed again starts with a full
// bucket. A stack's limits are those in force when it was first
// installed. Admitting a request takes an atomic add and the stack's own
// bucket mutex, no lock shared between stacks, and allocates nothing.
// mu_gateway_rate_limited_total counts the refusals by reason (rate,
// concurrency).
//
// # Metering (design §8)
//
// Every request whose URL names an installed stack produces, per request,
// one usage.GatewayRequests record of amount 1 and one
// usage.GatewayTrafficBytes record of
//
//	request:  len(escaped URL path) + len(raw query)
//	          + Σ len(name)+len(value) over the request headers, Host included
//	          + body bytes read
//	response: Σ len(name)+len(value) over the response headers the gateway
//	          sets (Content-Length and Content-Type included; Date and
//	          Connection, which net/http adds, are not)
//	          + body bytes sent (none for HEAD, 204, 304)
//
// whatever the status (404 for an unknown path of the stack, 405, 400 for
// a malformed query — checked before the body is read, so only the request
// line and headers count —, 413 and 5xx included; a Retry-After the
// gateway sets counts as a response header). A disabled stack is billed
// for nothing (its 402s and 404s
// included). A request refused by the stack's limits (429 rate_limited or
// too_many_requests_in_flight) is billed nothing either, neither a
// request nor traffic: it is refused to protect the region from the
// stack's traffic, costs the gateway next to nothing, and is typically
// sent by someone other than the stack's owner, who cannot prevent it;
// billing it would let anyone drain a stack's escrow at the gateway's
// full speed rather than at the stack's rate. It still counts in the
// stack's responses (4xx). A request whose client disconnects before the answer is billed
// its request bytes only. Requests refused before the stack is known (431, unknown stack)
// are not billed. Records carry idempotency keys from usage.Keys
// ("gateway/<node>/<start>/<seq>") and are queued before the response body
// is written; a background batcher sends them to the usage.Sink and retries
// a failed batch with the same keys, so usage adds no latency and is not
// lost (Close flushes; FlushUsage waits for it).
//
// # Connections
//
// Config.MaxConnections (max_connections, default 10000; 0: no cap) caps
// the client connections the public listener holds open, idle keep-alive
// ones included (limit.go): further clients are not accepted but wait in
// the kernel's accept queue, the listen backlog (connected, nothing read
// or answered, no goroutine or buffer spent on them), until an open one
// closes; once the backlog is full the kernel completes no further
// handshakes. Every gRPC server (this gateway's admin API included) bounds
// the messages it receives and sends to max_message_bytes (libs/service).
//
// # Stack status and logs
//
// Two public endpoints under /_mu/stacks/ (StacksPath) tell a deployer
// (`mu deploy`, `mu logs`) what the region serves; neither is metered.
//
// GET (or HEAD) /_mu/stacks/{stack_id} answers 200 with StackStatus:
//
//	{"stack":"<base58>","revision":3,"enabled":true,"disabled_reason":"",
//	 "owner":{"node":"runtime-1","revision":3,"deployed":true,"error":""},
//	 "responses":[{"start":"2026-01-02T03:00:00Z","2xx":120,"3xx":0,"4xx":4,"5xx":1}]}
//
// revision, enabled and disabled_reason are the gateway's own routing
// state (as GatewayService.Routes); owner is what the stack's first
// candidate runtime answers to RuntimeService.Status within
// Config.StatusTimeout: deployed when it has the stack, at revision. A
// runtime that cannot be asked fills owner.error (the answer stays 200);
// one that does not have the stack is deployed=false with no error. A
// deploy of revision N is served once revision >= N, owner.deployed and
// owner.revision >= N. responses counts the stack's requests this gateway
// answered, by status class, in hourly buckets aligned to the hour (UTC)
// over the last Config.ResponseHistory (24h by default, the current hour
// included; 0 turns counting off and responses is []): oldest first,
// only the hours with any count. Every answer to the stack's URLs counts,
// the gateway's own errors too (404 of an unknown gateway or path, 405,
// 402 of a disabled stack, 503 with no runtime, 499 as 4xx); requests
// refused before the stack is known (431, an unknown stack, shutting
// down) and the /_mu/ endpoints are no stack's. The counts are this
// gateway's and in memory only: behind several gateways each has its
// share, and a restart or the stack's removal starts them afresh. Each
// stack's counts are a fixed ring of ResponseHistory/1h buckets, counted
// with atomic adds on the request path. Unknown or malformed stack: 404
// stack_not_found; other methods: 405.
//
// GET /_mu/stacks/{stack_id}/logs streams the stack's function logs from
// its owner runtime (RuntimeService.StreamLogs) as NDJSON
// (Content-Type application/x-ndjson), one LogLine per line, flushed per
// line:
//
//	{"time":"2026-01-02T03:04:05.000000006Z","stack":"<base58>","function":"api.get",
//	 "level":"info","source":"log","body":"...","node":"runtime-1","dropped":0,
//	 "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
//
// trace_id is there when the call that wrote the line was traced (see
// Traces).
//
// Query: function (an assembly, or assembly.function), tail (the recent
// lines to send first, at most Config.LogsMaxTail, which is also the
// default; the runtime keeps its log_history_lines per stack) and follow
// (1 or true: then live lines until the client leaves or the gateway
// closes; otherwise the response ends after the recent lines). A followed
// stream whose runtime becomes UNAVAILABLE (it shut down or left, and the
// stack moved) reconnects every Config.LogsReconnectDelay to the stack's
// first candidate then and goes on without history. A stream that breaks
// otherwise ends with a line {"error":{"kind":...,"message":...}}. Close
// ends open streams at once (they do not hold the shutdown). Each line is
// written within WriteTimeout of its own.
//
// The request must be signed by the stack's owner, the developer key that
// posted it on the ledger (libs/reqsign: Mu-Public-Key, Mu-Timestamp,
// Mu-Signature over the method, the path and the query), with a timestamp
// within Config.LogsMaxSkew. Missing, malformed, wrong or stale: 401
// unauthorized with WWW-Authenticate: Mu-Signature. Valid but another key:
// 403 forbidden ("signed by X, stack S is owned by Y"). The gateway knows
// owners from the chain; a stack given to it through PutStack (a gateway
// without a chain indexer) has none, and its logs get 403 ("the gateway
// does not know the owner of stack S") unless Config.LogsAllowUnsigned
// serves them unsigned. `mu run` posts its stack on its local ledger, so
// its gateway knows the owner: the project's developer key signs. Then:
// a malformed query or a tail over the maximum 400; Config.LogsMaxStreams
// streams already open 429 too_many_log_streams; no runtime for the stack
// 503 runtime_unavailable with Retry-After. The gauge
// mu_gateway_log_streams counts open streams.
//
// # Traces
//
// With tracing on (Deps.TracerProvider, or otlp_endpoint; off by default)
// each stack request is a span "gateway route" (server kind) with the
// attributes http.request.method, mu.stack, mu.gateway, mu.endpoint (the
// matched template), mu.function and http.response.status_code; a 5xx is
// an error. A request with a W3C traceparent header continues that trace
// (its sampling decision too); without one it starts a trace, sampled at
// trace_sample_ratio. The runtime call is a child: over gRPC through the
// client stats handler (service.TraceDialOptions), in process through the
// context, so the trace nests the same either way. /_mu/ requests get no
// span. With tracing off nothing is started, and the traceparent and
// tracestate headers are handed on to the runtime as gRPC metadata as
// they came, so a traced runtime behind an untraced gateway continues
// the client's trace.
//
// # Operations
//
// On the public port, /_mu/health answers 200 {"status":"ok"} (503 while
// closing; base58 stack ids never contain '_', so /_mu/ never collides with
// a stack). Metrics, /healthz and /readyz are on the admin HTTP port only.
// Metrics:
// mu_gateway_http_requests_total and mu_gateway_http_request_duration_seconds
// by code_class, mu_gateway_errors_total by kind, mu_gateway_stacks,
// mu_gateway_stacks_disabled, mu_gateway_log_streams, mu_gateway_usage_pending_records,
// mu_gateway_usage_report_failures_total, mu_gateway_invoke_retries_total
// by method, mu_gateway_rate_limited_total by reason (rate, concurrency), mu_gateway_owner_changes_total, mu_gateway_cluster_members
// (live members of the list, every role, this gateway included) and
// mu_gateway_cluster_runtimes (the runtimes stacks are placed on; both 0
// when not clustered), mu_gateway_chain_synced (1 once
// the stack, region and escrow snapshots are in; it stays 1 while the
// indexer is unreachable) and mu_gateway_chain_sequence, plus the gRPC server metrics
// (grpc_server_*) and the Go and process collectors. The admin gRPC port
// serves mu.gateway.v1.GatewayService, grpc.health.v1 and server
// reflection.
package gateway
