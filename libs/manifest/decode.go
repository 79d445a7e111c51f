package manifest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fieldKey names a field of a service (index >= 0) or of the manifest (-1).
type fieldKey struct {
	index int
	field string
}

type svcRef struct {
	typ string
	i   int // position in the manifest's slice for typ
}

type epRef struct{ gateway, endpoint int }

// epSource is how an endpoint was written: its field path, and whether it
// came from the short form (`get: f.g`), where method and route_to share it.
type epSource struct {
	prefix string
	short  bool
}

// source records where the parts of a parsed manifest came from, so that
// validation errors number services as the file does, name endpoint fields
// as written and carry lines. A nil *source stands for a manifest built in
// Go.
type source struct {
	index     map[svcRef]int
	lines     map[fieldKey]int
	endpoints map[epRef]epSource
	failed    []fieldKey // fields that could not be decoded
}

func newSource() *source {
	return &source{
		index:     map[svcRef]int{},
		lines:     map[fieldKey]int{},
		endpoints: map[epRef]epSource{},
	}
}

// line returns the line of field in service index: the line of the field
// itself or of the nearest enclosing field that has one.
func (s *source) line(index int, field string) int {
	if s == nil {
		return 0
	}
	for {
		if l, ok := s.lines[fieldKey{index, field}]; ok {
			return l
		}
		if field == "" {
			return s.lines[fieldKey{-1, ""}]
		}
		cut := strings.LastIndexAny(field, ".[")
		if cut < 0 {
			cut = 0
		}
		field = field[:cut]
	}
}

// suppress drops validation errors about fields that already failed to
// decode: a malformed memory_limit need not also be reported missing.
func (s *source) suppress(errs []*FieldError) []*FieldError {
	if s == nil || len(s.failed) == 0 {
		return errs
	}
	return slices.DeleteFunc(errs, func(e *FieldError) bool {
		for _, f := range s.failed {
			if f.index != e.Index {
				continue
			}
			if f.field == "" || e.Field == f.field ||
				strings.HasPrefix(e.Field, f.field+".") || strings.HasPrefix(e.Field, f.field+"[") {
				return true
			}
		}
		return false
	})
}

// loc identifies the service being decoded, for error messages.
type loc struct {
	index     int // -1: top level
	typ, name string
}

type decoder struct {
	src  *source
	errs []*FieldError
}

// maxNodes bounds the YAML nodes of a manifest of n bytes, counting aliases
// expanded: enough for any manifest that uses anchors to share an env map,
// small enough that aliases cannot multiply the work (a "billion laughs").
func maxNodes(n int) int { return 2*n + 10000 }

var yamlLineRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

func syntaxError(err error) error {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1]) // digits by the pattern
		return &SyntaxError{Line: line, Msg: m[2]}
	}
	return &SyntaxError{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// decode turns YAML into a Manifest without judging its values. It returns
// the errors found (types, unknown or duplicate keys, malformed sizes); a
// nil manifest means the document could not be read as a manifest at all.
// err is a *SyntaxError for malformed YAML.
func decode(data []byte) (m *Manifest, src *source, errs []*FieldError, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, []*FieldError{{Index: -1, Line: 1, Msg: "the manifest is empty"}}, nil
		}
		return nil, nil, nil, syntaxError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, nil, nil, syntaxError(err)
	default:
		return nil, nil, []*FieldError{{Index: -1, Line: extra.Line,
			Msg: "a manifest is one YAML document, found a second one"}}, nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if _, err := countNodes(root, map[*yaml.Node]int{}, maxNodes(len(data))); err != nil {
		return nil, nil, []*FieldError{{Index: -1, Line: 1, Msg: err.Error()}}, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, []*FieldError{{Index: -1, Line: root.Line,
			Msg: "a manifest is a mapping with name, version and services, got " + kindOf(root)}}, nil
	}
	d := &decoder{src: newSource()}
	m = d.manifest(root)
	return m, d.src, d.errs, nil
}

