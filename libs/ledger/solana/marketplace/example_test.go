package marketplace_test

import (
	"fmt"

	"github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// A developer's create_stack: the stack's address is derived from the
// user, the region and a seed, and the instruction lists the program's
// accounts in its order.
func Example() {
	p := marketplace.Default
	user := solana.PublicKeyFromBytes(make([]byte, 32))
	owner := solana.MustPublicKeyFromBase58("SysvarC1ock11111111111111111111111111111111")
	provider, _ := p.Provider(owner)
	region, _ := p.Region(owner, 1)
	stack, _ := p.Stack(user, region, 42)

	ix := p.CreateStack(marketplace.CreateStackAccounts{
		Provider: provider, Region: region, Stack: stack, User: user,
	}, marketplace.StackArgs{StackSeed: 42, StackData: []byte("name: app"), Name: "app"})

	for i, a := range ix.Accounts() {
		spec := marketplace.InstructionAccounts(marketplace.InstructionCreateStack)[i]
		fmt.Printf("%-14s writable=%v signer=%v\n", spec.Name, a.IsWritable, a.IsSigner)
	}
	data, _ := ix.Data()
	name, args, _ := marketplace.DecodeInstruction(data)
	fmt.Printf("%s %+v\n", name, args.(marketplace.StackArgs).Name)
	// Output:
	// provider       writable=false signer=false
	// region         writable=false signer=false
	// stack          writable=true signer=false
	// user           writable=true signer=true
	// system_program writable=false signer=false
	// create_stack app
}

// Reading a stack account served by an RPC node.
func ExampleDecodeStack() {
	data := marketplace.Stack{
		Seed:  7,
		State: marketplace.StackState{Kind: marketplace.StackActive, Revision: 3, Name: "app"},
	}.Encode()
	data = append(data, make([]byte, 8)...) // space left from a larger revision

	s, err := marketplace.DecodeStack(data)
	fmt.Println(s.Seed, s.State.Kind, s.State.Revision, s.State.Name, err)

	_, err = marketplace.DecodeStack(marketplace.MuState{}.Encode())
	fmt.Println(err)
	// Output:
	// 7 Active 3 app <nil>
	// marketplace: decode Stack account: data is a MuState account: account discriminator does not match
}
