// Package apitest checks the generated mu APIs as a whole: every service has exactly the RPCs and
// streaming shapes other packages code against, the fixed parts of the API keep their field
// numbers, messages survive the wire, and the streaming shapes work over a real gRPC connection.
package apitest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// Streaming shapes of an RPC.
const (
	unary        = ""
	clientStream = "client-stream"
	serverStream = "server-stream"
)

type serviceSpec struct {
	file    protoreflect.FileDescriptor
	grpc    *grpc.ServiceDesc
	name    protoreflect.FullName
	methods map[string]string // RPC name -> streaming shape
}

var services = []serviceSpec{
	{
		file: runtimev1.File_mu_runtime_v1_runtime_proto,
		grpc: &runtimev1.RuntimeService_ServiceDesc,
		name: "mu.runtime.v1.RuntimeService",
		methods: map[string]string{
			"Invoke": unary, "Deploy": unary, "Undeploy": unary, "Status": unary,
			"StreamLogs": serverStream,
		},
	},
	{
		file:    gatewayv1.File_mu_gateway_v1_gateway_proto,
		grpc:    &gatewayv1.GatewayService_ServiceDesc,
		name:    "mu.gateway.v1.GatewayService",
		methods: map[string]string{"Routes": unary, "Status": unary, "PutStack": unary, "RemoveStack": unary, "Placement": unary},
	},
	{
		file: mudbv1.File_mu_mudb_v1_mudb_proto,
		grpc: &mudbv1.MudbService_ServiceDesc,
		name: "mu.mudb.v1.MudbService",
		methods: map[string]string{
			"CreateTable": unary, "DeleteTable": unary, "DeleteStackData": unary, "TableList": unary,
			"Put": unary, "Get": unary, "Delete": unary, "DeleteByPrefix": unary,
			"Scan": unary, "ScanKeys": unary, "CompareAndSwap": unary,
			"BatchPut": unary, "BatchGet": unary, "BatchDelete": unary,
			"BatchScan": unary, "BatchScanKeys": unary,
		},
	},
	{
		file: storagev1.File_mu_storage_v1_storage_proto,
		grpc: &storagev1.StorageService_ServiceDesc,
		name: "mu.storage.v1.StorageService",
		methods: map[string]string{
			"CreateBox": unary, "DeleteBox": unary, "ListBoxes": unary, "DeleteStackData": unary,
			"Put": clientStream, "Get": serverStream, "Delete": unary, "List": unary,
			"UploadBinary": clientStream, "GetBinary": serverStream, "SignURL": unary,
		},
	},
	{
		file: chainindexerv1.File_mu_chainindexer_v1_chainindexer_proto,
		grpc: &chainindexerv1.ChainIndexerService_ServiceDesc,
		name: "mu.chainindexer.v1.ChainIndexerService",
		methods: map[string]string{
			"ListProviders": unary, "WatchProviders": serverStream,
			"ListRegions": unary, "WatchRegions": serverStream,
			"ListStacks": unary, "WatchStacks": serverStream,
			"ListEscrows": unary, "WatchEscrows": serverStream,
			"GetStatus": unary,
		},
	},
	{
		file: billingv1.File_mu_billing_v1_billing_proto,
		grpc: &billingv1.BillingService_ServiceDesc,
		name: "mu.billing.v1.BillingService",
		methods: map[string]string{
			"ReportUsage": unary, "GetUsage": unary, "ListUnsettled": unary,
			"Settle": unary, "ListSettlements": unary,
			"ReportReceipts": unary, "GetReceipt": unary, "ListReceipts": unary,
		},
	},
	{
		file: ledgerv1.File_mu_ledger_v1_ledger_proto,
		grpc: &ledgerv1.LedgerService_ServiceDesc,
		name: "mu.ledger.v1.LedgerService",
		methods: map[string]string{
			"Initialize": unary, "Mint": unary, "Transfer": unary,
			"CreateProvider": unary, "AuthorizeProvider": unary, "UpdateProviderDeposit": unary,
			"CreateRegion": unary, "UpdateRegion": unary, "CreateUsageSigner": unary,
			"CreateEscrow": unary, "RechargeEscrow": unary, "WithdrawEscrow": unary,
			"CreateStack": unary, "UpdateStack": unary, "DeleteStack": unary,
			"UpdateUsage": unary, "GetState": unary, "GetBalance": unary, "GetSlot": unary,
			"GetCapabilities": unary,
		},
	},
}