// countNodes counts the nodes under n with aliases expanded, failing past
// limit. Anchored nodes are counted once and remembered, so the count costs
// at most one walk of the tree.
func countNodes(n *yaml.Node, memo map[*yaml.Node]int, limit int) (int, error) {
	if n == nil {
		return 0, nil
	}
	if n.Kind == yaml.AliasNode {
		return countNodes(n.Alias, memo, limit)
	}
	if n.Anchor != "" {
		if c, ok := memo[n]; ok {
			if c < 0 {
				return 0, fmt.Errorf("line %d: anchor %q contains an alias to itself", n.Line, n.Anchor)
			}
			return c, nil
		}
		memo[n] = -1 // in progress
	}
	total := 1
	for _, c := range n.Content {
		k, err := countNodes(c, memo, limit)
		if err != nil {
			return 0, err
		}
		if total += k; total > limit {
			return 0, fmt.Errorf("too many YAML nodes once aliases are expanded (limit %d)", limit)
		}
	}
	if n.Anchor != "" {
		memo[n] = total
	}
	return total, nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindOf(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func (d *decoder) errorf(l loc, field string, line int, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Index: l.index, Type: l.typ, Name: l.name, Field: field,
		Line: line, Msg: fmt.Sprintf(format, args...)})
	d.src.failed = append(d.src.failed, fieldKey{l.index, field})
}

type pair struct {
	key          string
	keyNode, val *yaml.Node
	field        string // path of the value
}

// pairs returns the entries of mapping n. fieldOf gives the path of the
// value under each key; parent is the path of n. Keys that are not scalars
// and repeated keys are reported and skipped.
func (d *decoder) pairs(l loc, parent string, n *yaml.Node, fieldOf func(key string) string) []pair {
	var ps []pair
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.errorf(l, parent, n.Content[i].Line, "keys must be strings, got %s", kindOf(k))
			continue
		}
		f := fieldOf(k.Value)
		if line, dup := first[k.Value]; dup {
			d.errorf(l, f, k.Line, "duplicate key (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		d.src.lines[fieldKey{l.index, f}] = k.Line
		ps = append(ps, pair{key: k.Value, keyNode: k, val: v, field: f})
	}
	return ps
}

func child(parent string) func(string) string {
	if parent == "" {
		return func(k string) string { return k }
	}
	return func(k string) string { return parent + "." + k }
}

// text returns the text of a scalar as written ("0.1" stays "0.1"); null
// gives "". It reports other nodes and unusual tags and returns ok false.
func (d *decoder) text(l loc, field string, n *yaml.Node) (s string, ok bool) {
	line := 0
	if n != nil {
		line = n.Line
	}
	n = resolve(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(l, field, line, "must be a string, got %s", kindOf(n))
		return "", false
	}
	switch t := n.ShortTag(); t {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return n.Value, true
	default:
		d.errorf(l, field, line, "unsupported YAML tag %q: write a plain string", t)
		return "", false
	}
}

// boolean reads a YAML boolean (true or false, unquoted); a missing or null
// value is false. Anything else, the strings "yes" and "true" included, is
// reported naming the field.
func (d *decoder) boolean(l loc, field string, n *yaml.Node) (v, ok bool) {
	line := 0
	if n != nil {
		line = n.Line
	}
	n = resolve(n)
	if isNull(n) {
		return false, true
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errorf(l, field, line, "must be true or false, got %s", kindOf(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.errorf(l, field, line, "must be true or false, got %s", kindOf(n))
		return false, false
	}
	return b, true
}

func (d *decoder) unknown(l loc, p pair, known string) {
	d.errorf(l, p.field, p.keyNode.Line, "unknown field (known fields: %s)", known)
}

func (d *decoder) manifest(root *yaml.Node) *Manifest {
	m := &Manifest{}
	top := loc{index: -1}
	d.src.lines[fieldKey{-1, ""}] = root.Line
	for _, p := range d.pairs(top, "", root, child("")) {
		switch p.key {
		case "name":
			m.Name, _ = d.text(top, p.field, p.val)
		case "version":
			m.Version, _ = d.text(top, p.field, p.val)
		case "services":
			d.services(m, p)
		default:
			d.unknown(top, p, "name, version, services")
		}
	}
	return m
}

func (d *decoder) services(m *Manifest, p pair) {
	n := resolve(p.val)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(loc{index: -1}, "services", p.val.Line, "must be a list of services, got %s", kindOf(n))
		return
	}
	for i, item := range n.Content {
		d.service(m, i, item)
	}
}

var serviceTypes = []string{TypeFunction, TypeKeyValueTable, TypeStorage, TypeGateway}

// peek returns the text of key in mapping n, if it is a plain scalar.
func peek(n *yaml.Node, key string) (string, bool) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k != nil && k.Kind == yaml.ScalarNode && k.Value == key {
			if v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
				return v.Value, true
			}
			return "", false
		}
	}
	return "", false
}

