package billing

import (
	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// rules say which certificate roles may call billing over mTLS (see
// service.Rules): every metered service reports usage, runtimes report
// their call receipts, and the queries and settlement are an operator's
// (the CLI's usage, console and audit commands; the region package).
var rules = service.Rules{
	billingv1.BillingService_ReportUsage_FullMethodName:    {certs.RoleGateway, certs.RoleRuntime, certs.RoleMudb, certs.RoleStorage},
	billingv1.BillingService_ReportReceipts_FullMethodName: {certs.RoleRuntime},
	"/mu.billing.v1.BillingService/*":                      {certs.RoleOperator},
}
