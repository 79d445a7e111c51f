package gateway

import (
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
)

// RuntimeDialOptions are the options of the gateway's connections to
// runtimes: t's credentials for a runtime server (mTLS, or plaintext) and
// fixed flow-control windows of b's grpc_stream_window and grpc_conn_window
// (service.Base explains why fixed), so a call costs no
// bandwidth-estimation ping.
func RuntimeDialOptions(b service.Base, t *service.TLS) []grpc.DialOption {
	return []grpc.DialOption{
		t.DialOption(certs.RoleRuntime),
		grpc.WithInitialWindowSize(int32(b.GRPCStreamWindow)),
		grpc.WithInitialConnWindowSize(int32(b.GRPCConnWindow)),
	}
}
