package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/muprotocol/mu/libs/ids"
)

// StackLimit is the request limits of one stack at one gateway: a token
// bucket of Burst requests refilled at Rate per second, and at most
// Concurrency requests in flight. Rate 0 and Concurrency 0 mean no limit
// of that kind (Burst is then unused).
type StackLimit struct {
	Rate        float64 // requests per second; 0: unlimited
	Burst       int     // the bucket's size: requests at once after a quiet spell
	Concurrency int     // requests in flight; 0: unlimited
}

func (l StackLimit) unlimited() bool { return l.Rate == 0 && l.Concurrency == 0 }

// problems lists what is wrong with l, each naming its field by the name
// given (stack_rate for the region's default, rate in a stack_limits
// entry, and so on).
func (l StackLimit) problems(rateName, burstName, concName string) []string {
	var out []string
	switch {
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0):
		out = append(out, fmt.Sprintf("%s: must be a number of requests per second (0: unlimited), got %v", rateName, l.Rate))
	case l.Rate < 0:
		out = append(out, fmt.Sprintf("%s: must not be negative (0: unlimited), got %v", rateName, l.Rate))
	}
	switch {
	case l.Burst < 0:
		out = append(out, fmt.Sprintf("%s: must not be negative, got %d", burstName, l.Burst))
	case l.Burst == 0 && l.Rate > 0:
		out = append(out, fmt.Sprintf("%s: must be at least 1 with %s %v (a bucket of 0 refuses every request)", burstName, rateName, l.Rate))
	}
	if l.Concurrency < 0 {
		out = append(out, fmt.Sprintf("%s: must not be negative (0: unlimited), got %d", concName, l.Concurrency))
	}
	return out
}

// parseStackLimit parses one stack_limits entry, "BASE58_ID rate=R
// burst=B concurrency=C" (fields separated by spaces, each key at most
// once, any of them left out): the stack's limits are def with the keys
// given replaced. Errors name the entry's stack id when it parses.
func parseStackLimit(spec string, def StackLimit) (ids.StackID, StackLimit, error) {
	fields := strings.Fields(spec)
	if len(fields) == 0 {
		return ids.StackID{}, def, fmt.Errorf("empty entry; want \"BASE58_ID rate=R burst=B concurrency=C\"")
	}
	id, err := ids.ParseStackID(fields[0])
	if err != nil {
		return ids.StackID{}, def, fmt.Errorf("%q: %v", fields[0], err)
	}
	l := def
	seen := map[string]bool{}
	var bad []string
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || seen[k] {
			if ok {
				bad = append(bad, fmt.Sprintf("%s given twice", k))
			} else {
				bad = append(bad, fmt.Sprintf("%q is not key=value", f))
			}
			continue
		}
		seen[k] = true
		switch k {
		case "rate":
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				bad = append(bad, fmt.Sprintf("rate %q is not a number", v))
				continue
			}
			l.Rate = x
		case "burst", "concurrency":
			n, err := strconv.Atoi(v)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s %q is not a whole number", k, v))
				continue
			}
			if k == "burst" {
				l.Burst = n
			} else {
				l.Concurrency = n
			}
		default:
			bad = append(bad, fmt.Sprintf("unknown key %q (rate, burst, concurrency)", k))
		}
	}
	if len(bad) == 0 {
		bad = l.problems("rate", "burst", "concurrency")
	}
	if len(bad) > 0 {
		return id, l, fmt.Errorf("stack %s: %s", id, strings.Join(bad, "; "))
	}
	return id, l, nil
}

