// Package storage is the storage service: storage boxes per stack and
// function binaries in one S3 bucket (minio-go) or, for `mu run`, a local
// directory, served over gRPC as mu.storage.v1.StorageService
// (proto/mu/storage/v1; its doc comments are the contract) and over a
// public HTTP API (http_addr) for binary uploads, public reads and signed
// URLs (see httpHandler in http.go for the routes).
//
// Object layout (design section 6, package internal/layout):
// s/<base58 stack>/<box>/<key> for objects, boxes/<base58 stack>/<box> for
// box markers (JSON {"public":bool,"created":time}: a box exists exactly
// when its marker does), bin/<binary id> for binaries. Every name is
// validated before an object name is built from it, so no call reaches
// another stack's objects.
//
// Metering: STORAGE_TRAFFIC_BYTES for every object byte received or sent,
// STORAGE_STORED_BYTE_SECONDS per stack every stored_report_interval, from
// per-stack totals recounted by one listing at Start and kept up to date by
// this node's writes and deletes.
package storage
