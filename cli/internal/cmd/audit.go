package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/usage"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
	"github.com/muprotocol/mu/services/runtime"
)

// auditFlags are mu audit's options.
type auditFlags struct {
	file          string
	billing       string
	storage       string
	binary        string
	chainIndexer  string
	runtimeConfig string
	env           []string
	tls           *tlsFlags  // the client certificate (flags, else the profile's)
	ctls          *clientTLS // resolved from tls by audit
}

func newAuditCommand() *cobra.Command {
	var f auditFlags
	cmd := &cobra.Command{
		Use:   "audit [RECEIPT_ID]",
		Short: "Re-run a sampled call from its signed receipt and compare the fuel",
		Long: `Audit checks a bill: it takes the signed receipt of a sampled call (by id
from billing with --billing ADDR, or from a file with --file PATH holding a
SignedReceipt as protojson), verifies its signature (an altered receipt is
refused), checks the signer against the region's usage signer when
--chain-indexer ADDR is given, fetches the function's binary (--storage ADDR,
or --binary FILE), re-runs the call on a fresh instance with the engine
settings of a runtime node (the defaults, or --runtime-config FILE) and the
clock and random values the receipt recorded, and compares the fuel.

It prints "match: fuel N", or "MISMATCH: receipt says N, re-run used M".
Calls that read the database, storage or the network, and calls whose request
was too large to keep, cannot be re-run from their receipt; audit says so.

Exit status: 0 match, 1 mismatch, refused or not reproducible receipt, 2 usage
or I/O error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return audit(cmd, id, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.file, "file", "", "read the SignedReceipt (protojson) from this file instead of billing")
	fl.StringVar(&f.billing, "billing", "", "host:port of the billing service to fetch RECEIPT_ID from")
	fl.StringVar(&f.storage, "storage", "", "host:port of the storage service to fetch the binary from")
	fl.StringVar(&f.binary, "binary", "", "the function's wasm binary, instead of fetching it from storage")
	fl.StringVar(&f.chainIndexer, "chain-indexer", "", "host:port of the chain indexer: check the signer is the region's usage signer")
	fl.StringVar(&f.runtimeConfig, "runtime-config", "", "YAML file of the runtime node's settings (the engine settings must be the receipt's)")
	fl.StringArrayVar(&f.env, "env", nil, "KEY=VALUE of the function's environment as its manifest declares it (repeatable)")
	f.tls = addTLSFlags(fl)
	return cmd
}

func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

func refused(format string, args ...any) error {
	return &exitError{code: ExitInvalid, err: fmt.Errorf(format, args...)}
}

func audit(cmd *cobra.Command, id string, f auditFlags) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	sel, err := selectProfile(cmd)
	if err != nil {
		return err
	}
	if f.ctls, err = resolveTLS(f.tls, sel.profile, sel.name); err != nil {
		return err
	}
	cfg := runtime.DefaultConfig()
	if f.runtimeConfig != "" {
		if err := config.LoadWithDocsTo("runtime", &cfg, []string{"--config", f.runtimeConfig}, nil, cmd.ErrOrStderr()); err != nil {
			return usageErr("--runtime-config: %v", err)
		}
	}
	// The re-run happens in this process and serves or dials no one: no
	// TLS files, whatever the region's runtimes use.
	cfg.Plaintext = true
	opts := runtime.AuditOptions{Env: map[string]string{}}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageErr("--env %q: want KEY=VALUE", kv)
		}
		opts.Env[k] = v
	}

	sr, err := loadReceipt(ctx, id, f, cfg.MaxMessageBytes)
	if err != nil {
		return err
	}
	r, signer, err := usage.VerifyReceipt(sr)
	if err != nil {
		return refused("receipt refused: %v", err)
	}
	if id != "" && r.GetReceiptId() != id {
		return refused("receipt refused: billing answered receipt %q for id %q", r.GetReceiptId(), id)
	}
	if err := checkSigner(ctx, f.chainIndexer, f.ctls, r, signer, cfg.MaxMessageBytes); err != nil {
		return err
	}
	if f.chainIndexer == "" {
		fmt.Fprintf(out, "signature: valid, by %s (not checked against the region's usage signer: pass --chain-indexer)\n", signer)
	} else {
		fmt.Fprintf(out, "signature: valid, by %s, the region's usage signer\n", signer)
	}
	bin, err := loadBinary(ctx, r.GetBinaryId(), f, cfg.MaxMessageBytes)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "receipt %s: %s of binary %s, %d-byte memory limit, outcome %s, status %d\n",
		r.GetReceiptId(), r.GetFunction(), r.GetBinaryId(), r.GetMemoryLimitBytes(), r.GetOutcome(), r.GetStatus())
	res, err := runtime.Audit(ctx, cfg, bin, r, opts)
	switch {
	case errors.Is(err, runtime.ErrNotReproducible), errors.Is(err, runtime.ErrEngineMismatch), errors.Is(err, runtime.ErrBadReceiptInput):
		return refused("cannot audit: %v", err)
	case err != nil:
		return usageErr("audit: %v", err)
	}
	if res.Match {
		fmt.Fprintf(out, "match: fuel %d (%d MB-instructions)\n", res.Fuel, res.MbInstructions)
		return nil
	}
	fmt.Fprintf(out, "MISMATCH: receipt says %d, re-run used %d\n", r.GetFuel(), res.Fuel)
	if res.MbInstructions != r.GetMbInstructions() {
		fmt.Fprintf(out, "  mb_instructions: receipt says %d, re-run billed %d\n", r.GetMbInstructions(), res.MbInstructions)
	}
	if res.Outcome != r.GetOutcome() || res.Status != r.GetStatus() {
		fmt.Fprintf(out, "  re-run ended %s with status %d, the receipt says %s with %d\n", res.Outcome, res.Status, r.GetOutcome(), r.GetStatus())
	}
	if res.Message != "" {
		fmt.Fprintf(out, "  re-run error: %s\n", res.Message)
	}
	return &exitError{code: ExitInvalid}
}

// dial connects to the service of role at addr, with the client
// certificate of ctls (plaintext without one).
func dial(addr string, role certs.Role, ctls *clientTLS, maxMsg int) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, ctls.dialOption(role),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg)))
}

// fetchErr is a failed fetch from a service: the transport security's
// error when it is one (transportErr), else a usage error.
func fetchErr(where string, err error, format string, args ...any) error {
	if terr := transportErr(where, err); terr != nil {
		return terr
	}
	return usageErr(format, args...)
}

// loadReceipt reads the signed receipt from --file or billing.
func loadReceipt(ctx context.Context, id string, f auditFlags, maxMsg int) (*billingv1.SignedReceipt, error) {
	sr := new(billingv1.SignedReceipt)
	switch {
	case f.file != "" && id != "":
		return nil, usageErr("give either RECEIPT_ID (with --billing) or --file, not both")
	case f.file != "":
		b, err := readBounded(f.file, int64(maxMsg))
		if err != nil {
			return nil, usageErr("--file: %v", err)
		}
		if err := protojson.Unmarshal(b, sr); err != nil {
			return nil, refused("receipt refused: %s is not a SignedReceipt in protojson: %v", f.file, err)
		}
		return sr, nil
	case id == "":
		return nil, usageErr("name the receipt: RECEIPT_ID with --billing ADDR, or --file PATH")
	case f.billing == "":
		return nil, usageErr("RECEIPT_ID needs --billing ADDR (or give the receipt with --file)")
	}
	conn, err := dial(f.billing, certs.RoleBilling, f.ctls, maxMsg)
	if err != nil {
		return nil, usageErr("--billing %q: %v", f.billing, err)
	}
	defer conn.Close()
	resp, err := billingv1.NewBillingServiceClient(conn).GetReceipt(ctx, &billingv1.GetReceiptRequest{ReceiptId: id})
	if err != nil {
		return nil, fetchErr("billing at "+f.billing, err, "get receipt %q from billing %s: %v", id, f.billing, err)
	}
	return resp.GetReceipt(), nil
}

// readBounded reads the file at path, refusing one over limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes (max_message_bytes)", path, limit)
	}
	return b, nil
}

// checkSigner refuses a receipt whose signer is not its region's usage
// signer, as the chain indexer has it (when chainIndexer is set).
func checkSigner(ctx context.Context, chainIndexer string, ctls *clientTLS, r *billingv1.Receipt, signer ledger.Pubkey, maxMsg int) error {
	if chainIndexer == "" {
		return nil
	}
	conn, err := dial(chainIndexer, certs.RoleChainIndexer, ctls, maxMsg)
	if err != nil {
		return usageErr("--chain-indexer %q: %v", chainIndexer, err)
	}
	defer conn.Close()
	resp, err := chainindexerv1.NewChainIndexerServiceClient(conn).ListRegions(ctx, &chainindexerv1.ListRegionsRequest{})
	if err != nil {
		return fetchErr("the chain-indexer at "+chainIndexer, err, "list regions from %s: %v", chainIndexer, err)
	}
	for _, reg := range resp.GetRegions() {
		if !bytes.Equal(reg.GetId(), r.GetRegionId()) {
			continue
		}
		if !bytes.Equal(reg.GetUsageSigner(), signer[:]) {
			return refused("receipt refused: signed by %s, but region %q's usage signer is %x", signer, reg.GetName(), reg.GetUsageSigner())
		}
		return nil
	}
	return refused("receipt refused: its region %x is not on the ledger (chain indexer %s)", r.GetRegionId(), chainIndexer)
}

// loadBinary reads the function's binary from --binary or storage, at
// most maxBytes (a deploy carries binaries within max_message_bytes).
func loadBinary(ctx context.Context, id string, f auditFlags, maxBytes int) ([]byte, error) {
	switch {
	case f.binary != "" && f.storage != "":
		return nil, usageErr("give either --binary or --storage, not both")
	case f.binary != "":
		b, err := readBounded(f.binary, int64(maxBytes))
		if err != nil {
			return nil, usageErr("--binary: %v", err)
		}
		return b, nil
	case f.storage == "":
		return nil, usageErr("the binary %s is needed: give --storage ADDR or --binary FILE", id)
	}
	conn, err := dial(f.storage, certs.RoleStorage, f.ctls, maxBytes)
	if err != nil {
		return nil, usageErr("--storage %q: %v", f.storage, err)
	}
	defer conn.Close()
	stream, err := storagev1.NewStorageServiceClient(conn).GetBinary(ctx, &storagev1.GetBinaryRequest{BinaryId: id})
	if err != nil {
		return nil, fetchErr("storage at "+f.storage, err, "get binary %s from storage %s: %v", id, f.storage, err)
	}
	var buf []byte
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, fetchErr("storage at "+f.storage, err, "get binary %s from storage %s: %v", id, f.storage, err)
		}
		if info := m.GetInfo(); info != nil && info.GetSize() > uint64(maxBytes) {
			return nil, usageErr("binary %s is %d bytes, more than max_message_bytes %d", id, info.GetSize(), maxBytes)
		}
		if len(buf)+len(m.GetChunk()) > maxBytes {
			return nil, usageErr("binary %s is more than max_message_bytes %d", id, maxBytes)
		}
		buf = append(buf, m.GetChunk()...)
	}
}
