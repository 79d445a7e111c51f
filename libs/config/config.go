// Package config loads a service's Config struct. The struct's current
// values are the defaults (from the service's DefaultConfig); then, each
// overriding the one before:
//
//  1. a YAML file, named by --config or MU_<SERVICE>_CONFIG;
//  2. environment variables MU_<SERVICE>_<FIELD>, e.g. MU_RUNTIME_GRPC_ADDR;
//  3. command-line flags --<field>, e.g. --grpc-addr.
//
// Field names come from the Go names: GRPCAddr is grpc_addr in YAML,
// GRPC_ADDR in the environment and --grpc-addr on the command line.
// Supported field types: string, bool, ints, uints, floats, time.Duration
// ("250ms", "5m") and []string (comma-separated). Integer fields also take
// byte sizes such as "256MiB" or "1GB". Fields of other types (loggers,
// sinks, other dependencies) are left alone. The fields of an embedded
// struct are settings of their own, so a command can add its own settings
// beside a service's Config; the fields of a named struct field are settings
// prefixed with its name (Usage.BatchSize is usage_batch_size), which a
// YAML file may also write as a section (usage: {batch_size: 100}).
//
// --help lists every setting with its type, default, environment variable
// and, given Docs (ParseDocs over the Go source of the config types), the
// field's doc comment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/muprotocol/mu/libs/manifest"
)

var durationType = reflect.TypeOf(time.Duration(0))

// ErrCheckConfig is returned by the loaders, with cfg fully loaded, when
// the arguments hold --check-config: the program is asked to check its
// settings and exit rather than start.
var ErrCheckConfig = errors.New("config: --check-config")

type field struct {
	name  string // snake_case, with the prefixes of named struct fields
	doc   string // the key of its doc comment in Docs: "Type.Field"
	value reflect.Value
}

func fields(cfg any) ([]field, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("config: want a pointer to a struct, got %T", cfg)
	}
	return structFields(v.Elem(), ""), nil
}

// structFields lists the settable fields of v; an embedded struct's fields
// count as v's own, so a command can add its settings beside a service's
// Config, and a named struct field's fields are settings under its name.
func structFields(v reflect.Value, prefix string) []field {
	var out []field
	for i := 0; i < v.NumField(); i++ {
		sf := v.Type().Field(i)
		if !sf.IsExported() && !sf.Anonymous {
			continue
		}
		if sf.Type.Kind() == reflect.Struct {
			p := prefix
			if !sf.Anonymous {
				p += SnakeCase(sf.Name) + "_"
			}
			out = append(out, structFields(v.Field(i), p)...)
			continue
		}
		if !supported(sf.Type) {
			continue
		}
		out = append(out, field{name: prefix + SnakeCase(sf.Name), doc: v.Type().Name() + "." + sf.Name, value: v.Field(i)})
	}
	return out
}

func supported(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// SnakeCase turns a Go field name into snake_case, keeping initialisms
// together: GRPCAddr → grpc_addr, MaxFuelPerCall → max_fuel_per_call. A
// run of capitals made of initialisms in splitInitialisms is split into
// them, so adjacent initialisms stay readable: TLSCAFile → tls_ca_file,
// RPCURL → rpc_url.
func SnakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i := 0; i < len(r); {
		if !unicode.IsUpper(r[i]) {
			b.WriteRune(r[i])
			i++
			continue
		}
		// The run of capitals from i; its last capital starts
		// the next word when a lower-case letter follows it.
		j := i
		for j < len(r) && unicode.IsUpper(r[j]) {
			j++
		}
		if j < len(r) && unicode.IsLower(r[j]) && j-i > 1 {
			j--
		}
		if i > 0 {
			b.WriteByte('_')
		}
		words := splitRun(string(r[i:j]))
		b.WriteString(strings.ToLower(strings.Join(words, "_")))
		i = j
	}
	return b.String()
}

// splitInitialisms are the initialisms a run of capitals is split into
// (longest first), when the whole run is made of them.
var splitInitialisms = []string{"HTTP", "GRPC", "OTLP", "TLS", "RPC", "URL", "CA", "WS", "ID"}

