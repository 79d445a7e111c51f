package service

import (
	"fmt"
	"time"
)

// Problems collects what is wrong with a Config, one error per field, so
// that Validate reports everything at once. The zero value is ready.
type Problems struct{ errs []error }

// Addf records a problem with field (its settings name, e.g. call_timeout).
func (p *Problems) Addf(field, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// Add records errors (nil ones are skipped), such as those of a nested
// config's own Validate.
func (p *Problems) Add(errs ...error) {
	for _, err := range errs {
		if err != nil {
			p.errs = append(p.errs, err)
		}
	}
}

// Positive records field unless v > 0.
func (p *Problems) Positive(field string, v int64) {
	if v <= 0 {
		p.Addf(field, "must be positive, got %d", v)
	}
}

// NotNegative records field if v < 0.
func (p *Problems) NotNegative(field string, v int64) {
	if v < 0 {
		p.Addf(field, "must not be negative, got %d", v)
	}
}

// PositiveDuration records field unless d > 0.
func (p *Problems) PositiveDuration(field string, d time.Duration) {
	if d <= 0 {
		p.Addf(field, "must be positive, got %v", d)
	}
}

// NotNegativeDuration records field if d < 0.
func (p *Problems) NotNegativeDuration(field string, d time.Duration) {
	if d < 0 {
		p.Addf(field, "must not be negative, got %v", d)
	}
}

// Errs returns the problems recorded so far.
func (p *Problems) Errs() []error { return p.errs }

// Err returns the problems as service's invalid-config error (see
// Invalid), or nil when there are none.
func (p *Problems) Err(service string) error { return Invalid(service, p.errs) }
