// Package billingv1 is the generated Go code for mu.billing.v1, the billing API: BillingService
// with usage reports, usage queries and settlements.
//
// The API and its semantics are documented in billing.proto beside this file; regenerate with `make
// proto` after editing it. Everything else in this package is generated.
package billingv1
