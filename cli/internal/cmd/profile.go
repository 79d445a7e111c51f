package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/muprotocol/mu/libs/ledger"
)

// configDir is where mu keeps the user's settings and keys:
// $MU_CONFIG_DIR when set (tests), else <os.UserConfigDir>/mu
// ($XDG_CONFIG_HOME/mu or ~/.config/mu on Linux).
func configDir() (string, error) {
	if d := os.Getenv("MU_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory: set XDG_CONFIG_HOME or HOME: %w", err)
	}
	return filepath.Join(d, "mu"), nil
}

// Profile is one region a person talks to: its endpoints, its ledger and
// the keypair that signs for them. Every field may be empty (unknown).
type Profile struct {
	Gateway       string `yaml:"gateway,omitempty" json:"gateway,omitempty"`               // public HTTP base URL of the gateway
	Storage       string `yaml:"storage,omitempty" json:"storage,omitempty"`               // HTTP base URL of storage (uploads, public reads)
	Indexer       string `yaml:"indexer,omitempty" json:"indexer,omitempty"`               // gRPC address of the chain-indexer
	Billing       string `yaml:"billing,omitempty" json:"billing,omitempty"`               // gRPC address of billing
	LedgerBackend string `yaml:"ledger_backend,omitempty" json:"ledger_backend,omitempty"` // "local" (served by the chain-indexer) or "solana"
	LedgerAddr    string `yaml:"ledger_addr,omitempty" json:"ledger_addr,omitempty"`       // the ledger's address: mu.ledger.v1 gRPC for local, JSON-RPC URL for solana
	Keypair       string `yaml:"keypair,omitempty" json:"keypair,omitempty"`               // path of the Solana JSON keypair that signs
	// The Solana ledger (ledger_backend solana): the CLI sends its writes
	// to the node at ledger_addr itself, as transactions its keypair signs.
	LedgerWSURL      string `yaml:"ledger_ws_url,omitempty" json:"ledger_ws_url,omitempty"`         // the node's websocket URL (default: derived from ledger_addr, the port one above)
	LedgerProgramID  string `yaml:"ledger_program_id,omitempty" json:"ledger_program_id,omitempty"` // the marketplace program's address (default: the deployed program's)
	LedgerCommitment string `yaml:"ledger_commitment,omitempty" json:"ledger_commitment,omitempty"` // processed, confirmed (the default) or finalized
	FeePayer         string `yaml:"fee_payer,omitempty" json:"fee_payer,omitempty"`                 // path of the Solana JSON keypair that pays the fees (default: keypair)
	// The client certificate for the region's gRPC services (mTLS): all
	// three or none (plaintext). An operator's, from mu certs issue --role
	// operator or mu certs region (operator/tls.crt, tls.key, ca.crt).
	TLSCert string `yaml:"tls_cert,omitempty" json:"tls_cert,omitempty"` // path of the PEM certificate
	TLSKey  string `yaml:"tls_key,omitempty" json:"tls_key,omitempty"`   // path of its PEM private key
	TLSCA   string `yaml:"tls_ca,omitempty" json:"tls_ca,omitempty"`     // path of the PEM CA bundle of the region's services
}

// profileFields are the settable fields, by name (the yaml keys).
var profileFields = map[string]func(*Profile) *string{
	"gateway":           func(p *Profile) *string { return &p.Gateway },
	"storage":           func(p *Profile) *string { return &p.Storage },
	"indexer":           func(p *Profile) *string { return &p.Indexer },
	"billing":           func(p *Profile) *string { return &p.Billing },
	"ledger_backend":    func(p *Profile) *string { return &p.LedgerBackend },
	"ledger_addr":       func(p *Profile) *string { return &p.LedgerAddr },
	"keypair":           func(p *Profile) *string { return &p.Keypair },
	"ledger_ws_url":     func(p *Profile) *string { return &p.LedgerWSURL },
	"ledger_program_id": func(p *Profile) *string { return &p.LedgerProgramID },
	"ledger_commitment": func(p *Profile) *string { return &p.LedgerCommitment },
	"fee_payer":         func(p *Profile) *string { return &p.FeePayer },
	"tls_cert":          func(p *Profile) *string { return &p.TLSCert },
	"tls_key":           func(p *Profile) *string { return &p.TLSKey },
	"tls_ca":            func(p *Profile) *string { return &p.TLSCA },
}

