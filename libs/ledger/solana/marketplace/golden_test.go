package marketplace

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/gagliardetto/solana-go"
)

// The golden bytes below are written out by hand from the program's
// source (marketplace/programs/marketplace/src/lib.rs of mu 2023): the
// discriminators are computed here with crypto/sha256, every other byte is
// spelled out field by field.

// hexBytes decodes hex written with spaces and line breaks between fields.
func hexBytes(t testing.TB, parts ...string) []byte {
	t.Helper()
	s := strings.Join(strings.Fields(strings.Join(parts, " ")), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// sighashHex is sha256(namespace:name)[:8] in hex.
func sighashHex(namespace, name string) string {
	sum := sha256.Sum256([]byte(namespace + ":" + name))
	return hex.EncodeToString(sum[:8])
}

// k is the key whose 32 bytes are all b; kh is its hex.
func k(b byte) solana.PublicKey { return solana.PublicKeyFromBytes(bytes.Repeat([]byte{b}, 32)) }
func kh(b byte) string          { return strings.Repeat(hex.EncodeToString([]byte{b}), 32) }

func equalBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", what, got, want)
	}
}

func TestAccountDiscriminators_AreSha256OfAccountColonName(t *testing.T) {
	for name, d := range map[string]Discriminator{
		"MuState":               MuStateDiscriminator,
		"ProviderAuthorizer":    ProviderAuthorizerDiscriminator,
		"Provider":              ProviderDiscriminator,
		"ProviderRegion":        ProviderRegionDiscriminator,
		"Stack":                 StackDiscriminator,
		"ApiRequestSigner":      APIRequestSignerDiscriminator,
		"AuthorizedUsageSigner": AuthorizedUsageSignerDiscriminator,
		"UsageUpdate":           UsageUpdateDiscriminator,
	} {
		equalBytes(t, name, d[:], hexBytes(t, sighashHex("account", name)))
		if got := KindOf(append(d[:], 0, 0)); got != name {
			t.Errorf("KindOf(%s discriminator) = %q", name, got)
		}
	}
	if got := KindOf([]byte{1, 2, 3}); got != "" {
		t.Errorf("KindOf(3 bytes) = %q, want none", got)
	}
}

func TestInstructionDiscriminators_AreSha256OfGlobalColonSnakeName(t *testing.T) {
	names := []string{
		"initialize", "update_provider_deposit", "create_provider_authorizer", "create_provider",
		"authorize_provider", "create_region", "create_stack", "update_stack", "delete_stack",
		"create_api_request_signer", "activate_api_request_signer", "deactivate_api_request_signer",
		"create_authorized_usage_signer", "create_provider_escrow_account", "withdraw_escrow_balance",
		"update_usage",
	}
	got := InstructionNames()
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("InstructionNames = %v, want %v", got, names)
	}
	for _, n := range names {
		d := InstructionDiscriminator(n)
		equalBytes(t, n, d[:], hexBytes(t, sighashHex("global", n)))
	}
}

// fixedRates and their hand encoding: six u64 LE.
var fixedRates = ServiceRates{
	FunctionMBTeraInstructions: 1,
	DBGigabyteMonths:           0x0203,
	MillionDBReads:             0x040506,
	MillionDBWrites:            7,
	MillionGatewayRequests:     0x0102030405060708,
	GigabytesGatewayTraffic:    0xffffffffffffffff,
}

const fixedRatesHex = `
	0100000000000000
	0302000000000000
	0605040000000000
	0700000000000000
	0807060504030201
	ffffffffffffffff`

// fixedUsage and its hand encoding: two u128 LE (low word first), four u64.
var fixedUsage = ServiceUsage{
	FunctionMBInstructions: u128(0x0a, 0x0102030405060708),
	DBBytesSeconds:         u128(0, 0x10),
	DBReads:                0x11,
	DBWrites:               0x1213,
	GatewayRequests:        0,
	GatewayTrafficBytes:    0x1415161718191a1b,
}

const fixedUsageHex = `
	0807060504030201 0a00000000000000
	1000000000000000 0000000000000000
	1100000000000000
	1312000000000000
	0000000000000000
	1b1a191817161514`

