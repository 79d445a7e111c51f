package marketplace

import (
	"testing"

	"github.com/gagliardetto/solana-go"
)

// Each address must be the program address of the seeds written here by
// hand from the program's seeds = [...] lists, with the highest bump that
// gives one (what find_program_address returns and init stores).
func TestPDAs_AreTheProgramsSeedsWithTheCanonicalBump(t *testing.T) {
	p := Default
	user, owner, signer := k(0x21), k(0x22), k(0x23)
	region, provider, stack := k(0x24), k(0x25), k(0x26)
	type pda func() (solana.PublicKey, uint8)
	for _, c := range []struct {
		name  string
		got   pda
		seeds [][]byte
	}{
		{"state", p.State, [][]byte{[]byte("state")}},
		{"deposit", p.Deposit, [][]byte{[]byte("deposit")}},
		{"commission", p.Commission, [][]byte{[]byte("commission")}},
		{"authorizer", func() (solana.PublicKey, uint8) { return p.Authorizer(signer) },
			[][]byte{[]byte("authorizer"), signer[:]}},
		{"provider", func() (solana.PublicKey, uint8) { return p.Provider(owner) },
			[][]byte{[]byte("provider"), owner[:]}},
		{"region", func() (solana.PublicKey, uint8) { return p.Region(owner, 0x01020304) },
			[][]byte{[]byte("region"), owner[:], {0x04, 0x03, 0x02, 0x01}}},
		{"stack", func() (solana.PublicKey, uint8) { return p.Stack(user, region, 0x0102030405060708) },
			[][]byte{[]byte("stack"), user[:], region[:], {8, 7, 6, 5, 4, 3, 2, 1}}},
		{"escrow", func() (solana.PublicKey, uint8) { return p.Escrow(user, provider) },
			[][]byte{[]byte("escrow"), user[:], provider[:]}},
		{"authorized_signer", func() (solana.PublicKey, uint8) { return p.AuthorizedSigner(region) },
			[][]byte{[]byte("authorized_signer"), region[:]}},
		{"update", func() (solana.PublicKey, uint8) { return p.Update(stack, region, u128(0x0a, 0x0b)) },
			[][]byte{[]byte("update"), stack[:], region[:], {0x0b, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0}}},
		{"request_signer", func() (solana.PublicKey, uint8) { return p.RequestSigner(user, signer, region) },
			[][]byte{[]byte("request_signer"), user[:], signer[:], region[:]}},
	} {
		addr, bump := c.got()
		want, err := solana.CreateProgramAddress(append(c.seeds, []byte{bump}), progID)
		if err != nil || want != addr {
			t.Errorf("%s: %s bump %d is not the address of the seeds (%s, %v)", c.name, addr, bump, want, err)
		}
		for b := int(bump) + 1; b <= 255; b++ {
			if _, err := solana.CreateProgramAddress(append(c.seeds, []byte{byte(b)}), progID); err == nil {
				t.Errorf("%s: bump %d is valid but %d was returned", c.name, b, bump)
			}
		}
		if got, err := p.Address(c.seeds, bump); err != nil || got != addr {
			t.Errorf("%s: Address(seeds, %d) = %s, %v; want %s", c.name, bump, got, err, addr)
		}
	}
}

func TestPDAs_DependOnTheProgramID(t *testing.T) {
	a, _ := Default.State()
	b, _ := Program{ID: k(0x33)}.State()
	if a == b {
		t.Error("the state address is the same under two program ids")
	}
}

func TestSeeds_AreFreshSlicesACallerMayExtend(t *testing.T) {
	s := StackSeeds(k(1), k(2), 3)
	s[1][0] = 0xff
	if again := StackSeeds(k(1), k(2), 3); again[1][0] != 1 {
		t.Error("StackSeeds shares memory with the key or an earlier result")
	}
}
