// Package billing receives usage records from every service, persists them
// before acknowledging, and settles each stack's usage on the ledger, served as
// mu.billing.v1.BillingService (proto/mu/billing/v1).
//
// The service's implementation lands with its issue; this module holds its place
// in the workspace.
package billing