// stackLimitsOf parses c's stack_limits (checked by Validate) into the
// limits by stack.
func (c Config) stackLimitsOf() (map[ids.StackID]StackLimit, []error) {
	def := c.defaultStackLimit()
	out := make(map[ids.StackID]StackLimit, len(c.StackLimits))
	var errs []error
	for _, spec := range c.StackLimits {
		id, l, err := parseStackLimit(spec, def)
		if err == nil {
			if _, dup := out[id]; dup {
				err = fmt.Errorf("stack %s: given twice", id)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[id] = l
	}
	return out, errs
}

func (c Config) defaultStackLimit() StackLimit {
	return StackLimit{Rate: c.StackRate, Burst: c.StackBurst, Concurrency: c.StackConcurrency}
}

// limitFor is the limits a stack gets when it is first installed: its
// stack_limits entry, or the region's defaults.
func (s *Server) limitFor(id ids.StackID) StackLimit {
	if l, ok := s.stackLimits[id]; ok {
		return l
	}
	return s.cfg.defaultStackLimit()
}

// stackLimiter is one stack's limit state at this gateway. It is made when
// the stack is first installed, shared by its later revisions (like its
// response counts) and dropped with the stack by RemoveStack, so the
// gateway holds limit state for the stacks it serves and no others; a
// stack without limits has none (nil). Its token bucket is made by the
// stack's first request, so a stack that is never called holds only this
// struct.
//
// enter and leave are safe for concurrent use and do not allocate when
// they admit a request: the in-flight count is an atomic, the bucket has
// its own mutex, one per stack; no lock is shared between stacks.
type stackLimiter struct {
	limit    StackLimit
	inFlight atomic.Int64
	bucket   atomic.Pointer[rate.Limiter] // nil until the first request, or with Rate 0
}

func newStackLimiter(l StackLimit) *stackLimiter {
	if l.unlimited() {
		return nil
	}
	return &stackLimiter{limit: l}
}

func (l *stackLimiter) tokens() *rate.Limiter {
	if b := l.bucket.Load(); b != nil {
		return b
	}
	b := rate.NewLimiter(rate.Limit(l.limit.Rate), l.limit.Burst) // starts full
	if l.bucket.CompareAndSwap(nil, b) {
		return b
	}
	return l.bucket.Load()
}

// Reasons of mu_gateway_rate_limited_total.
const (
	limitedRate        = 0 // "rate"
	limitedConcurrency = 1 // "concurrency"
)

var limitedReasons = [...]string{limitedRate: "rate", limitedConcurrency: "concurrency"}

// enter admits a request of stack id at now or returns the 429 to answer.
// An admitted request must call leave once it is answered.
func (l *stackLimiter) enter(id ids.StackID, now time.Time) (herr *httpError, reason int) {
	c := int64(l.limit.Concurrency)
	if c > 0 && l.inFlight.Add(1) > c {
		l.inFlight.Add(-1)
		e := errorf(http.StatusTooManyRequests, KindTooManyInFlight,
			"stack %s already has %d requests in flight at this gateway, its limit; retry when one has been answered", id, c)
		e.retryAfter = "1"
		return e, limitedConcurrency
	}
	if l.limit.Rate > 0 {
		b := l.tokens()
		if !b.AllowN(now, 1) {
			if c > 0 {
				l.inFlight.Add(-1)
			}
			// How long until a token is there: the delay a reservation
			// made now would have, computed as rate.Limiter does from the
			// tokens at now, without making one. (A reservation given
			// back at once restores nothing when another was made in
			// between, so under a flood of refusals the bucket would sink
			// into debt and hold the stack under its rate.)
			wait := time.Duration(float64(time.Second) * (1 - b.TokensAt(now)) / l.limit.Rate)
			secs := max(wholeSeconds(wait), 1)
			e := errorf(http.StatusTooManyRequests, KindRateLimited,
				"stack %s is over its limit of %s requests per second (bursts of %d) at this gateway; retry in %d s",
				id, strconv.FormatFloat(l.limit.Rate, 'g', -1, 64), l.limit.Burst, secs)
			e.retryAfter = strconv.FormatInt(secs, 10)
			return e, limitedRate
		}
	}
	return nil, 0
}

// leave ends a request that enter admitted.
func (l *stackLimiter) leave() {
	if l.limit.Concurrency > 0 {
		l.inFlight.Add(-1)
	}
}
