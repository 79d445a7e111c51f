package fnproto

import "math"

// RequestBounds are upper bounds on the parts of an ExecuteFunction, as
// counts of entries and sums of string bytes. A host that bounds what it
// puts into a request (a gateway's header and body limits, a manifest's
// names) uses them to work out the largest frame it can produce
// (ExecuteFunctionFrameLen) or the largest body that still fits a frame
// limit (MaxExecuteFunctionBody). Negative values count as 0.
type RequestBounds struct {
	FunctionBytes   int   // len(ExecuteFunction.Function)
	MethodBytes     int   // len(Request.Method)
	PathParams      int   // entries of Request.PathParams
	PathParamBytes  int   // Σ len(key)+len(value) over Request.PathParams
	QueryParams     int   // entries of Request.QueryParams
	QueryParamBytes int   // Σ len(key)+len(value) over Request.QueryParams
	Headers         int   // entries of Request.Headers
	HeaderBytes     int   // Σ len(Name)+len(Value) over Request.Headers
	BodyBytes       int64 // len(Request.Body)
}

// Wire overheads of an ExecuteFunction frame beyond the string and body
// bytes: the u16 kind, a u32 length before each of function, method and
// body, a u32 count before each of path_params, query_params and headers,
// and two u32 lengths per map entry or header.
const (
	executeFunctionFixed = kindSize + 6*4
	perEntry             = 2 * 4
)

// ExecuteFunctionFrameLen returns the declared frame length (the u16 kind
// plus the Borsh body, without the 4-byte length itself: the number a frame
// limit such as DefaultMaxFrameSize bounds) of the largest ExecuteFunction
// within b. For a message whose counts and byte sums are exactly b it is
// that message's frame length, since Borsh sizes depend on nothing else.
// The result saturates at math.MaxInt64.
func ExecuteFunctionFrameLen(b RequestBounds) int64 {
	return satAdd(int64(executeFunctionFixed), nonNeg(int64(b.FunctionBytes)), nonNeg(int64(b.MethodBytes)),
		satMul(perEntry, nonNeg(int64(b.PathParams))), nonNeg(int64(b.PathParamBytes)),
		satMul(perEntry, nonNeg(int64(b.QueryParams))), nonNeg(int64(b.QueryParamBytes)),
		satMul(perEntry, nonNeg(int64(b.Headers))), nonNeg(int64(b.HeaderBytes)),
		nonNeg(b.BodyBytes))
}

// MaxExecuteFunctionBody returns the largest body an ExecuteFunction within
// b (b.BodyBytes ignored) can carry in a frame whose declared length is at
// most maxFrame (0 or less means DefaultMaxFrameSize). It is negative when
// the other parts alone exceed maxFrame.
func MaxExecuteFunctionBody(maxFrame int, b RequestBounds) int64 {
	b.BodyBytes = 0
	return int64(effectiveLimit(maxFrame)) - ExecuteFunctionFrameLen(b)
}

func nonNeg(v int64) int64 { return max(v, 0) }

// satMul multiplies non-negative a and b, saturating at math.MaxInt64.
func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// satAdd adds non-negative values, saturating at math.MaxInt64.
func satAdd(vs ...int64) int64 {
	var sum int64
	for _, v := range vs {
		if v > math.MaxInt64-sum {
			return math.MaxInt64
		}
		sum += v
	}
	return sum
}
