package storage

import (
	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
)

// rules say which certificate roles may call storage over mTLS (see
// service.Rules): only runtimes touch a stack's boxes (on its functions'
// behalf, and its deploys' boxes and binaries); an operator (the region
// package on stack deletion, the CLI's audit and uploads) may also clear a
// stack, list and drop its boxes, and upload and read binaries.
var rules = service.Rules{
	"/mu.storage.v1.StorageService/*":                       {certs.RoleRuntime},
	storagev1.StorageService_DeleteStackData_FullMethodName: {certs.RoleRuntime, certs.RoleOperator},
	storagev1.StorageService_ListBoxes_FullMethodName:       {certs.RoleRuntime, certs.RoleOperator},
	storagev1.StorageService_DeleteBox_FullMethodName:       {certs.RoleRuntime, certs.RoleOperator},
	storagev1.StorageService_UploadBinary_FullMethodName:    {certs.RoleRuntime, certs.RoleOperator},
	storagev1.StorageService_GetBinary_FullMethodName:       {certs.RoleRuntime, certs.RoleOperator},
}
