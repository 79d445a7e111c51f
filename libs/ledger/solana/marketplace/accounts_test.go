package marketplace

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// decoded is one account value with its decoder, run over its encoding.
type decodeCase struct {
	name   string
	value  any
	data   []byte
	decode func([]byte) (any, error)
}

func wrap[T any](f func([]byte) (T, error)) func([]byte) (any, error) {
	return func(b []byte) (any, error) { v, err := f(b); return v, err }
}

func decodeCases() []decodeCase {
	state := MuState{Authority: k(1), Mint: k(2), DepositToken: k(3), CommissionToken: k(4), CommissionRateMicros: 9, ProviderDeposit: 10, Bump: 11}
	auth := ProviderAuthorizer{Authorizer: k(5), Bump: 6}
	prov := Provider{Owner: k(7), Authorized: true, Name: "Prövider", Deposit: 8, Bump: 9}
	reg := ProviderRegion{Provider: k(10), RegionNum: 11, Rates: fixedRates, MinEscrowBalance: 12, MaxGigaInstructionsPerCall: 13, Bump: 14, Name: "n", BaseURL: "https://b"}
	active := Stack{User: k(15), Region: k(16), Seed: 17, Bump: 18, State: StackState{Kind: StackActive, Revision: 19, Name: "st", StackData: []byte("yaml")}}
	deleted := Stack{User: k(15), Region: k(16), Seed: 17, Bump: 18, State: StackState{Kind: StackDeleted}}
	ars := APIRequestSigner{Signer: k(20), User: k(21), Region: k(22), Bump: 23, Active: true}
	aus := AuthorizedUsageSigner{Signer: k(24), TokenAccount: k(25)}
	upd := UsageUpdate{Region: k(26), Stack: k(27), Seed: u128(28, 29), Usage: fixedUsage}
	return []decodeCase{
		{"MuState", state, state.Encode(), wrap(DecodeMuState)},
		{"ProviderAuthorizer", auth, auth.Encode(), wrap(DecodeProviderAuthorizer)},
		{"Provider", prov, prov.Encode(), wrap(DecodeProvider)},
		{"ProviderRegion", reg, reg.Encode(), wrap(DecodeProviderRegion)},
		{"Stack", active, active.Encode(), wrap(DecodeStack)},
		{"Stack", deleted, deleted.Encode(), wrap(DecodeStack)},
		{"ApiRequestSigner", ars, ars.Encode(), wrap(DecodeAPIRequestSigner)},
		{"AuthorizedUsageSigner", aus, aus.Encode(), wrap(DecodeAuthorizedUsageSigner)},
		{"UsageUpdate", upd, upd.Encode(), wrap(DecodeUsageUpdate)},
	}
}

func TestDecoders_ReadBackEncodedAccounts(t *testing.T) {
	for _, c := range decodeCases() {
		got, err := c.decode(c.data)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.value) {
			t.Errorf("%s: decoded %#v, want %#v", c.name, got, c.value)
		}
	}
}

// A stack's account keeps the size update_stack gave it; data reallocated
// larger, or an account allocated bigger than its encoding, ends in zeros.
func TestDecoders_AcceptTrailingZeroBytes(t *testing.T) {
	for _, c := range decodeCases() {
		padded := append(append([]byte{}, c.data...), make([]byte, 40)...)
		got, err := c.decode(padded)
		if err != nil || !reflect.DeepEqual(got, c.value) {
			t.Errorf("%s with 40 trailing zeros: %#v, %v", c.name, got, err)
		}
	}
}

func TestDecoders_RefuseTruncatedDataNamingTheAccount(t *testing.T) {
	for _, c := range decodeCases() {
		for _, n := range []int{0, 7, 8, len(c.data) - 1} {
			_, err := c.decode(c.data[:n])
			if err == nil {
				t.Errorf("%s truncated to %d bytes decoded", c.name, n)
				continue
			}
			if !strings.Contains(err.Error(), c.name) {
				t.Errorf("%s truncated to %d: error %q does not name the account", c.name, n, err)
			}
			want := ErrDidNotDeserialize
			if n < 8 {
				want = ErrDiscriminatorNotFound
			}
			if !errors.Is(err, want) {
				t.Errorf("%s truncated to %d: %v, want %v", c.name, n, err, want)
			}
		}
	}
}

func TestDecoders_RefuseAnotherAccountsData(t *testing.T) {
	_, err := DecodeProvider(MuState{}.Encode())
	if !errors.Is(err, ErrDiscriminatorMismatch) || !strings.Contains(err.Error(), "is a MuState account") {
		t.Errorf("Provider from MuState data: %v", err)
	}
	_, err = DecodeStack(make([]byte, 100))
	if !errors.Is(err, ErrDiscriminatorMismatch) || !strings.Contains(err.Error(), "Stack") {
		t.Errorf("Stack from zeros: %v", err)
	}
}

func TestDecoders_AreAsStrictAsBorshRs(t *testing.T) {
	prov := Provider{Owner: k(1), Name: "ok"}.Encode()
	badBool := append([]byte{}, prov...)
	badBool[ProviderAuthorizedOffset] = 2
	if _, err := DecodeProvider(badBool); err == nil || !strings.Contains(err.Error(), "Provider.authorized") {
		t.Errorf("authorized byte 2: %v", err)
	}
	badUTF8 := append([]byte{}, prov...)
	badUTF8[ProviderAuthorizedOffset+1+4] = 0xff // first byte of the name
	if _, err := DecodeProvider(badUTF8); err == nil || !strings.Contains(err.Error(), "Provider.name") {
		t.Errorf("name not UTF-8: %v", err)
	}
	st := Stack{State: StackState{Kind: StackDeleted}}.Encode()
	st[StackStateOffset] = 2
	if _, err := DecodeStack(st); err == nil || !strings.Contains(err.Error(), "StackState variant 2") {
		t.Errorf("StackState variant 2: %v", err)
	}
	huge := Provider{Name: "x"}.Encode()
	copy(huge[ProviderAuthorizedOffset+1:], []byte{0xff, 0xff, 0xff, 0xff})
	if _, err := DecodeProvider(huge); err == nil || !strings.Contains(err.Error(), "length 4294967295") {
		t.Errorf("name length 2^32-1: %v", err)
	}
}

func TestDecodedBytes_DoNotAliasTheInput(t *testing.T) {
	data := Stack{State: StackState{StackData: []byte{1, 2, 3}}}.Encode()
	s, err := DecodeStack(data)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] = 9
	if s.State.StackData[2] != 3 {
		t.Error("StackData changed with the account data it was read from")
	}
}

func TestDecodeAccount_PicksTheTypeByDiscriminator(t *testing.T) {
	for _, c := range decodeCases() {
		got, err := DecodeAccount(c.data)
		if err != nil || !reflect.DeepEqual(got, c.value) {
			t.Errorf("%s: DecodeAccount = %#v, %v", c.name, got, err)
		}
	}
	if _, err := DecodeAccount(make([]byte, 50)); !errors.Is(err, ErrDiscriminatorMismatch) {
		t.Errorf("zeros: %v", err)
	}
	if _, err := DecodeAccount([]byte{1}); !errors.Is(err, ErrDiscriminatorNotFound) {
		t.Errorf("one byte: %v", err)
	}
	if _, err := DecodeAccount(StackDiscriminator[:]); !errors.Is(err, ErrDidNotDeserialize) {
		t.Errorf("a bare Stack discriminator: %v", err)
	}
}
