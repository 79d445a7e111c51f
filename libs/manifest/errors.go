package manifest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FieldError is one problem with one field of a manifest.
type FieldError struct {
	// Index is the position of the service in the manifest's services
	// list, or -1 for a top-level field.
	Index int
	// Type and Name identify the service ("Gateway", "greeting"); either is
	// empty when the manifest did not give it (or gave an invalid one).
	Type, Name string
	// Field is the path of the offending field inside the service, or the
	// top-level key, such as `endpoints["/greet/{name}"][0].route_to` or
	// `memory_limit`. It is empty when the problem concerns the whole service
	// or manifest.
	Field string
	// Line is the 1-based line of the field in the YAML source, or 0 when not
	// known (manifests built in Go).
	Line int
	// Msg says what is wrong.
	Msg string
}

// Error formats e without its line, for example
//
//	services[2] (Gateway "greeting"): endpoints["/greet/{name}"][0].route_to: function "greeter" is not declared
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Index >= 0 {
		fmt.Fprintf(&b, "services[%d]", e.Index)
		switch {
		case e.Type != "" && e.Name != "":
			fmt.Fprintf(&b, " (%s %q)", e.Type, e.Name)
		case e.Type != "":
			fmt.Fprintf(&b, " (%s)", e.Type)
		}
	}
	if e.Field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationError lists every problem found in a manifest: in file order for
// a parsed manifest, else by service with top-level fields first.
type ValidationError struct {
	Errors []*FieldError
}

// Error returns the problems one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the FieldErrors, for errors.As and errors.Is.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

func newValidationError(errs []*FieldError) *ValidationError {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		// Parsed manifests: file order. Built in Go (all lines 0): by service.
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Index, b.Index))
	})
	return &ValidationError{Errors: errs}
}

// SyntaxError reports input that is not well-formed YAML.
type SyntaxError struct {
	Line int    // 1-based, 0 when the YAML parser did not say
	Msg  string // the parser's message
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("manifest: invalid YAML at line %d: %s", e.Line, e.Msg)
	}
	return "manifest: invalid YAML: " + e.Msg
}