// splitRun splits run into initialisms of splitInitialisms, or returns it
// whole when it is not made of them alone.
func splitRun(run string) []string {
	if words, ok := cover(run); ok {
		return words
	}
	return []string{run}
}

// cover splits run into initialisms of splitInitialisms, if it can.
func cover(run string) ([]string, bool) {
	if run == "" {
		return nil, true
	}
	for _, w := range splitInitialisms {
		if strings.HasPrefix(run, w) {
			if rest, ok := cover(run[len(w):]); ok {
				return append([]string{w}, rest...), true
			}
		}
	}
	return nil, false
}

// set parses s into the field, naming the field in errors.
func set(f field, s, source string) error {
	v := f.value
	fail := func(err error) error {
		return fmt.Errorf("config: %s (%s): %q: %v", f.name, source, s, err)
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fail(err)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fail(err)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			size, serr := manifest.ParseByteSize(s)
			if serr != nil || uint64(size) > uint64(1)<<(v.Type().Bits()-1)-1 {
				return fail(err)
			}
			n = int64(size)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			size, serr := manifest.ParseByteSize(s)
			if serr != nil || (v.Type().Bits() < 64 && uint64(size) >= uint64(1)<<v.Type().Bits()) {
				return fail(err)
			}
			n = uint64(size)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return fail(err)
		}
		v.SetFloat(x)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fail(errors.New("unsupported type"))
	}
	return nil
}

func get(f field) string {
	v := f.value
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	if v.Kind() == reflect.Slice {
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

// Load applies the YAML file, environment and flags (args, without the
// program name) to cfg. service names the environment prefix
// (MU_<SERVICE>_). Unknown YAML keys, unknown flags and environment
// variables with the prefix that name no setting are errors.
// -h/--help prints the settings with their defaults to stderr and returns
// flag.ErrHelp; --check-config loads everything and then returns
// ErrCheckConfig, for the caller to check the result and exit.
func Load(service string, cfg any, args []string) error {
	return load(service, cfg, args, os.Environ(), os.Stderr)
}

// LoadWithDocs is Load with docs for --help: each setting is listed with
// the doc comment of its field.
func LoadWithDocs(service string, cfg any, args []string, docs Docs) error {
	return loadDocs(service, cfg, args, os.Environ(), os.Stderr, docs)
}

// LoadWithDocsTo is LoadWithDocs writing --help and flag errors to stderr.
func LoadWithDocsTo(service string, cfg any, args []string, docs Docs, stderr io.Writer) error {
	return loadDocs(service, cfg, args, os.Environ(), stderr, docs)
}

func load(service string, cfg any, args, environ []string, stderr io.Writer) error {
	return loadDocs(service, cfg, args, environ, stderr, nil)
}

func loadDocs(service string, cfg any, args, environ []string, stderr io.Writer, docs Docs) error {
	fs, err := fields(cfg)
	if err != nil {
		return err
	}
	prefix := "MU_" + strings.ToUpper(strings.ReplaceAll(service, "-", "_")) + "_"
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, prefix) {
			env[k] = v
		}
	}

	known := map[string]bool{prefix + "CONFIG": true}
	for _, f := range fs {
		known[prefix+strings.ToUpper(f.name)] = true
	}
	var unknown []string
	for k := range env {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config: environment: %s names no setting of %s (mu-%s --help lists them)", strings.Join(unknown, ", "), service, service)
	}

	set1 := flag.NewFlagSet(service, flag.ContinueOnError)
	set1.SetOutput(stderr)
	configPath := set1.String("config", env[prefix+"CONFIG"], "YAML file with settings (keys in snake_case)")
	checkOnly := set1.Bool("check-config", false, "load and check the settings, then exit")
	values := map[string]*flagValue{}
	for _, f := range fs {
		fv := &flagValue{s: get(f), isBool: f.value.Kind() == reflect.Bool}
		values[f.name] = fv
		set1.Var(fv, strings.ReplaceAll(f.name, "_", "-"), "("+f.value.Type().String()+")")
	}
	set1.Usage = func() { usage(stderr, service, prefix, fs, docs) }
	if err := set1.Parse(args); err != nil {
		return err
	}
	if set1.NArg() > 0 {
		return fmt.Errorf("config: unexpected argument %q", set1.Arg(0))
	}

	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		var doc map[string]yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("config: %s: %v", *configPath, err)
		}
		byName := map[string]field{}
		for _, f := range fs {
			byName[f.name] = f
		}
		flat := map[string]*yaml.Node{}
		if err := flatten(*configPath, "", doc, byName, flat); err != nil {
			return err
		}
		keys := make([]string, 0, len(flat))
		for k := range flat {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f := byName[k]
			n := flat[k]
			s := n.Value
			if n.Kind == yaml.SequenceNode {
				var items []string
				if err := n.Decode(&items); err != nil {
					return fmt.Errorf("config: %s: %s: %v", *configPath, k, err)
				}
				s = strings.Join(items, ",")
			} else if n.Kind != yaml.ScalarNode {
				return fmt.Errorf("config: %s: %s: want a single value", *configPath, k)
			}
			if err := set(f, s, *configPath); err != nil {
				return err
			}
		}
	}
	for _, f := range fs {
		if s, ok := env[prefix+strings.ToUpper(f.name)]; ok {
			if err := set(f, s, prefix+strings.ToUpper(f.name)); err != nil {
				return err
			}
		}
	}
	var ferr error
	set1.Visit(func(fl *flag.Flag) {
		if ferr != nil || fl.Name == "config" || fl.Name == "check-config" {
			return
		}
		for _, f := range fs {
			if strings.ReplaceAll(f.name, "_", "-") == fl.Name {
				ferr = set(f, values[f.name].s, "--"+fl.Name)
			}
		}
	})
	if ferr == nil && *checkOnly {
		return ErrCheckConfig
	}
	return ferr
}

