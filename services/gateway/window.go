package gateway

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/service"
)

// RuntimeDialOptions are the options of the gateway's plaintext
// connections to runtimes: fixed flow-control windows of b's
// grpc_stream_window and grpc_conn_window (service.Base explains why
// fixed), so a call costs no bandwidth-estimation ping.
func RuntimeDialOptions(b service.Base) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(int32(b.GRPCStreamWindow)),
		grpc.WithInitialConnWindowSize(int32(b.GRPCConnWindow)),
	}
}
