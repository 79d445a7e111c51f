// Package storage is the storage service: storage boxes per stack and function
// binaries on one S3 bucket (minio-go), served over gRPC as
// mu.storage.v1.StorageService (proto/mu/storage/v1) and over HTTP for uploads
// and public reads.
//
// The service's implementation lands with its issue; this module holds its place
// in the workspace.
package storage
