package config

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"reflect"
	"strings"
)

// Docs maps "Type.Field" to the doc comment of that struct field, for
// --help. Build it with ParseDocs from the Go source of the config types,
// which a service embeds (//go:embed config.go) so the help text can never
// drift from the code.
type Docs map[string]string

// ParseDocs reads the doc comments of the fields of every struct type
// declared in srcs (Go source files). Later sources add to earlier ones.
func ParseDocs(srcs ...[]byte) (Docs, error) {
	docs := Docs{}
	fset := token.NewFileSet()
	for i, src := range srcs {
		f, err := parser.ParseFile(fset, fmt.Sprintf("source%d.go", i), src, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("config: docs: %w", err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, fl := range st.Fields.List {
				text := fl.Doc.Text()
				if text == "" {
					text = fl.Comment.Text()
				}
				for _, name := range fl.Names {
					docs[ts.Name.Name+"."+name.Name] = strings.TrimSpace(text)
				}
			}
			return false
		})
	}
	return docs, nil
}

// Merge returns the union of docs, later entries winning.
func Merge(docs ...Docs) Docs {
	out := Docs{}
	for _, d := range docs {
		for k, v := range d {
			out[k] = v
		}
	}
	return out
}

// usage prints every setting: flag, type, default, environment variable and
// doc comment.
func usage(w io.Writer, service, envPrefix string, fs []field, docs Docs) {
	fmt.Fprintf(w, "Settings of %s, each from (later wins) a YAML file (--config), the environment or a flag:\n\n", service)
	fmt.Fprintf(w, "  --config FILE\n      YAML file with settings, keys in snake_case. env %sCONFIG\n", envPrefix)
	fmt.Fprintf(w, "\n  --check-config\n      Load the settings (file, environment, flags), check them, say\n      whether they are valid and exit (0 valid, 2 not) without starting.\n")
	for _, f := range fs {
		fmt.Fprintf(w, "\n  --%s %s (default %s)\n", strings.ReplaceAll(f.name, "_", "-"), typeName(f.value.Type()), quoteDefault(f))
		if d := docs[f.doc]; d != "" {
			for _, line := range strings.Split(d, "\n") {
				fmt.Fprintf(w, "      %s\n", line)
			}
		}
		fmt.Fprintf(w, "      yaml %s, env %s%s\n", f.name, envPrefix, strings.ToUpper(f.name))
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Slice:
		return "list"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "int"
	}
	return t.Kind().String()
}

func quoteDefault(f field) string {
	s := get(f)
	if f.value.Kind() == reflect.String || f.value.Kind() == reflect.Slice {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// MustParseDocs is ParseDocs for a package's own embedded source, which
// compiled and so parses: it panics on an error.
func MustParseDocs(srcs ...[]byte) Docs {
	d, err := ParseDocs(srcs...)
	if err != nil {
		panic(err)
	}
	return d
}