func shape(client, server bool) string {
	switch {
	case client && server:
		return "bidi"
	case client:
		return clientStream
	case server:
		return serverStream
	}
	return unary
}

func TestServices_HaveExactlyTheExpectedRPCs(t *testing.T) {
	for _, s := range services {
		t.Run(string(s.name), func(t *testing.T) {
			if s.file.Services().Len() != 1 {
				t.Fatalf("%s declares %d services, want 1", s.file.Path(), s.file.Services().Len())
			}
			sd := s.file.Services().Get(0)
			if sd.FullName() != s.name {
				t.Fatalf("service = %s, want %s", sd.FullName(), s.name)
			}
			got := map[string]string{}
			for i := 0; i < sd.Methods().Len(); i++ {
				m := sd.Methods().Get(i)
				got[string(m.Name())] = shape(m.IsStreamingClient(), m.IsStreamingServer())
				// buf STANDARD lint: <Rpc>Request / <Rpc>Response in the service's package.
				if want := s.file.Package().Append(m.Name() + "Request"); m.Input().FullName() != want {
					t.Errorf("%s input = %s, want %s", m.Name(), m.Input().FullName(), want)
				}
				if want := s.file.Package().Append(m.Name() + "Response"); m.Output().FullName() != want {
					t.Errorf("%s output = %s, want %s", m.Name(), m.Output().FullName(), want)
				}
			}
			if diff := mapDiff(s.methods, got); diff != "" {
				t.Errorf("descriptor RPCs differ (want/got):\n%s", diff)
			}

			// The gRPC service description registered by the generated code agrees.
			if s.grpc.ServiceName != string(s.name) {
				t.Errorf("grpc ServiceName = %q, want %q", s.grpc.ServiceName, s.name)
			}
			fromGRPC := map[string]string{}
			for _, m := range s.grpc.Methods {
				fromGRPC[m.MethodName] = unary
			}
			for _, st := range s.grpc.Streams {
				fromGRPC[st.StreamName] = shape(st.ClientStreams, st.ServerStreams)
			}
			if diff := mapDiff(s.methods, fromGRPC); diff != "" {
				t.Errorf("grpc.ServiceDesc RPCs differ (want/got):\n%s", diff)
			}
		})
	}
}

func mapDiff(want, got map[string]string) string {
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		if w != g || wok != gok {
			b.WriteString("  " + k + ": want " + describe(w, wok) + ", got " + describe(g, gok) + "\n")
		}
	}
	return b.String()
}

func describe(shape string, ok bool) string {
	switch {
	case !ok:
		return "(absent)"
	case shape == unary:
		return "unary"
	}
	return shape
}

