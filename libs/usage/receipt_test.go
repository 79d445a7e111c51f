package usage

import (
	"errors"
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

func TestReceipt_SignVerifyAndAlteredIsRefused(t *testing.T) {
	kp, err := ledger.GenerateKeypair()
	if err != nil {
		t.Fatal(err)
	}
	req := []byte("request bytes")
	r := &billingv1.Receipt{ReceiptId: "rt/1", Function: "hello.say", Request: req, RequestHash: RequestHash(req), Fuel: 12345}
	sr, err := SignReceipt(kp, r)
	if err != nil {
		t.Fatal(err)
	}
	got, pk, err := VerifyReceipt(sr)
	if err != nil || pk != kp.Pubkey() || got.GetFuel() != 12345 {
		t.Fatalf("verify = %v %s %v", got, pk, err)
	}

	altered := &billingv1.SignedReceipt{Receipt: append([]byte(nil), sr.Receipt...), Signer: sr.Signer, Signature: sr.Signature}
	altered.Receipt[len(altered.Receipt)-1] ^= 1 // the fuel's last byte
	if _, _, err := VerifyReceipt(altered); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("altered receipt: %v", err)
	}

	// A receipt signed with a request that does not match its hash.
	bad := &billingv1.Receipt{ReceiptId: "rt/2", Request: req, RequestHash: RequestHash([]byte("other"))}
	sb, err := SignReceipt(kp, bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyReceipt(sb); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("hash mismatch: %v", err)
	}
}
