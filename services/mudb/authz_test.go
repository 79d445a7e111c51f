package mudb

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/certs/certstest"
	"github.com/muprotocol/mu/libs/usage"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

func TestMudbTLS_OnlyRuntimesTouchAStacksDataAndOperatorsMayClearIt(t *testing.T) {
	p := certstest.New(t)
	cfg := testConfig()
	cfg.NodeName = "db-1"
	p.Secure(t, &cfg.Base, certs.RoleMudb)
	s, err := New(cfg, Deps{Usage: usage.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	client := func(role certs.Role, name string) mudbv1.MudbServiceClient {
		return mudbv1.NewMudbServiceClient(p.Dial(t, s.Addr(), certs.RoleMudb, role, name))
	}
	rt, gw, op := client(certs.RoleRuntime, "rt-1"), client(certs.RoleGateway, "gw-1"), client(certs.RoleOperator, "alice")
	ctx := context.Background()
	stack := make([]byte, 32)
	stack[0] = 9
	if _, err := rt.CreateTable(ctx, &mudbv1.CreateTableRequest{StackId: stack, Table: "t"}); err != nil {
		t.Fatalf("runtime CreateTable: %v", err)
	}
	put := &mudbv1.PutRequest{StackId: stack, Table: "t", Key: []byte("k"), Value: []byte("v")}
	if _, err := rt.Put(ctx, put); err != nil {
		t.Fatalf("runtime Put: %v", err)
	}
	for name, c := range map[string]mudbv1.MudbServiceClient{"gateway": gw, "operator": op} {
		_, err := c.Get(ctx, &mudbv1.GetRequest{StackId: stack, Table: "t", Key: []byte("k")})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "/mu.mudb.v1.MudbService/Get: allowed roles: runtime") {
			t.Errorf("%s Get: %v, want PERMISSION_DENIED naming the method and the runtime role", name, err)
		}
	}
	if _, err := gw.DeleteStackData(ctx, &mudbv1.DeleteStackDataRequest{StackId: stack}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gateway DeleteStackData: %v, want PERMISSION_DENIED", err)
	}
	resp, err := op.DeleteStackData(ctx, &mudbv1.DeleteStackDataRequest{StackId: stack})
	if err != nil || resp.GetTablesDeleted() != 1 {
		t.Errorf("operator DeleteStackData = %v, %v; want 1 table deleted", resp, err)
	}
}