// TestFixedAPI_FieldNumbers pins the parts of the API that other packages were promised
// (types, runtime, gateway): renaming or renumbering any of these fields breaks callers.
func TestFixedAPI_FieldNumbers(t *testing.T) {
	fixed := map[proto.Message]map[string]protoreflect.FieldNumber{
		&typesv1.Header{}:       {"name": 1, "value": 2},
		&typesv1.HttpRequest{}:  {"method": 1, "path_params": 2, "query_params": 3, "headers": 4, "body": 5},
		&typesv1.HttpResponse{}: {"status": 1, "headers": 2, "body": 3},

		&runtimev1.InvokeRequest{}:      {"stack_id": 1, "function": 2, "request": 3},
		&runtimev1.InvokeResponse{}:     {"response": 1, "fuel_used": 2, "mb_instructions": 3, "error": 4},
		&runtimev1.InvokeError{}:        {"kind": 1, "message": 2},
		&runtimev1.DeployRequest{}:      {"stack": 1, "binaries": 2},
		&runtimev1.Stack{}:              {"id": 1, "revision": 2, "manifest": 3},
		&runtimev1.FunctionBinary{}:     {"binary_id": 1, "wasm": 2},
		&runtimev1.DeployResponse{}:     {"revision": 1},
		&runtimev1.UndeployRequest{}:    {"stack_id": 1},
		&runtimev1.UndeployResponse{}:   {},
		&runtimev1.StatusRequest{}:      {"stack_id": 1},
		&runtimev1.StatusResponse{}:     {"stacks": 1, "node_id": 2, "node_name": 3, "generation": 4, "grpc_addr": 5, "members": 6, "owned_stack_ids": 7, "placed_stacks": 8},
		&runtimev1.RuntimeMember{}:      {"name": 1, "node_id": 2, "grpc_addr": 3, "generation": 4, "suspect": 5, "self": 6, "owned_stacks": 7},
		&runtimev1.StackStatus{}:        {"stack_id": 1, "revision": 2, "functions": 3, "owner": 4, "owned": 5},
		&runtimev1.FunctionStatus{}:     {"name": 1, "binary_id": 2, "warm_instances": 3, "invocations": 4},
		&runtimev1.StreamLogsRequest{}:  {"stack_id": 1, "function": 2, "tail": 3, "no_follow": 4},
		&runtimev1.StreamLogsResponse{}: {"entry": 1},
		&runtimev1.LogEntry{}:           {"stack_id": 1, "function": 2, "level": 3, "body": 4, "time": 5, "source": 6, "dropped": 7, "node": 8, "trace_id": 9},

		&gatewayv1.RoutesRequest{}:  {"stack_id": 1},
		&gatewayv1.RoutesResponse{}: {"routes": 1, "revision": 2, "enabled": 3, "disabled_reason": 4},
		&gatewayv1.Route{}:          {"gateway": 1, "method": 2, "path": 3, "function": 4, "url": 5},

		&gatewayv1.PutStackRequest{}:     {"stack_id": 1, "revision": 2, "manifest_yaml": 3},
		&gatewayv1.PutStackResponse{}:    {},
		&gatewayv1.RemoveStackRequest{}:  {"stack_id": 1},
		&gatewayv1.RemoveStackResponse{}: {},

		&gatewayv1.StatusResponse{}: {
			"node_name": 1, "stacks": 2, "disabled_stacks": 3, "in_flight": 4, "public_url": 5,
			"cluster_members": 6, "cluster_runtimes": 7, "cluster_addr": 8,
		},
		&gatewayv1.PlacementRequest{}:  {"stack_ids": 1, "page_size": 2, "page_token": 3},
		&gatewayv1.PlacementResponse{}: {"mode": 1, "members": 2, "stacks": 3, "next_page_token": 4},
		&gatewayv1.PlacementMember{}: {
			"name": 1, "node_id": 2, "grpc_addr": 3, "generation": 4, "suspect": 5, "owned_stacks": 6, "share": 7,
		},
		&gatewayv1.StackPlacement{}: {"stack_id": 1, "served": 2, "owner": 3, "candidates": 4},
		&gatewayv1.PlacementNode{}:  {"name": 1, "node_id": 2},
	}
	for msg, fields := range fixed {
		md := msg.ProtoReflect().Descriptor()
		if md.Fields().Len() != len(fields) {
			t.Errorf("%s has %d fields, want %d", md.FullName(), md.Fields().Len(), len(fields))
		}
		for name, num := range fields {
			fd := md.Fields().ByName(protoreflect.Name(name))
			if fd == nil {
				t.Errorf("%s.%s missing", md.FullName(), name)
				continue
			}
			if fd.Number() != num {
				t.Errorf("%s.%s = %d, want %d", md.FullName(), name, fd.Number(), num)
			}
		}
	}

	enums := map[protoreflect.EnumDescriptor][]string{
		runtimev1.InvokeError_KIND_UNSPECIFIED.Descriptor(): {
			"KIND_UNSPECIFIED", "KIND_FUEL_EXHAUSTED", "KIND_DEADLINE_EXCEEDED", "KIND_MEMORY_LIMIT",
			"KIND_CRASH", "KIND_PROTOCOL", "KIND_FUNCTION_ERROR",
		},
		runtimev1.LogLevel_LOG_LEVEL_UNSPECIFIED.Descriptor(): {
			"LOG_LEVEL_UNSPECIFIED", "LOG_LEVEL_TRACE", "LOG_LEVEL_DEBUG", "LOG_LEVEL_INFO",
			"LOG_LEVEL_WARN", "LOG_LEVEL_ERROR",
		},
		runtimev1.LogSource_LOG_SOURCE_UNSPECIFIED.Descriptor(): {
			"LOG_SOURCE_UNSPECIFIED", "LOG_SOURCE_LOG", "LOG_SOURCE_STDERR", "LOG_SOURCE_RUNTIME",
		},
		gatewayv1.PlacementMode_PLACEMENT_MODE_UNSPECIFIED.Descriptor(): {
			"PLACEMENT_MODE_UNSPECIFIED", "PLACEMENT_MODE_STATIC", "PLACEMENT_MODE_CLUSTER",
		},
	}
	for ed, names := range enums {
		if ed.Values().Len() != len(names) {
			t.Errorf("%s has %d values, want %d", ed.FullName(), ed.Values().Len(), len(names))
		}
		for i, name := range names {
			v := ed.Values().ByName(protoreflect.Name(name))
			if v == nil || v.Number() != protoreflect.EnumNumber(i) {
				t.Errorf("%s.%s should be %d", ed.FullName(), name, i)
			}
		}
	}
}

