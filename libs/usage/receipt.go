package usage

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/ledger"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// ReceiptSink receives the receipts of sampled calls (the runtime sends
// them; billing signs and keeps them). Delivery is best effort: a receipt
// is evidence for an audit, not money, so a sender may drop receipts it
// cannot deliver (and counts them). Implementations must be safe for
// concurrent use.
type ReceiptSink interface {
	ReportReceipts(ctx context.Context, receipts ...*billingv1.Receipt) error
}

// receiptDomain prefixes the bytes a receipt signature covers, so that the
// region's usage signer key cannot be tricked into signing a ledger write
// that happens to look like a receipt.
const receiptDomain = "mu-receipt/v1\x00"

// RequestHash is the receipt's request_hash of request bytes (SHA-256).
func RequestHash(request []byte) []byte {
	h := sha256.Sum256(request)
	return h[:]
}

// SignReceipt encodes r and signs the encoding with signer (the region's
// usage signer).
func SignReceipt(signer ledger.Signer, r *billingv1.Receipt) (*billingv1.SignedReceipt, error) {
	if signer == nil {
		return nil, errors.New("usage: sign receipt: no signer")
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("usage: encode receipt %q: %w", r.GetReceiptId(), err)
	}
	sig, err := signer.Sign(append([]byte(receiptDomain), b...))
	if err != nil {
		return nil, fmt.Errorf("usage: sign receipt %q: %w", r.GetReceiptId(), err)
	}
	pk := signer.Pubkey()
	return &billingv1.SignedReceipt{Receipt: b, Signer: pk[:], Signature: sig}, nil
}

// ErrBadReceipt is what VerifyReceipt returns, wrapped with the reason,
// for a receipt that is not what its signer signed.
var ErrBadReceipt = errors.New("usage: receipt does not verify")

// VerifyReceipt checks the signature of sr over its receipt bytes and that
// the request it carries has the request_hash it names, and returns the
// decoded receipt and the key that signed it. Whether that key is the
// region's usage signer is the caller's to check (the ledger names it).
func VerifyReceipt(sr *billingv1.SignedReceipt) (*billingv1.Receipt, ledger.Pubkey, error) {
	var pk ledger.Pubkey
	if len(sr.GetSigner()) != len(pk) {
		return nil, pk, fmt.Errorf("%w: signer is %d bytes, want %d", ErrBadReceipt, len(sr.GetSigner()), len(pk))
	}
	copy(pk[:], sr.GetSigner())
	if len(sr.GetSignature()) != ed25519.SignatureSize {
		return nil, pk, fmt.Errorf("%w: signature is %d bytes, want %d", ErrBadReceipt, len(sr.GetSignature()), ed25519.SignatureSize)
	}
	msg := append([]byte(receiptDomain), sr.GetReceipt()...)
	if !ed25519.Verify(ed25519.PublicKey(pk[:]), msg, sr.GetSignature()) {
		return nil, pk, fmt.Errorf("%w: the signature of %s does not match the receipt bytes", ErrBadReceipt, pk)
	}
	r := new(billingv1.Receipt)
	if err := proto.Unmarshal(sr.GetReceipt(), r); err != nil {
		return nil, pk, fmt.Errorf("%w: decode: %v", ErrBadReceipt, err)
	}
	if len(r.GetRequest()) > 0 {
		if h := RequestHash(r.GetRequest()); string(h) != string(r.GetRequestHash()) {
			return nil, pk, fmt.Errorf("%w: request_hash %x is not the SHA-256 of the request it carries (%x)", ErrBadReceipt, r.GetRequestHash(), h)
		}
	}
	return r, pk, nil
}
