package mudb

import (
	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

// runtimeOnly are the calls a runtime makes on a stack's behalf: its
// functions' reads and writes and a deploy's tables.
var runtimeOnly = []certs.Role{certs.RoleRuntime}

// rules say which certificate roles may call muDB over mTLS (see
// service.Rules): only runtimes touch a stack's data; an operator (the
// region package on stack deletion, the CLI) may also list, drop and clear
// tables, as runtimes do when a stack is deleted.
var rules = service.Rules{
	"/mu.mudb.v1.MudbService/*":                       runtimeOnly,
	mudbv1.MudbService_TableList_FullMethodName:       {certs.RoleRuntime, certs.RoleOperator},
	mudbv1.MudbService_DeleteTable_FullMethodName:     {certs.RoleRuntime, certs.RoleOperator},
	mudbv1.MudbService_DeleteStackData_FullMethodName: {certs.RoleRuntime, certs.RoleOperator},
}
