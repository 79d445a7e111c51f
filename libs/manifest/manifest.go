// Package manifest parses and validates mu stack manifests (design §9).
//
// A manifest is a YAML document naming a stack and listing its services:
// functions (WebAssembly modules), key/value tables, storage boxes and HTTP
// gateways whose endpoints route to functions:
//
//	name: GreetingApp
//	version: "0.1"
//	services:
//	  - type: Function
//	    name: greeter_function
//	    binary: 8MdU7CQGkZaZPjPgXDwMoIkV
//	    runtime: wasi1.0
//	    memory_limit: 256MiB
//	  - type: Gateway
//	    name: greeting
//	    endpoints:
//	      /greet/{name}:
//	        - method: get
//	          route_to: greeter_function.greet_user
//	      /hello: {get: greeter_function.hello}
//
// Parse decodes and validates in one step and reports every problem it finds
// as a *ValidationError whose FieldErrors name the service and the field.
// Manifests built in Go can be checked with Manifest.Validate and written
// with Manifest.Marshal; Parse(Marshal(m)) gives back m.
//
// Functions of this package are safe for concurrent use; a Manifest is a
// plain value and is not synchronised.
package manifest

import (
	"errors"
	"fmt"
)

// MaxManifestSize is the default largest manifest Parse accepts, in bytes.
const MaxManifestSize = 1 << 20

// RuntimeWASI1 is the runtime of functions compiled to WASI preview 1, the
// only runtime known today.
const RuntimeWASI1 = "wasi1.0"

// Service type names as written in the `type` field of a service.
const (
	TypeFunction      = "Function"
	TypeKeyValueTable = "KeyValueTable"
	TypeStorage       = "Storage"
	TypeGateway       = "Gateway"
)

// ErrTooLarge is returned (wrapped) by Parse for input above the size limit.
var ErrTooLarge = errors.New("manifest: too large")

// Manifest describes a stack. Services keep the order in which the manifest
// declares them within each type; Marshal writes them grouped by type.
type Manifest struct {
	Name      string
	Version   string
	Functions []Function
	Tables    []KeyValueTable
	Storages  []Storage
	Gateways  []Gateway
}

// Function is a WebAssembly module and the resources it runs with. Routes
// name it as the assembly in `assembly.function`.
type Function struct {
	Name        string
	Binary      string            // content id of the module in storage
	Runtime     string            // RuntimeWASI1
	MemoryLimit ByteSize          // bytes; billed rounded up to MiB
	Env         map[string]string // nil when the manifest declares none
}

// KeyValueTable is a muDB table of the stack.
type KeyValueTable struct {
	Name string
}

// Storage is a storage box of the stack.
type Storage struct {
	Name string
	// Public makes the box's objects readable by anyone over the storage
	// service's HTTP API (GET /{stack id}/{box}/{key}); false, the default,
	// keeps them private to the stack's functions and signed URLs. YAML
	// `public: true`; only a YAML boolean is accepted.
	Public bool
}

// Gateway is an HTTP gateway. Parse sorts its endpoints by path, then method.
type Gateway struct {
	Name      string
	Endpoints []Endpoint
}

// Endpoint routes one method on one path template (such as /greet/{name})
// to an exported function of a module.
type Endpoint struct {
	Path     string // starts with '/'; {param} segments are templates
	Method   string // upper case: GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS
	RouteTo  string // "assembly.function" as written in the manifest
	Assembly string // RouteTo before the first '.': the name of a Function service
	Function string // RouteTo after the first '.': the export to call
}

// Limits bounds what a manifest may ask for; a region's limits replace the
// defaults when a stack is deployed there. A zero field means the value from
// DefaultLimits.
type Limits struct {
	MinMemory uint64 // smallest function memory_limit, bytes
	MaxMemory uint64 // largest function memory_limit, bytes
}

// DefaultLimits returns the limits used by Parse.
func DefaultLimits() Limits {
	return Limits{
		MinMemory: uint64(MiB),     // 1 MiB: below that a Go wasm module cannot start
		MaxMemory: uint64(4 * GiB), // 4 GiB: the wasm32 address space
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MinMemory == 0 {
		l.MinMemory = d.MinMemory
	}
	if l.MaxMemory == 0 {
		l.MaxMemory = d.MaxMemory
	}
	return l
}

// ParseOptions tunes ParseWithOptions. The zero value gives Parse's behaviour.
type ParseOptions struct {
	Limits  Limits // memory bounds; zero fields take DefaultLimits' values
	MaxSize int    // largest accepted input in bytes; 0 means MaxManifestSize
}

// Parse decodes a YAML manifest and validates it with DefaultLimits. It
// returns a *ValidationError listing every problem found (decoding and
// validation alike), a *SyntaxError for malformed YAML, or an error wrapping
// ErrTooLarge for input over MaxManifestSize bytes.
func Parse(data []byte) (*Manifest, error) {
	return ParseWithOptions(data, ParseOptions{})
}

// ParseWithLimits is Parse with the given memory limits.
func ParseWithLimits(data []byte, l Limits) (*Manifest, error) {
	return ParseWithOptions(data, ParseOptions{Limits: l})
}

// ParseWithOptions is Parse with options.
func ParseWithOptions(data []byte, opts ParseOptions) (*Manifest, error) {
	maxSize := opts.MaxSize
	if maxSize <= 0 {
		maxSize = MaxManifestSize
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d bytes", ErrTooLarge, len(data), maxSize)
	}
	limits := opts.Limits.withDefaults()
	if err := limits.check(); err != nil {
		return nil, err
	}
	m, src, errs, err := decode(data)
	if err != nil {
		return nil, err
	}
	if m != nil {
		errs = append(errs, src.suppress(m.validate(limits, src))...)
	}
	if verr := newValidationError(errs); verr != nil {
		return nil, verr
	}
	return m, nil
}

// Validate checks m against the rules of design §9 and the given limits and
// returns a *ValidationError listing every problem, or nil. Services are
// numbered as Marshal would write them: functions, tables, storages, then
// gateways.
func (m *Manifest) Validate(l Limits) error {
	l = l.withDefaults()
	if err := l.check(); err != nil {
		return err
	}
	if verr := newValidationError(m.validate(l, nil)); verr != nil {
		return verr
	}
	return nil
}

func (l Limits) check() error {
	if l.MinMemory > l.MaxMemory {
		return fmt.Errorf("manifest: invalid limits: minimum memory %s is above maximum memory %s",
			ByteSize(l.MinMemory), ByteSize(l.MaxMemory))
	}
	return nil
}

// Function returns the function service with the given name, or nil.
func (m *Manifest) Function(name string) *Function {
	for i := range m.Functions {
		if m.Functions[i].Name == name {
			return &m.Functions[i]
		}
	}
	return nil
}

// EndpointCount returns the number of endpoints over all gateways.
func (m *Manifest) EndpointCount() int {
	n := 0
	for _, g := range m.Gateways {
		n += len(g.Endpoints)
	}
	return n
}