func TestAccounts_EncodeToTheProgramsLayout(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"MuState", MuState{
			Authority: k(0xa1), Mint: k(0xa2), DepositToken: k(0xa3), CommissionToken: k(0xa4),
			CommissionRateMicros: 50_000, ProviderDeposit: 1_000_000_000, Bump: 254,
		}.Encode(), hexBytes(t, sighashHex("account", "MuState"),
			kh(0xa1), kh(0xa2), kh(0xa3), kh(0xa4),
			"50c30000",         // commission_rate_micros u32 = 50000
			"00ca9a3b00000000", // provider_deposit u64 = 10^9
			"fe",               // bump
		)},
		{"ProviderAuthorizer", ProviderAuthorizer{Authorizer: k(0xb1), Bump: 7}.Encode(),
			hexBytes(t, sighashHex("account", "ProviderAuthorizer"), kh(0xb1), "07")},
		{"Provider", Provider{Owner: k(0xc1), Authorized: true, Name: "Acme", Deposit: 0x0102, Bump: 255}.Encode(),
			hexBytes(t, sighashHex("account", "Provider"), kh(0xc1),
				"01",                // authorized
				"04000000 41636d65", // name: u32 length, "Acme"
				"0201000000000000",  // deposit
				"ff",                // bump
			)},
		{"ProviderRegion", ProviderRegion{
			Provider: k(0xd1), RegionNum: 3, Rates: fixedRates, MinEscrowBalance: 0x64,
			MaxGigaInstructionsPerCall: 0x0a0b, Bump: 253, Name: "eu", BaseURL: "http://x",
		}.Encode(), hexBytes(t, sighashHex("account", "ProviderRegion"), kh(0xd1),
			"03000000", // region_num
			fixedRatesHex,
			"6400000000000000",          // min_escrow_balance
			"0b0a0000",                  // max_giga_instructions_per_call
			"fd",                        // bump
			"02000000 6575",             // name "eu"
			"08000000 687474703a2f2f78", // base_url "http://x"
		)},
		{"Stack active", Stack{
			User: k(0xe1), Region: k(0xe2), Seed: 0x0102030405060708, Bump: 250,
			State: StackState{Kind: StackActive, Revision: 2, Name: "app", StackData: []byte{0xde, 0xad}},
		}.Encode(), hexBytes(t, sighashHex("account", "Stack"), kh(0xe1), kh(0xe2),
			"0807060504030201", // seed
			"fa",               // bump
			"00",               // StackState::Active
			"02000000",         // revision
			"03000000 617070",  // name "app"
			"02000000 dead",    // stack_data
		)},
		{"Stack deleted", Stack{User: k(0xe1), Region: k(0xe2), Seed: 9, Bump: 1, State: StackState{Kind: StackDeleted}}.Encode(),
			hexBytes(t, sighashHex("account", "Stack"), kh(0xe1), kh(0xe2), "0900000000000000", "01", "01")},
		{"ApiRequestSigner", APIRequestSigner{Signer: k(0xf1), User: k(0xf2), Region: k(0xf3), Bump: 5, Active: true}.Encode(),
			hexBytes(t, sighashHex("account", "ApiRequestSigner"), kh(0xf1), kh(0xf2), kh(0xf3), "05", "01")},
		{"AuthorizedUsageSigner", AuthorizedUsageSigner{Signer: k(0x31), TokenAccount: k(0x32)}.Encode(),
			hexBytes(t, sighashHex("account", "AuthorizedUsageSigner"), kh(0x31), kh(0x32))},
		{"UsageUpdate", UsageUpdate{Region: k(0x41), Stack: k(0x42), Seed: u128(1, 2), Usage: fixedUsage}.Encode(),
			hexBytes(t, sighashHex("account", "UsageUpdate"), kh(0x41), kh(0x42),
				"0200000000000000 0100000000000000", // seed u128: low word, high word
				fixedUsageHex,
			)},
	}
	for _, c := range cases {
		equalBytes(t, c.name, c.got, c.want)
	}
}

