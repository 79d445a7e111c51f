// Package storage is the storage service: storage boxes per stack and function
// binaries on one S3 bucket (minio-go), served over gRPC as
// mu.storage.v1.StorageService (proto/mu/storage/v1) and over HTTP for uploads
// and public reads.
//
// Until its API lands with its issue, the service is the empty shell of the
// service contract (libs/service): health, reflection and the admin port.
package storage