var (
	stackID = bytes.Repeat([]byte{0xab}, 32)
	someKey = bytes.Repeat([]byte{0x01}, 32)
	when    = timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))
)

// One populated message of every service, covering maps, repeated fields, oneofs, optional
// fields, enums, nested and well-known types.
func sampleMessages() []proto.Message {
	return []proto.Message{
		&runtimev1.InvokeRequest{
			StackId:  stackID,
			Function: "greeter_function.greet_user",
			Request: &typesv1.HttpRequest{
				Method:      "GET",
				PathParams:  map[string]string{"name": "alice"},
				QueryParams: map[string]string{"lang": "en"},
				Headers:     []*typesv1.Header{{Name: "Accept", Value: "text/plain"}, {Name: "Accept", Value: "*/*"}},
				Body:        []byte("hi"),
			},
		},
		&runtimev1.InvokeResponse{
			FuelUsed: 12345, MbInstructions: 12345 * 256,
			Error: &runtimev1.InvokeError{Kind: runtimev1.InvokeError_KIND_FUEL_EXHAUSTED, Message: "out of fuel"},
		},
		&runtimev1.StreamLogsResponse{Entry: &runtimev1.LogEntry{
			StackId: stackID, Function: "f.g", Level: runtimev1.LogLevel_LOG_LEVEL_WARN, Body: "careful",
			Time: when, Source: runtimev1.LogSource_LOG_SOURCE_STDERR, Dropped: 3, Node: "runtime-1",
			TraceId: "4bf92f3577b34da6a3ce929d0e0e4736",
		}},
		&gatewayv1.RoutesResponse{Routes: []*gatewayv1.Route{{
			Gateway: "greeting", Method: "GET", Path: "/greet/{name}",
			Function: "greeter_function.greet_user", Url: "http://127.0.0.1:8080/x/greeting/greet/{name}",
		}}},
		&gatewayv1.PlacementResponse{
			Mode: gatewayv1.PlacementMode_PLACEMENT_MODE_CLUSTER,
			Members: []*gatewayv1.PlacementMember{{
				Name: "runtime-1", NodeId: "ab12", GrpcAddr: "10.0.0.1:12091", Generation: 1767322245000000006,
				Suspect: true, OwnedStacks: 3, Share: 0.25,
			}},
			Stacks: []*gatewayv1.StackPlacement{{
				StackId: stackID, Served: true, Owner: &gatewayv1.PlacementNode{Name: "runtime-1", NodeId: "ab12"},
				Candidates: []*gatewayv1.PlacementNode{{Name: "runtime-1", NodeId: "ab12"}, {Name: "runtime-2", NodeId: "cd34"}},
			}},
			NextPageToken: "next",
		},
		&mudbv1.PutRequest{
			StackId: stackID, Table: "todos", Key: someKey, Value: []byte("v"), IsAtomic: true,
			Ttl: durationpb.New(90 * time.Second),
		},
		&mudbv1.BatchScanResponse{
			Results: []*mudbv1.BatchScanResult{{
				Table: "todos", Items: []*mudbv1.KeyValue{{Key: []byte("a"), Value: []byte("1")}},
				NextCursor: []byte{0, 1, 2},
			}},
			Ops: &mudbv1.MeteredOps{Reads: 1},
		},
		&storagev1.PutRequest{Payload: &storagev1.PutRequest_Header{Header: &storagev1.PutHeader{
			StackId: stackID, Box: "attachments", Key: "a/b.txt", ContentType: "text/plain",
			Size: proto.Uint64(3),
		}}},
		&storagev1.GetResponse{Payload: &storagev1.GetResponse_Chunk{Chunk: []byte("abc")}},
		&storagev1.UploadBinaryRequest{Payload: &storagev1.UploadBinaryRequest_Header{
			Header: &storagev1.UploadBinaryHeader{
				DeveloperPublicKey: someKey, Signature: bytes.Repeat([]byte{2}, 64),
			},
		}},
		&chainindexerv1.WatchRegionsResponse{
			Change: &chainindexerv1.ChangeMeta{Type: chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT, Sequence: 42, Slot: 7},
			Region: &chainindexerv1.Region{
				Id: someKey, ProviderId: someKey, RegionNum: 1, Name: "eu1", BaseUrl: "https://eu1.example",
				Rates: &typesv1.Rates{
					FunctionPerTeraMbInstructions: 1, DbPerMillionReads: 2, DbPerMillionWrites: 3,
					DbPerGibMonthStored: 4, GatewayPerMillionRequests: 5, GatewayPerGibTraffic: 6,
					StoragePerGibMonthStored: 7, StoragePerGibTraffic: 8,
				},
				MinEscrowBalance: 1_000_000, MaxGigaInstructionsPerCall: 10,
				MinMemoryLimitBytes: 1 << 20, MaxMemoryLimitBytes: 1 << 30,
			},
		},
		&chainindexerv1.WatchStacksResponse{
			Change: &chainindexerv1.ChangeMeta{Type: chainindexerv1.ChangeType_CHANGE_TYPE_DELETE, Sequence: 43},
			Stack: &chainindexerv1.Stack{
				Id: stackID, Owner: someKey, RegionId: someKey, Seed: 9, Revision: 2,
				Manifest: []byte("name: x\n"), State: chainindexerv1.StackState_STACK_STATE_DELETED,
			},
		},
		&billingv1.ReportUsageRequest{Records: []*billingv1.UsageRecord{{
			StackId: stackID, Kind: typesv1.UsageKind_USAGE_KIND_DB_WRITES, Amount: 2,
			IdempotencyKey: "mudb/node1/0001", RegionId: someKey, Time: when,
		}}},
		&billingv1.GetUsageResponse{Totals: []*billingv1.UsageTotal{{
			Kind:   typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS,
			Amount: &typesv1.Uint128{Hi: 1, Lo: 2},
		}}},
	}
}