func (d *decoder) service(m *Manifest, i int, item *yaml.Node) {
	l := loc{index: i}
	n := resolve(item)
	if n.Kind != yaml.MappingNode {
		d.errorf(l, "", item.Line, "must be a mapping with a type field, got %s", kindOf(n))
		return
	}
	d.src.lines[fieldKey{i, ""}] = item.Line
	typ, _ := peek(n, "type")
	if slices.Contains(serviceTypes, typ) {
		l.typ = typ
	}
	l.name, _ = peek(n, "name")
	ps := d.pairs(l, "", n, child(""))
	var typePair *pair
	for j := range ps {
		if ps[j].key == "type" {
			typePair = &ps[j]
		}
	}
	if typePair == nil {
		d.errorf(l, "type", item.Line, "is required (one of Function, KeyValueTable, Storage, Gateway)")
		return
	}
	t, ok := d.text(l, "type", typePair.val)
	if !ok {
		return
	}
	if l.typ == "" {
		hint := ""
		for _, st := range serviceTypes {
			if strings.EqualFold(st, t) {
				hint = fmt.Sprintf("; did you mean %q?", st)
			}
		}
		d.errorf(l, "type", typePair.keyNode.Line,
			"unknown service type %q (want Function, KeyValueTable, Storage or Gateway)%s", t, hint)
		return
	}
	var name string
	names := func(p pair) bool {
		switch p.key {
		case "type":
		case "name":
			name, _ = d.text(l, p.field, p.val)
		default:
			return false
		}
		return true
	}
	switch typ {
	case TypeFunction:
		var f Function
		for _, p := range ps {
			switch {
			case names(p):
			case p.key == "binary":
				f.Binary, _ = d.text(l, p.field, p.val)
			case p.key == "runtime":
				f.Runtime, _ = d.text(l, p.field, p.val)
			case p.key == "memory_limit":
				if s, ok := d.text(l, p.field, p.val); ok && s != "" {
					v, err := ParseByteSize(s)
					if err != nil {
						d.errorf(l, p.field, p.keyNode.Line, "%v", err)
					}
					f.MemoryLimit = v
				}
			case p.key == "env":
				f.Env = d.env(l, p)
			default:
				d.unknown(l, p, "type, name, binary, runtime, memory_limit, env")
			}
		}
		f.Name = name
		d.src.index[svcRef{typ, len(m.Functions)}] = i
		m.Functions = append(m.Functions, f)
	case TypeKeyValueTable:
		for _, p := range ps {
			if !names(p) {
				d.unknown(l, p, "type, name")
			}
		}
		d.src.index[svcRef{typ, len(m.Tables)}] = i
		m.Tables = append(m.Tables, KeyValueTable{Name: name})
	case TypeStorage:
		var st Storage
		for _, p := range ps {
			switch {
			case names(p):
			case p.key == "public":
				st.Public, _ = d.boolean(l, p.field, p.val)
			default:
				d.unknown(l, p, "type, name, public")
			}
		}
		st.Name = name
		d.src.index[svcRef{typ, len(m.Storages)}] = i
		m.Storages = append(m.Storages, st)
	case TypeGateway:
		g := Gateway{}
		gi := len(m.Gateways)
		for _, p := range ps {
			switch {
			case names(p):
			case p.key == "endpoints":
				g.Endpoints = d.endpoints(l, gi, p)
			default:
				d.unknown(l, p, "type, name, endpoints")
			}
		}
		g.Name = name
		d.src.index[svcRef{typ, gi}] = i
		m.Gateways = append(m.Gateways, g)
	}
}

