package chainwatch

import (
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/muprotocol/mu/libs/config"
)

// Backoff is how long a Follower waits before it calls the chain indexer
// again after a failure. A service embeds it in its Config as a field named
// ChainRetry, so its settings read chain_retry_initial and chain_retry_max.
type Backoff struct {
	// Initial is the wait after the first failure in a row; it doubles with
	// every further failure up to Max. Each wait is drawn at random from the
	// upper half of its value (jitter), so nodes that lost the indexer
	// together do not call it again together.
	Initial time.Duration
	// Max caps the wait between two attempts.
	Max time.Duration
}

// DefaultBackoff returns the waits every service starts from.
func DefaultBackoff() Backoff {
	return Backoff{
		Initial: 250 * time.Millisecond, // first retry after 125..250ms
		Max:     30 * time.Second,       // then at most every 15..30s
	}
}

// Validate reports every invalid field, named as the services' settings
// name them (chain_retry_initial, chain_retry_max).
func (b Backoff) Validate() error {
	var errs []error
	if b.Initial <= 0 {
		errs = append(errs, fmt.Errorf("chain_retry_initial: must be positive, got %v", b.Initial))
	}
	if b.Max <= 0 {
		errs = append(errs, fmt.Errorf("chain_retry_max: must be positive, got %v", b.Max))
	} else if b.Max < b.Initial {
		errs = append(errs, fmt.Errorf("chain_retry_max: %v is below chain_retry_initial %v", b.Max, b.Initial))
	}
	return errors.Join(errs...)
}

// Delay is the wait after failures failures in a row (1 for the first):
// Initial·2^(failures-1), capped at Max, times a random factor in
// [0.5, 1]. It is never more than Max, nor less than half of the
// uncapped-but-for-Max value. Safe for concurrent use.
func (b Backoff) Delay(failures int) time.Duration {
	return b.delay(failures, rand.Float64())
}

// Ceiling is the largest wait Delay may return after failures failures in
// a row: Initial·2^(failures-1) capped at Max.
func (b Backoff) Ceiling(failures int) time.Duration {
	d := max(b.Initial, 0)
	for i := 1; i < failures && d < b.Max; i++ {
		if d > b.Max/2 {
			return b.Max // doubling would pass Max (or overflow)
		}
		d *= 2
	}
	return min(d, b.Max)
}

// delay is Delay with the random draw r in [0, 1) given.
func (b Backoff) delay(failures int, r float64) time.Duration {
	c := b.Ceiling(failures)
	half := c / 2
	return c - half + time.Duration(r*float64(half))
}

//go:embed backoff.go
var backoffSource []byte

// ConfigDocs returns the doc comments of Backoff's fields, for --help; a
// service merges them with its own (config.Merge).
func ConfigDocs() config.Docs {
	return config.MustParseDocs(backoffSource)
}