func TestMessages_RoundTripBinaryAndJSON(t *testing.T) {
	for _, msg := range sampleMessages() {
		name := string(msg.ProtoReflect().Descriptor().FullName())
		t.Run(name, func(t *testing.T) {
			wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got := msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(wire, got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !proto.Equal(msg, got) {
				t.Errorf("binary round trip changed the message:\nwant %v\ngot  %v", msg, got)
			}

			js, err := protojson.Marshal(msg)
			if err != nil {
				t.Fatalf("protojson.Marshal: %v", err)
			}
			got = msg.ProtoReflect().New().Interface()
			if err := protojson.Unmarshal(js, got); err != nil {
				t.Fatalf("protojson.Unmarshal: %v", err)
			}
			if !proto.Equal(msg, got) {
				t.Errorf("JSON round trip changed the message:\nwant %v\ngot  %v", msg, got)
			}
		})
	}
}

// Optional bytes keep "absent" apart from "present and empty" on the wire; CompareAndSwap
// depends on it (unset previous_value = the key must not exist).
func TestCompareAndSwap_PreviousValuePresenceSurvivesTheWire(t *testing.T) {
	for _, tc := range []struct {
		name string
		prev []byte
		set  bool
	}{
		{"unset", nil, false},
		{"empty", []byte{}, true},
		{"value", []byte("old"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := proto.Marshal(&mudbv1.CompareAndSwapRequest{
				StackId: stackID, Table: "t", Key: []byte("k"), NewValue: []byte("new"), PreviousValue: tc.prev,
			})
			if err != nil {
				t.Fatal(err)
			}
			var got mudbv1.CompareAndSwapRequest
			if err := proto.Unmarshal(wire, &got); err != nil {
				t.Fatal(err)
			}
			fd := got.ProtoReflect().Descriptor().Fields().ByName("previous_value")
			if has := got.ProtoReflect().Has(fd); has != tc.set {
				t.Errorf("Has(previous_value) = %v, want %v", has, tc.set)
			}
			if (got.PreviousValue != nil) != tc.set || !bytes.Equal(got.PreviousValue, tc.prev) {
				t.Errorf("PreviousValue = %#v, want %#v", got.PreviousValue, tc.prev)
			}
		})
	}
}

// memStorage is a minimal in-memory StorageService: enough to drive the client-streaming Put and
// the server-streaming Get (with a byte range) over a real gRPC connection.
type memStorage struct {
	storagev1.UnimplementedStorageServiceServer
	objects map[string][]byte
}

const chunkSize = 4 // tiny, so every test object spans several chunks

func (s *memStorage) Put(stream grpc.ClientStreamingServer[storagev1.PutRequest, storagev1.PutResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "first message must be the header")
	}
	var body []byte
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if msg.GetHeader() != nil {
			return status.Error(codes.InvalidArgument, "header after the first message")
		}
		body = append(body, msg.GetChunk()...)
	}
	if h.Size != nil && h.GetSize() != uint64(len(body)) {
		return status.Errorf(codes.InvalidArgument, "size %d, header said %d", len(body), h.GetSize())
	}
	s.objects[h.GetBox()+"/"+h.GetKey()] = body
	return stream.SendAndClose(&storagev1.PutResponse{Object: &storagev1.ObjectInfo{
		Key: h.GetKey(), Size: uint64(len(body)), ContentType: h.GetContentType(),
	}})
}