// flatten turns the YAML mapping doc into settings by name: a key that
// names a setting is that setting; a key whose value is a mapping is a
// section, and its keys are settings under the key's name (section
// "gateway" with key "http_addr" is gateway_http_addr), so a named struct
// field's settings can be written either way. A setting given twice, or a
// key that names neither a setting nor a section, is an error.
func flatten(path, prefix string, doc map[string]yaml.Node, byName map[string]field, out map[string]*yaml.Node) error {
	for k, n := range doc {
		name := prefix + k
		if _, ok := byName[name]; ok {
			if _, dup := out[name]; dup {
				return fmt.Errorf("config: %s: setting %q given twice", path, name)
			}
			out[name] = &n
			continue
		}
		if n.Kind == yaml.MappingNode && isSection(name+"_", byName) {
			var sub map[string]yaml.Node
			if err := n.Decode(&sub); err != nil {
				return fmt.Errorf("config: %s: %s: %v", path, name, err)
			}
			if err := flatten(path, name+"_", sub, byName, out); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("config: %s: unknown setting %q", path, name)
	}
	return nil
}

// isSection reports whether some setting's name starts with prefix.
func isSection(prefix string, byName map[string]field) bool {
	for name := range byName {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// flagValue holds a flag's text until the file and environment are applied,
// so flags win whatever their position.
type flagValue struct {
	s      string
	isBool bool
}

func (v *flagValue) String() string     { return v.s }
func (v *flagValue) Set(s string) error { v.s = s; return nil }
func (v *flagValue) IsBoolFlag() bool   { return v.isBool }

// Args renders cfg (a pointer to a struct, as for Load) as the command-line
// flags that Load reads back into an equal struct: one --<field>=<value>
// per setting, in field order, every setting included. It is how a program
// starts a service as a child process with a Config it has built. A
// []string element that Load would not read back as written (one holding a
// comma, empty, or with surrounding spaces) is an error naming the setting.
func Args(cfg any) ([]string, error) {
	fs, err := fields(cfg)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		if f.value.Kind() == reflect.Slice {
			for _, s := range f.value.Interface().([]string) {
				if s == "" || strings.Contains(s, ",") || strings.TrimSpace(s) != s {
					return nil, fmt.Errorf("config: %s: element %q cannot be written as a flag", f.name, s)
				}
			}
		}
		out = append(out, "--"+strings.ReplaceAll(f.name, "_", "-")+"="+get(f))
	}
	return out, nil
}