func TestAccountSpace_MatchesTheProgramsSpaceExpressions(t *testing.T) {
	// The program's space = expressions, summed by hand.
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"MuState", MuStateSpace, 149},
		{"ProviderAuthorizer", ProviderAuthorizerSpace, 41},
		{"Provider name 4", ProviderSpace(4), 58},
		{"ProviderRegion name 2 url 8", RegionSpace(2, 8), 123},
		{"Stack name 3 data 2", StackSpace(3, 2), 99},
		{"Stack deleted", StackDeletedSpace, 82},
		{"ApiRequestSigner", APIRequestSignerSpace, 106},
		{"AuthorizedUsageSigner", AuthorizedUsageSignerSpace, 72},
		{"UsageUpdate", UsageUpdateSpace, 152},
		{"token account", TokenAccountSpace, 165},
	} {
		if c.got != c.want {
			t.Errorf("%s space = %d, want %d", c.name, c.got, c.want)
		}
	}
	// And the encodings fill them exactly.
	if n := len(MuState{}.Encode()); n != MuStateSpace {
		t.Errorf("MuState encodes to %d bytes, space %d", n, MuStateSpace)
	}
	if n := len((Provider{Name: "Acme"}).Encode()); n != ProviderSpace(4) {
		t.Errorf("Provider encodes to %d bytes, space %d", n, ProviderSpace(4))
	}
	if n := len((ProviderRegion{Name: "eu", BaseURL: "http://x"}).Encode()); n != RegionSpace(2, 8) {
		t.Errorf("ProviderRegion encodes to %d bytes, space %d", n, RegionSpace(2, 8))
	}
	if n := len((Stack{State: StackState{Name: "app", StackData: []byte{1, 2}}}).Encode()); n != StackSpace(3, 2) {
		t.Errorf("Stack encodes to %d bytes, space %d", n, StackSpace(3, 2))
	}
	if n := len((Stack{State: StackState{Kind: StackDeleted}}).Encode()); n != StackDeletedSpace {
		t.Errorf("deleted Stack encodes to %d bytes, space %d", n, StackDeletedSpace)
	}
	for name, n := range map[string]int{
		"ProviderAuthorizer":    len(ProviderAuthorizer{}.Encode()) - ProviderAuthorizerSpace,
		"ApiRequestSigner":      len(APIRequestSigner{}.Encode()) - APIRequestSignerSpace,
		"AuthorizedUsageSigner": len(AuthorizedUsageSigner{}.Encode()) - AuthorizedUsageSignerSpace,
		"UsageUpdate":           len(UsageUpdate{}.Encode()) - UsageUpdateSpace,
	} {
		if n != 0 {
			t.Errorf("%s encoding differs from its space by %d", name, n)
		}
	}
}

func TestFilterOffsets_PointAtTheirFields(t *testing.T) {
	p := Provider{Owner: k(0x71), Name: "n"}.Encode()
	equalBytes(t, "Provider.owner", p[ProviderOwnerOffset:ProviderOwnerOffset+32], k(0x71).Bytes())
	r := ProviderRegion{Provider: k(0x72), RegionNum: 0x01020304}.Encode()
	equalBytes(t, "Region.provider", r[RegionProviderOffset:RegionProviderOffset+32], k(0x72).Bytes())
	equalBytes(t, "Region.region_num", r[RegionRegionNumOffset:RegionRegionNumOffset+4], []byte{4, 3, 2, 1})
	s := Stack{User: k(0x73), Region: k(0x74), Seed: 5, Bump: 6, State: StackState{Kind: StackDeleted}}.Encode()
	equalBytes(t, "Stack.user", s[StackUserOffset:StackUserOffset+32], k(0x73).Bytes())
	equalBytes(t, "Stack.region", s[StackRegionOffset:StackRegionOffset+32], k(0x74).Bytes())
	equalBytes(t, "Stack.seed", s[StackSeedOffset:StackSeedOffset+8], []byte{5, 0, 0, 0, 0, 0, 0, 0})
	equalBytes(t, "Stack.bump/state", s[StackBumpOffset:StackStateOffset+1], []byte{6, 1})
	u := UsageUpdate{Region: k(0x75), Stack: k(0x76), Seed: u128(0, 9)}.Encode()
	equalBytes(t, "UsageUpdate.region", u[UsageUpdateRegionOffset:UsageUpdateRegionOffset+32], k(0x75).Bytes())
	equalBytes(t, "UsageUpdate.stack", u[UsageUpdateStackOffset:UsageUpdateStackOffset+32], k(0x76).Bytes())
	equalBytes(t, "UsageUpdate.seed", u[UsageUpdateSeedOffset:UsageUpdateSeedOffset+1], []byte{9})
	a := APIRequestSigner{Signer: k(0x77), User: k(0x78), Region: k(0x79)}.Encode()
	equalBytes(t, "ApiRequestSigner.user", a[APIRequestSignerUserOffset:APIRequestSignerUserOffset+32], k(0x78).Bytes())
	equalBytes(t, "ApiRequestSigner.region", a[APIRequestSignerRegionOffset:APIRequestSignerRegionOffset+32], k(0x79).Bytes())
	m := MuState{Mint: k(0x7a), CommissionToken: k(0x7b)}.Encode()
	equalBytes(t, "MuState.mint", m[MuStateMintOffset:MuStateMintOffset+32], k(0x7a).Bytes())
	equalBytes(t, "MuState.commission_token", m[MuStateCommissionTokenOffset:MuStateCommissionTokenOffset+32], k(0x7b).Bytes())
	g := AuthorizedUsageSigner{Signer: k(0x7c), TokenAccount: k(0x7d)}.Encode()
	equalBytes(t, "AuthorizedUsageSigner.token_account", g[AuthorizedUsageSignerTokenAccountOffset:AuthorizedUsageSignerTokenAccountOffset+32], k(0x7d).Bytes())
}