func (s *memStorage) Get(req *storagev1.GetRequest, stream grpc.ServerStreamingServer[storagev1.GetResponse]) error {
	body, ok := s.objects[req.GetBox()+"/"+req.GetKey()]
	if !ok {
		return status.Error(codes.NotFound, "no such object")
	}
	if req.GetOffset() > uint64(len(body)) {
		return status.Error(codes.OutOfRange, "offset past the end")
	}
	part := body[req.GetOffset():]
	if req.Length != nil && req.GetLength() < uint64(len(part)) {
		part = part[:req.GetLength()]
	}
	info := &storagev1.GetInfo{
		Object: &storagev1.ObjectInfo{Key: req.GetKey(), Size: uint64(len(body))},
		Offset: req.GetOffset(), Length: uint64(len(part)),
	}
	if err := stream.Send(&storagev1.GetResponse{Payload: &storagev1.GetResponse_Info{Info: info}}); err != nil {
		return err
	}
	for len(part) > 0 {
		n := min(chunkSize, len(part))
		if err := stream.Send(&storagev1.GetResponse{Payload: &storagev1.GetResponse_Chunk{Chunk: part[:n]}}); err != nil {
			return err
		}
		part = part[n:]
	}
	return nil
}

func TestStorage_StreamingPutAndRangedGetOverGRPC(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	storagev1.RegisterStorageServiceServer(srv, &memStorage{objects: map[string][]byte{}})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := storagev1.NewStorageServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	body := []byte("hello, streaming world")
	put, err := client.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := put.Send(&storagev1.PutRequest{Payload: &storagev1.PutRequest_Header{Header: &storagev1.PutHeader{
		StackId: stackID, Box: "attachments", Key: "greeting.txt", ContentType: "text/plain",
		Size: proto.Uint64(uint64(len(body))),
	}}}); err != nil {
		t.Fatal(err)
	}
	for rest := body; len(rest) > 0; {
		n := min(chunkSize, len(rest))
		if err := put.Send(&storagev1.PutRequest{Payload: &storagev1.PutRequest_Chunk{Chunk: rest[:n]}}); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	res, err := put.CloseAndRecv()
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if res.GetObject().GetSize() != uint64(len(body)) {
		t.Errorf("stored size = %d, want %d", res.GetObject().GetSize(), len(body))
	}

	for _, tc := range []struct {
		name   string
		offset uint64
		length *uint64
		want   string
	}{
		{"whole", 0, nil, string(body)},
		{"range", 7, proto.Uint64(9), "streaming"},
		{"tail", 17, nil, "world"},
		{"past end is cut", 17, proto.Uint64(100), "world"},
		{"at end", uint64(len(body)), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get, err := client.Get(ctx, &storagev1.GetRequest{
				StackId: stackID, Box: "attachments", Key: "greeting.txt", Offset: tc.offset, Length: tc.length,
			})
			if err != nil {
				t.Fatal(err)
			}
			first, err := get.Recv()
			if err != nil {
				t.Fatalf("first message: %v", err)
			}
			info := first.GetInfo()
			if info == nil {
				t.Fatalf("first message is not info: %v", first)
			}
			var got []byte
			for {
				msg, err := get.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, msg.GetChunk()...)
			}
			if string(got) != tc.want {
				t.Errorf("body = %q, want %q", got, tc.want)
			}
			if info.GetLength() != uint64(len(got)) || info.GetOffset() != tc.offset {
				t.Errorf("info = offset %d length %d, want %d %d", info.GetOffset(), info.GetLength(), tc.offset, len(got))
			}
		})
	}

	get, err := client.Get(ctx, &storagev1.GetRequest{StackId: stackID, Box: "attachments", Key: "greeting.txt", Offset: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get.Recv(); status.Code(err) != codes.OutOfRange {
		t.Errorf("offset past the end: got %v, want OutOfRange", err)
	}
}
