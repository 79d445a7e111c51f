// Package billing receives usage records from every service, persists them
// before acknowledging, and settles each stack's usage on the ledger, served as
// mu.billing.v1.BillingService (proto/mu/billing/v1).
//
// Until its API lands with its issue, the service is the empty shell of the
// service contract (libs/service): health, reflection and the admin port.
package billing
