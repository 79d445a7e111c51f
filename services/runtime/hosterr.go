package runtime

import (
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// What the db and storage bridges share in answering a function's host
// requests: the error text a function sees, and the request counter.

// maxHostErrorText bounds the error text of a DbError or StorageError reply.
const maxHostErrorText = 4096

// hostErrorText makes msg valid UTF-8 and short enough to leave room in a
// frame of maxFrame bytes, cutting it on a rune boundary.
func hostErrorText(msg string, maxFrame int) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if limit := min(maxHostErrorText, maxFrame-64); len(msg) > limit {
		k := max(limit, 0)
		for k > 0 && !utf8.RuneStart(msg[k]) {
			k--
		}
		msg = msg[:k] + " …[truncated]"
	}
	return msg
}

// serviceErrorText is what a function sees of an error from service (muDB,
// storage): the status message, which names what was involved, prefixed
// for the failures that are the service's rather than the request's.
func serviceErrorText(service string, err error) string {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable:
		return service + " is unavailable: " + st.Message()
	case codes.DeadlineExceeded:
		return service + " timed out: " + st.Message()
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return service + " failed: " + st.Message()
	}
	return st.Message()
}

// countRequest counts one host request by kind and outcome on requests,
// if the bridge has a counter.
func countRequest(requests *prometheus.CounterVec, kind, outcome string) {
	if requests != nil {
		requests.WithLabelValues(kind, outcome).Inc()
	}
}
