// Package storagev1 is the generated Go code for mu.storage.v1, the storage API: StorageService
// with storage boxes, objects and function binaries.
//
// The API and its semantics are documented in storage.proto beside this file; regenerate with `make
// proto` after editing it. Everything else in this package is generated.
package storagev1
