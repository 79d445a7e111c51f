package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

const docsSource = `package x

type Batch struct {
	// Size is the most records per report.
	Size int
}

type Svc struct {
	// Addr is where it listens (host:port).
	Addr string
	Timeout time.Duration // Timeout bounds one call.
	Usage Batch
}
`

type Batch struct{ Size int }

type Svc struct {
	Addr    string
	Timeout time.Duration
	Usage   Batch
}

func TestLoad_NamedStructFieldsArePrefixedSettings(t *testing.T) {
	cfg := Svc{Addr: "a", Usage: Batch{Size: 1}}
	env := []string{"MU_SVC_USAGE_SIZE=7"}
	if err := load("svc", &cfg, []string{"--timeout=2s"}, env, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if cfg.Usage.Size != 7 || cfg.Timeout != 2*time.Second {
		t.Fatalf("got %+v", cfg)
	}
}

func TestParseDocs_ReadsFieldComments(t *testing.T) {
	docs, err := ParseDocs([]byte(docsSource))
	if err != nil {
		t.Fatal(err)
	}
	want := Docs{
		"Batch.Size":  "Size is the most records per report.",
		"Svc.Addr":    "Addr is where it listens (host:port).",
		"Svc.Timeout": "Timeout bounds one call.",
		"Svc.Usage":   "",
	}
	for k, v := range want {
		if docs[k] != v {
			t.Errorf("%s: got %q, want %q", k, docs[k], v)
		}
	}
	if _, err := ParseDocs([]byte("package")); err == nil {
		t.Error("bad source accepted")
	}
}

func TestLoad_HelpListsDocTypeDefaultAndEnv(t *testing.T) {
	docs, err := ParseDocs([]byte(docsSource))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cfg := Svc{Addr: "127.0.0.1:1", Timeout: time.Second, Usage: Batch{Size: 3}}
	err = loadDocs("svc", &cfg, []string{"--help"}, nil, &out, docs)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{
		`--addr string (default "127.0.0.1:1")`,
		"Addr is where it listens (host:port).",
		"env MU_SVC_ADDR",
		"--timeout duration (default 1s)",
		"Timeout bounds one call.",
		"--usage-size int (default 3)",
		"Size is the most records per report.",
		"yaml usage_size, env MU_SVC_USAGE_SIZE",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
