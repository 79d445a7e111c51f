package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/muprotocol/mu/libs/manifest"
	"github.com/spf13/cobra"
)

// defaultManifest is the manifest mu reads when no file is named.
const defaultManifest = "mu.yaml"

func newValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a stack manifest",
		Long: `Validate parses a stack manifest (./mu.yaml by default; a directory means
its mu.yaml, and - reads standard input) and checks it against the rules of
the mu manifest format.

A valid manifest gets a one-line summary on standard output. Otherwise every
problem is printed on standard error as FILE:LINE: SERVICE: FIELD: MESSAGE.

Exit status: 0 valid, 1 invalid manifest, 2 usage or I/O error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := defaultManifest
			if len(args) == 1 {
				path = args[0]
			}
			return validate(cmd, path)
		},
	}
}

func validate(cmd *cobra.Command, path string) error {
	name, data, err := readManifest(cmd.InOrStdin(), path)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	m, err := manifest.Parse(data)
	if err != nil {
		reportManifestError(cmd.ErrOrStderr(), name, err)
		return &exitError{code: ExitInvalid}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: valid stack %q %s: %s\n", name, m.Name, m.Version, summary(m))
	return nil
}

// readManifest reads the manifest at path ("-" is standard input, a
// directory stands for its mu.yaml) and returns the name to report it under.
// It reads at most one byte more than manifest.MaxManifestSize, so that
// Parse can refuse a larger input without mu reading all of it.
func readManifest(stdin io.Reader, path string) (name string, data []byte, err error) {
	var r io.Reader
	if path == "-" {
		name, r = "<stdin>", stdin
	} else {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			path = filepath.Join(path, defaultManifest)
		}
		name = filepath.Clean(path)
		f, err := os.Open(path)
		if err != nil {
			return name, nil, fmt.Errorf("cannot read manifest: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err = io.ReadAll(io.LimitReader(r, manifest.MaxManifestSize+1))
	if err != nil {
		return name, nil, fmt.Errorf("cannot read manifest %s: %w", name, err)
	}
	return name, data, nil
}

// reportManifestError prints the problems of a manifest one per line,
// compiler-style: "mu.yaml:14: services[2] (Gateway "greeting"): ...".
func reportManifestError(w io.Writer, name string, err error) {
	where := func(line int) string {
		if line > 0 {
			return fmt.Sprintf("%s:%d", name, line)
		}
		return name
	}
	var verr *manifest.ValidationError
	var serr *manifest.SyntaxError
	switch {
	case errors.As(err, &verr):
		for _, fe := range verr.Errors {
			fmt.Fprintf(w, "%s: %v\n", where(fe.Line), fe)
		}
	case errors.As(err, &serr):
		fmt.Fprintf(w, "%s: invalid YAML: %s\n", where(serr.Line), serr.Msg)
	case errors.Is(err, manifest.ErrTooLarge):
		fmt.Fprintf(w, "%s: the manifest is larger than the limit of %d bytes\n", name, manifest.MaxManifestSize)
	default:
		fmt.Fprintf(w, "%s: %v\n", name, err)
	}
}

// summary counts a manifest's services: "1 function, 1 table, 1 storage,
// 1 gateway (1 endpoint)".
func summary(m *manifest.Manifest) string {
	parts := []string{
		count(len(m.Functions), "function"),
		count(len(m.Tables), "table"),
		count(len(m.Storages), "storage"),
		count(len(m.Gateways), "gateway"),
	}
	if len(m.Gateways) > 0 {
		parts[3] += " (" + count(m.EndpointCount(), "endpoint") + ")"
	}
	return strings.Join(parts, ", ")
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
