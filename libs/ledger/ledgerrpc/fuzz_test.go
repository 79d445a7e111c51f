package ledgerrpc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
)

// FuzzServer_AnyRequestGetsATypedAnswer sends arbitrary protobuf bytes as
// the request of any LedgerService RPC (the first byte picks which) to a
// server over a real local ledger: whatever arrives, the server answers
// with a result or a typed error, never a panic, never UNKNOWN or
// INTERNAL. These are the ledger's instructions as another process sends
// them.
func FuzzServer_AnyRequestGetsATypedAnswer(f *testing.F) {
	methods := ledgerv1.File_mu_ledger_v1_ledger_proto.Services().ByName("LedgerService").Methods()
	f.Add(byte(0), []byte{})
	f.Add(byte(3), []byte{0x0a, 0x04, 'a', 'c', 'm', 'e'})         // CreateProvider name "acme", no signature
	f.Add(byte(6), []byte{0x10, 0x07, 0x1a, 0x02, 0x0a, 0x00})     // CreateRegion number 7, an empty config
	f.Add(byte(12), []byte{0x12, 0x20})                            // CreateStack, a truncated field
	f.Add(byte(15), []byte{0x22, 0x44, 0x0a, 0x20, 0x12, 0x20, 1}) // UpdateUsage, a short signer
	l := openLocal(f)
	cc, _ := serve(f, l)
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		m := methods.Get(int(which) % methods.Len())
		req := newMessage(t, m.Input())
		if err := proto.Unmarshal(data, req); err != nil {
			return // not a message of this type: the transport would refuse it
		}
		resp := newMessage(t, m.Output())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := cc.Invoke(ctx, "/mu.ledger.v1.LedgerService/"+string(m.Name()), req, resp)
		switch status.Code(err) {
		case codes.Unknown, codes.Internal:
			t.Fatalf("%s(%v): %v", m.Name(), req, err)
		}
	})
}

func newMessage(t *testing.T, d protoreflect.MessageDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}
