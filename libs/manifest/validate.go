package manifest

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxServiceName bounds service names: table names are stored with a one-byte
// length (design §6) and gateway names appear in URLs.
const maxServiceName = 64

var runtimes = []string{RuntimeWASI1}

var methods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

type validator struct {
	m    *Manifest
	l    Limits
	src  *source
	errs []*FieldError
}

func (m *Manifest) validate(l Limits, src *source) []*FieldError {
	v := &validator{m: m, l: l, src: src}
	v.top()
	names := map[string]map[string]int{}
	name := func(index int, typ, n string) {
		if msg := serviceNameProblem(n); msg != "" {
			v.errorf(index, typ, n, "name", "%s", msg)
			return
		}
		if names[typ] == nil {
			names[typ] = map[string]int{}
		}
		if first, dup := names[typ][n]; dup {
			v.errorf(index, typ, n, "name", "duplicate %s name %q (first at services[%d])", typ, n, first)
			return
		}
		names[typ][n] = index
	}
	for i, f := range m.Functions {
		idx := v.index(TypeFunction, i)
		name(idx, TypeFunction, f.Name)
		v.function(idx, f)
	}
	for i, t := range m.Tables {
		name(v.index(TypeKeyValueTable, i), TypeKeyValueTable, t.Name)
	}
	for i, s := range m.Storages {
		name(v.index(TypeStorage, i), TypeStorage, s.Name)
	}
	for i, g := range m.Gateways {
		idx := v.index(TypeGateway, i)
		name(idx, TypeGateway, g.Name)
		v.gateway(idx, i, g)
	}
	return v.errs
}

// index returns the position of a service in the services list: as parsed,
// or, for a manifest built in Go, as Marshal writes it.
func (v *validator) index(typ string, i int) int {
	if v.src != nil {
		if idx, ok := v.src.index[svcRef{typ, i}]; ok {
			return idx
		}
	}
	m := v.m
	switch typ {
	case TypeKeyValueTable:
		i += len(m.Functions)
	case TypeStorage:
		i += len(m.Functions) + len(m.Tables)
	case TypeGateway:
		i += len(m.Functions) + len(m.Tables) + len(m.Storages)
	}
	return i
}

func (v *validator) errorf(index int, typ, name, field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Index: index, Type: typ, Name: name, Field: field,
		Line: v.src.line(index, field), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) top() {
	for _, f := range []struct{ field, value string }{{"name", v.m.Name}, {"version", v.m.Version}} {
		if msg := labelProblem(f.value); msg != "" {
			v.errorf(-1, "", "", f.field, "%s", msg)
		}
	}
}

// labelProblem checks the stack name and version: any printable text.
func labelProblem(s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "is required"
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "must not contain control characters"
	}
	return ""
}

func serviceNameProblem(s string) string {
	switch {
	case s == "":
		return "is required"
	case len(s) > maxServiceName:
		return fmt.Sprintf("must be at most %d characters long", maxServiceName)
	case strings.ContainsFunc(s, func(r rune) bool { return !isWordRune(r) && r != '-' }):
		return fmt.Sprintf("%q must contain only ASCII letters, digits, '_' and '-'", s)
	}
	return ""
}

func isWordRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_'
}

func (v *validator) function(idx int, f Function) {
	e := func(field, format string, args ...any) {
		v.errorf(idx, TypeFunction, f.Name, field, format, args...)
	}
	switch {
	case f.Binary == "":
		e("binary", "is required (the content id of the module in storage)")
	case !utf8.ValidString(f.Binary) || strings.ContainsFunc(f.Binary, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}):
		e("binary", "%q is not a content id: it must be valid UTF-8 without spaces or control characters", f.Binary)
	}
	switch {
	case f.Runtime == "":
		e("runtime", "is required (known runtimes: %s)", strings.Join(runtimes, ", "))
	case !slices.Contains(runtimes, f.Runtime):
		e("runtime", "unknown runtime %q (known runtimes: %s)", f.Runtime, strings.Join(runtimes, ", "))
	}
	switch {
	case f.MemoryLimit == 0:
		e("memory_limit", "is required (between %s and %s)", ByteSize(v.l.MinMemory), ByteSize(v.l.MaxMemory))
	case uint64(f.MemoryLimit) < v.l.MinMemory:
		e("memory_limit", "%s is below the minimum of %s", f.MemoryLimit, ByteSize(v.l.MinMemory))
	case uint64(f.MemoryLimit) > v.l.MaxMemory:
		e("memory_limit", "%s is above the maximum of %s", f.MemoryLimit, ByteSize(v.l.MaxMemory))
	}
	keys := make([]string, 0, len(f.Env))
	for k := range f.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field := envField(k)
		switch {
		case k == "":
			e(field, "variable name must not be empty")
		case strings.ContainsRune(k, '='):
			e(field, "variable name must not contain '='")
		case strings.ContainsRune(k, 0):
			e(field, "variable name must not contain NUL")
		case !utf8.ValidString(k):
			e(field, "variable name must be valid UTF-8")
		}
		switch val := f.Env[k]; {
		case strings.ContainsRune(val, 0):
			e(field, "value must not contain NUL")
		case !utf8.ValidString(val):
			e(field, "value must be valid UTF-8")
		}
	}
}

// route identifies what a request matches: the method and the path with
// parameter names erased, so /a/{x} and /a/{y} collide.
type route struct{ method, shape string }