func (d *decoder) env(l loc, p pair) map[string]string {
	n := resolve(p.val)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(l, p.field, p.val.Line, "must be a mapping of variable names to values, got %s", kindOf(n))
		return nil
	}
	ps := d.pairs(l, p.field, n, envField)
	if len(ps) == 0 {
		return nil
	}
	env := make(map[string]string, len(ps))
	for _, q := range ps {
		if v, ok := d.text(l, q.field, q.val); ok {
			env[q.key] = v
		}
	}
	return env
}

func envField(key string) string { return fmt.Sprintf("env[%q]", key) }

func pathField(path string) string { return fmt.Sprintf("endpoints[%q]", path) }

// methodField is the path of a short-form endpoint: endpoints["/p"].get, or
// endpoints["/p"]["odd key"] when the key is not a plain word.
func methodField(pf, key string) string {
	plain := key != ""
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || '0' <= c && c <= '9') {
			plain = false
		}
	}
	if plain {
		return pf + "." + key
	}
	return fmt.Sprintf("%s[%q]", pf, key)
}

// upperASCII upper-cases ASCII letters only, so that no exotic rune turns
// into a valid method name.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func splitRoute(r string) (assembly, function string) {
	assembly, function, _ = strings.Cut(r, ".")
	return assembly, function
}

func (d *decoder) endpoints(l loc, gi int, p pair) []Endpoint {
	n := resolve(p.val)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(l, p.field, p.val.Line, "must be a mapping of paths to methods, got %s", kindOf(n))
		return nil
	}
	type located struct {
		ep  Endpoint
		src epSource
	}
	var eps []located
	for _, pp := range d.pairs(l, p.field, n, pathField) {
		path := pp.key
		v := resolve(pp.val)
		switch v.Kind {
		case yaml.SequenceNode: // - method: get
			//   route_to: f.g
			for j, item := range v.Content {
				ef := fmt.Sprintf("%s[%d]", pp.field, j)
				d.src.lines[fieldKey{l.index, ef}] = item.Line
				it := resolve(item)
				if it.Kind != yaml.MappingNode {
					d.errorf(l, ef, item.Line, "must be a mapping with method and route_to, got %s", kindOf(it))
					continue
				}
				e := Endpoint{Path: path}
				for _, q := range d.pairs(l, ef, it, child(ef)) {
					switch q.key {
					case "method":
						s, _ := d.text(l, q.field, q.val)
						e.Method = upperASCII(s)
					case "route_to":
						e.RouteTo, _ = d.text(l, q.field, q.val)
					default:
						d.unknown(l, q, "method, route_to")
					}
				}
				e.Assembly, e.Function = splitRoute(e.RouteTo)
				eps = append(eps, located{e, epSource{prefix: ef}})
			}
		case yaml.MappingNode: // {get: f.g}
			for _, q := range d.pairs(l, pp.field, v, func(k string) string { return methodField(pp.field, k) }) {
				e := Endpoint{Path: path, Method: upperASCII(q.key)}
				e.RouteTo, _ = d.text(l, q.field, q.val)
				e.Assembly, e.Function = splitRoute(e.RouteTo)
				eps = append(eps, located{e, epSource{prefix: q.field, short: true}})
			}
		default:
			d.errorf(l, pp.field, pp.keyNode.Line,
				"must be a list of {method, route_to} or a mapping of method to route_to, got %s", kindOf(v))
		}
	}
	slices.SortStableFunc(eps, func(a, b located) int {
		return cmp.Or(strings.Compare(a.ep.Path, b.ep.Path), strings.Compare(a.ep.Method, b.ep.Method))
	})
	if len(eps) == 0 {
		return nil
	}
	out := make([]Endpoint, len(eps))
	for k, e := range eps {
		out[k] = e.ep
		d.src.endpoints[epRef{gi, k}] = e.src
	}
	return out
}