// pathKeys are the profile keys that name files: mu config set stores them
// as absolute paths.
var pathKeys = map[string]bool{"keypair": true, "fee_payer": true, "tls_cert": true, "tls_key": true, "tls_ca": true}

// userConfig is the file config.yaml in configDir.
type userConfig struct {
	// Current names the profile used without --profile.
	Current  string              `yaml:"current,omitempty"`
	Profiles map[string]*Profile `yaml:"profiles,omitempty"`
}

func configPath() (string, error) {
	d, err := configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "config.yaml"), nil
}

// loadUserConfig reads config.yaml; a missing file is an empty config,
// and an unknown key is an error naming it.
func loadUserConfig() (*userConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	c := &userConfig{Profiles: map[string]*Profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return nil, path, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, path, fmt.Errorf("%s: %v (keys: current, profiles.NAME.{%s})", path, err, strings.Join(profileKeys(), ", "))
	}
	if c.Profiles == nil {
		c.Profiles = map[string]*Profile{}
	}
	for name, p := range c.Profiles {
		if p == nil {
			c.Profiles[name] = &Profile{}
		}
	}
	return c, path, nil
}

func (c *userConfig) save(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func profileKeys() []string {
	keys := make([]string, 0, len(profileFields))
	for k := range profileFields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *userConfig) names() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// profile returns the named profile (name "" means the current one; no
// current one and no profiles is an empty profile, named "").
func (c *userConfig) profile(name string) (string, *Profile, error) {
	if name == "" {
		name = c.Current
	}
	if name == "" {
		return "", &Profile{}, nil
	}
	p, ok := c.Profiles[name]
	if !ok {
		have := "none yet"
		if len(c.Profiles) > 0 {
			have = strings.Join(c.names(), ", ")
		}
		return name, nil, fmt.Errorf("no profile %q (profiles: %s); create it with: mu config set %s gateway=URL indexer=ADDR ...", name, have, name)
	}
	return name, p, nil
}

// selected is the profile a command runs with, and the config it is in.
type selected struct {
	cfg     *userConfig
	path    string // config.yaml
	name    string // "" when there is no profile at all
	profile *Profile
}

// selectProfile loads config.yaml and picks --profile, else the current
// profile; every command that talks to a region starts here. Errors are
// usage errors (exit 2) that name the file, the key or the profile.
func selectProfile(cmd *cobra.Command) (selected, error) {
	c, path, err := loadUserConfig()
	if err != nil {
		return selected{}, &exitError{code: ExitUsage, err: err}
	}
	name, p, err := c.profile(profileFlag(cmd))
	if err != nil {
		return selected{}, &exitError{code: ExitUsage, err: err}
	}
	return selected{c, path, name, p}, nil
}

// profileFlag is the root's --profile.
func profileFlag(cmd *cobra.Command) string {
	f := cmd.Flag("profile")
	if f == nil {
		return ""
	}
	return f.Value.String()
}

func newConfigCommand() *cobra.Command {
	cfg := &cobra.Command{
		Use:   "config",
		Short: "Show and edit the profiles of regions mu talks to",
		Long: `A profile names a region's endpoints (gateway, storage, indexer, billing), its
ledger (ledger_backend, ledger_addr; for a Solana region also ledger_ws_url,
ledger_program_id, ledger_commitment and fee_payer, the keypair that pays the
transaction fees, by default keypair), the keypair that signs for you
(keypair) and the client certificate for the region's gRPC services when
they use mTLS (tls_cert, tls_key, tls_ca: all three or none; an operator's,
from mu certs issue --role operator or mu certs region). Profiles live in config.yaml under the user's config directory
($MU_CONFIG_DIR, else $XDG_CONFIG_HOME/mu, else ~/.config/mu); every command
takes --profile NAME, and its own flags override the profile's values.`,
	}
	var asJSON bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Print a profile (--profile, else the current one) and where it comes from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sel, err := selectProfile(cmd)
			if err != nil {
				return err
			}
			c, path, name, p := sel.cfg, sel.path, sel.name, sel.profile
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					File     string   `json:"file"`
					Name     string   `json:"name"`
					Current  bool     `json:"current"`
					Profile  *Profile `json:"profile"`
					Profiles []string `json:"profiles"`
				}{path, name, name != "" && name == c.Current, p, c.names()})
			}
			fmt.Fprintf(out, "config file: %s\n", path)
			if name == "" {
				fmt.Fprintf(out, "no profile yet: create one with mu config set NAME gateway=URL indexer=ADDR ... (keys: %s)\n", strings.Join(profileKeys(), ", "))
				return nil
			}
			marker := ""
			if name == c.Current {
				marker = " (current)"
			}
			fmt.Fprintf(out, "profile: %s%s\n", name, marker)
			for _, k := range profileKeys() {
				v := *profileFields[k](p)
				if v == "" {
					v = "-"
				}
				fmt.Fprintf(out, "  %-17s %s\n", k, v)
			}
			if len(c.Profiles) > 1 {
				fmt.Fprintf(out, "profiles: %s\n", strings.Join(c.names(), ", "))
			}
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print the profile as JSON")
	set := &cobra.Command{
		Use:   "set NAME KEY=VALUE...",
		Short: "Create or change a profile; the first profile becomes the current one",
		Long:  "Set sets the given keys of profile NAME (creating it); an empty VALUE clears a key. Keys: " + strings.Join(profileKeys(), ", ") + ".",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := loadUserConfig()
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			name := args[0]
			if name == "" || strings.ContainsAny(name, " =/") {
				return &exitError{code: ExitUsage, err: fmt.Errorf("profile name %q: want a word without spaces, '=' or '/'", name)}
			}
			p := c.Profiles[name]
			if p == nil {
				p = &Profile{}
			}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				field, known := profileFields[k]
				switch {
				case !ok:
					return &exitError{code: ExitUsage, err: fmt.Errorf("%q: want KEY=VALUE", kv)}
				case !known:
					return &exitError{code: ExitUsage, err: fmt.Errorf("%q is not a profile key (keys: %s)", k, strings.Join(profileKeys(), ", "))}
				case k == "ledger_backend" && v != "" && v != "local" && v != "solana":
					return &exitError{code: ExitUsage, err: fmt.Errorf("ledger_backend %q: want local or solana", v)}
				case pathKeys[k] && v != "":
					abs, err := filepath.Abs(v)
					if err != nil {
						return &exitError{code: ExitUsage, err: err}
					}
					v = abs
				}
				*field(p) = v
			}
			c.Profiles[name] = p
			if c.Current == "" {
				c.Current = name
			}
			if err := c.save(path); err != nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("save %s: %w", path, err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "profile %s saved in %s\n", name, path)
			return nil
		},
	}
	use := &cobra.Command{
		Use:   "use NAME",
		Short: "Make NAME the current profile",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := loadUserConfig()
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			if _, _, err := c.profile(args[0]); err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			c.Current = args[0]
			if err := c.save(path); err != nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("save %s: %w", path, err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "current profile: %s\n", args[0])
			return nil
		},
	}
	cfg.AddCommand(show, set, use)
	return cfg
}

func newKeygenCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make an ed25519 keypair in Solana's JSON format (file mode 0600)",
		Long: `Keygen makes a new keypair and writes it, as Solana's JSON keypair format
(an array of 64 numbers: the private seed, then the public key), to --out
(default: keys/id.json under the user's config directory) with file mode
0600. It never overwrites a file. It prints the public key (base58): your
address on the ledger as a developer, a provider or a region's usage
signer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := out
			if path == "" {
				d, err := configDir()
				if err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				path = filepath.Join(d, "keys", "id.json")
			}
			if _, err := os.Stat(path); err == nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("%s exists: mu keygen never overwrites a keypair; pass --out for another file", path)}
			}
			k, err := ledger.GenerateKeypair()
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			if err := ledger.SaveKeypair(path, k); err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", k.Pubkey())
			fmt.Fprintf(cmd.ErrOrStderr(), "keypair written to %s (mode 0600); use it in a profile with: mu config set NAME keypair=%s\n", path, path)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "file to write the keypair to (default: keys/id.json under the user's config directory)")
	return cmd
}