func (v *validator) gateway(idx, gi int, g Gateway) {
	e := func(field, format string, args ...any) {
		v.errorf(idx, TypeGateway, g.Name, field, format, args...)
	}
	declared := map[string]bool{}
	for _, f := range v.m.Functions {
		declared[f.Name] = true
	}
	type fields struct {
		prefix, method, routeTo string
		short                   bool
	}
	fs := make([]fields, len(g.Endpoints))
	perPath := map[string]int{}
	for k, ep := range g.Endpoints {
		f := &fs[k]
		f.prefix, f.method, f.routeTo, f.short = v.endpointFields(gi, k, ep, perPath[ep.Path])
		perPath[ep.Path]++
	}
	pathOK := map[string]bool{}
	valid := make([]bool, len(g.Endpoints)) // path and method fine: worth checking for duplicates
	for k, ep := range g.Endpoints {
		f := fs[k]
		methodW, routeW := "", "" // the field is named by the path already, except in the short form
		if f.short {
			methodW, routeW = "method ", "route_to "
		}
		ok, checked := pathOK[ep.Path]
		if !checked {
			probs := pathProblems(ep.Path)
			for _, p := range probs {
				e(pathField(ep.Path), "path %s", p)
			}
			ok = len(probs) == 0
			pathOK[ep.Path] = ok
		}
		switch {
		case ep.Method == "":
			e(f.method, "%sis required (one of %s)", methodW, strings.Join(methods, ", "))
		case !slices.Contains(methods, ep.Method):
			e(f.method, "unknown method %q (want one of %s)", ep.Method, strings.Join(methods, ", "))
		default:
			valid[k] = ok
		}
		asm, fn := splitRoute(ep.RouteTo)
		switch {
		case ep.RouteTo == "":
			e(f.routeTo, "%sis required (assembly.function, e.g. my_function.handler)", routeW)
		case asm == "" || fn == "":
			e(f.routeTo, "%q must have the form assembly.function (a Function service and its export)", ep.RouteTo)
		case ep.Assembly != asm || ep.Function != fn:
			e(f.routeTo, "Assembly %q and Function %q do not match route_to %q", ep.Assembly, ep.Function, ep.RouteTo)
		case !utf8.ValidString(fn) || strings.ContainsFunc(fn, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r)
		}):
			e(f.routeTo, "export name %q must be valid UTF-8 without spaces or control characters", fn)
		case !declared[asm]:
			e(f.routeTo, "function %q is not declared", asm)
		}
	}
	// Report a duplicate on the endpoint written last (in the file, or in
	// the slice for manifests built in Go).
	order := make([]int, len(g.Endpoints))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return v.src.line(idx, fs[a].prefix) - v.src.line(idx, fs[b].prefix)
	})
	type seen struct{ path, where string }
	routes := map[route]seen{}
	for _, k := range order {
		ep := g.Endpoints[k]
		if !valid[k] {
			continue
		}
		r := route{ep.Method, pathShape(ep.Path)}
		first, dup := routes[r]
		switch {
		case !dup:
			routes[r] = seen{ep.Path, fs[k].prefix}
		case first.path == ep.Path:
			e(fs[k].prefix, "duplicate endpoint %s %s (first at %s)", ep.Method, ep.Path, first.where)
		default:
			e(fs[k].prefix, "%s %s conflicts with %s %s at %s", ep.Method, ep.Path, ep.Method, first.path, first.where)
		}
	}
}

// endpointFields returns the paths naming endpoint k of gateway gi, its
// method and its route_to, and whether it was written in the short form
// (where one key names both): as written when parsed, else in the list form
// Marshal writes, numbered within the path.
func (v *validator) endpointFields(gi, k int, ep Endpoint, nth int) (prefix, method, routeTo string, short bool) {
	if v.src != nil {
		if s, ok := v.src.endpoints[epRef{gi, k}]; ok {
			if s.short {
				return s.prefix, s.prefix, s.prefix, true
			}
			return s.prefix, s.prefix + ".method", s.prefix + ".route_to", false
		}
	}
	prefix = fmt.Sprintf("%s[%d]", pathField(ep.Path), nth)
	return prefix, prefix + ".method", prefix + ".route_to", false
}

// pathProblems checks an endpoint path template; each problem completes the
// sentence "path ...".
func pathProblems(p string) []string {
	if !strings.HasPrefix(p, "/") {
		return []string{"must start with '/'"}
	}
	if !utf8.ValidString(p) {
		return []string{"must be valid UTF-8"}
	}
	var probs []string
	if strings.ContainsFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		probs = append(probs, "must not contain spaces or control characters")
	}
	if strings.ContainsAny(p, "?#") {
		probs = append(probs, "must not contain '?' or '#' (query and fragment are not part of the path)")
	}
	params := map[string]bool{}
	for _, seg := range strings.Split(p[1:], "/") {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		if len(seg) < 2 || seg[0] != '{' || seg[len(seg)-1] != '}' || strings.ContainsAny(seg[1:len(seg)-1], "{}") {
			probs = append(probs, fmt.Sprintf("segment %q: a parameter must be a whole segment like {name}", seg))
			continue
		}
		name := seg[1 : len(seg)-1]
		switch {
		case name == "":
			probs = append(probs, "has a parameter without a name: {}")
		case !isIdentifier(name):
			probs = append(probs, fmt.Sprintf("parameter {%s}: the name must be letters, digits and '_', not starting with a digit", name))
		case params[name]:
			probs = append(probs, fmt.Sprintf("repeats parameter {%s}", name))
		}
		params[name] = true
	}
	return probs
}

func isIdentifier(s string) bool {
	for i, r := range s {
		if !isWordRune(r) || (i == 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return s != ""
}

// pathShape erases parameter names: /greet/{name} → /greet/{}.
func pathShape(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = "{}"
		}
	}
	return strings.Join(segs, "/")
}
