package solanatest

import (
	"bytes"
	"fmt"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/programs/token"
)

// SPL token's account sizes.
const (
	MintSize         = 82
	TokenAccountSize = 165
)

// SPL token's custom error codes (TokenError).
const (
	tokErrInsufficientFunds    = 1
	tokErrInvalidMint          = 2
	tokErrMintMismatch         = 3
	tokErrOwnerMismatch        = 4
	tokErrFixedSupply          = 5
	tokErrAlreadyInUse         = 6
	tokErrUninitializedState   = 9
	tokErrOverflow             = 14
	tokErrAccountFrozen        = 17
	tokErrMintDecimalsMismatch = 18
)

// DecodeMint decodes an SPL mint (82 bytes); false if data is not an
// initialized mint.
func DecodeMint(data []byte) (token.Mint, bool) {
	var m token.Mint
	if len(data) != MintSize {
		return m, false
	}
	if err := bin.NewBinDecoder(data).Decode(&m); err != nil || !m.IsInitialized {
		return m, false
	}
	return m, true
}

// DecodeTokenAccount decodes an SPL token account (165 bytes); false if data
// is not an initialized token account.
func DecodeTokenAccount(data []byte) (token.Account, bool) {
	var a token.Account
	if len(data) != TokenAccountSize {
		return a, false
	}
	if err := bin.NewBinDecoder(data).Decode(&a); err != nil || a.State == token.Uninitialized {
		return a, false
	}
	return a, true
}

func encodeLayout(v any, size int) []byte {
	var buf bytes.Buffer
	if err := bin.NewBinEncoder(&buf).Encode(v); err != nil || buf.Len() != size {
		// The layouts are fixed-size structs; a failure here is a bug in this package.
		panic(fmt.Sprintf("solanatest: encode %T: %v (%d bytes)", v, err, buf.Len()))
	}
	return buf.Bytes()
}

// EncodeMint is m in SPL's 82-byte layout.
func EncodeMint(m token.Mint) []byte { return encodeLayout(m, MintSize) }

// EncodeTokenAccount is a in SPL's 165-byte layout.
func EncodeTokenAccount(a token.Account) []byte { return encodeLayout(a, TokenAccountSize) }

// TokenBalance is the amount of the token account at key; false if there is no
// initialized token account there.
func (c *Chain) TokenBalance(key solana.PublicKey) (uint64, bool) {
	a, ok := c.Account(key)
	if !ok || !a.Owner.Equals(solana.TokenProgramID) {
		return 0, false
	}
	ta, ok := DecodeTokenAccount(a.Data)
	if !ok {
		return 0, false
	}
	return ta.Amount, true
}

// execToken runs SPL token's InitializeMint(2), InitializeAccount(2,3),
// MintTo(Checked), Transfer and TransferChecked. Multisig authorities are not
// supported.
func execToken(in *instr) *InstructionError {
	if len(in.data) == 0 {
		return customErr(12, "token instruction is empty")
	}
	dec, err := token.DecodeInstruction(toSolanaMetas(in.accounts), in.data)
	if err != nil {
		return customErr(12, "token instruction: "+err.Error())
	}
	need := map[uint8]int{
		token.Instruction_InitializeMint: 2, token.Instruction_InitializeMint2: 1,
		token.Instruction_InitializeAccount: 4, token.Instruction_InitializeAccount2: 3, token.Instruction_InitializeAccount3: 2,
		token.Instruction_MintTo: 3, token.Instruction_MintToChecked: 3,
		token.Instruction_Transfer: 3, token.Instruction_TransferChecked: 4,
	}
	if n, ok := need[in.data[0]]; ok && len(in.accounts) < n {
		return progErr("NotEnoughAccountKeys", fmt.Sprintf("token instruction %s needs %d accounts, got %d", token.InstructionIDToName(in.data[0]), n, len(in.accounts)))
	}
	switch ix := dec.Impl.(type) {
	case *token.InitializeMint:
		return tokInitMint(in, *ix.Decimals, *ix.MintAuthority, ix.FreezeAuthority)
	case *token.InitializeMint2:
		return tokInitMint(in, *ix.Decimals, *ix.MintAuthority, ix.FreezeAuthority)
	case *token.InitializeAccount:
		owner, ierr := in.account(2)
		if ierr != nil {
			return ierr
		}
		return tokInitAccount(in, owner.key)
	case *token.InitializeAccount2:
		return tokInitAccount(in, *ix.Owner)
	case *token.InitializeAccount3:
		return tokInitAccount(in, *ix.Owner)
	case *token.MintTo:
		return tokMintTo(in, *ix.Amount, nil)
	case *token.MintToChecked:
		return tokMintTo(in, *ix.Amount, ix.Decimals)
	case *token.Transfer:
		src, dst, owner := in.accounts[0].key, in.accounts[1].key, in.accounts[2].key
		return tokTransfer(in, src, dst, owner, *ix.Amount, nil, nil)
	case *token.TransferChecked:
		src, mint, dst, owner := in.accounts[0].key, in.accounts[1].key, in.accounts[2].key, in.accounts[3].key
		return tokTransfer(in, src, dst, owner, *ix.Amount, &mint, ix.Decimals)
	default:
		return progErr("InvalidInstructionData", "solanatest does not execute token instruction "+token.InstructionIDToName(dec.TypeID.Uint8()))
	}
}

func tokInitMint(in *instr, decimals uint8, authority solana.PublicKey, freeze *solana.PublicKey) *InstructionError {
	m, ierr := in.account(0)
	if ierr != nil {
		return ierr
	}
	a := in.t.get(m.key)
	if !a.Owner.Equals(solana.TokenProgramID) {
		return progErr("IncorrectProgramId", "InitializeMint: mint "+m.key.String()+" is not owned by the token program")
	}
	if len(a.Data) != MintSize {
		return progErr("InvalidAccountData", fmt.Sprintf("InitializeMint: mint account has %d bytes, want %d", len(a.Data), MintSize))
	}
	if _, ok := DecodeMint(a.Data); ok {
		return customErr(tokErrAlreadyInUse, "InitializeMint: mint "+m.key.String()+" is already initialized")
	}
	auth := authority
	a.Data = EncodeMint(token.Mint{MintAuthority: &auth, Decimals: decimals, IsInitialized: true, FreezeAuthority: freeze})
	return in.t.store(solana.TokenProgramID, m.key, a)
}

func tokInitAccount(in *instr, owner solana.PublicKey) *InstructionError {
	acct, ierr := in.account(0)
	if ierr != nil {
		return ierr
	}
	mint, ierr := in.account(1)
	if ierr != nil {
		return ierr
	}
	return initTokenAccount(in, acct.key, mint.key, owner)
}

// initTokenAccount initializes the token account at key for mint, owned by owner.
func initTokenAccount(in *instr, key, mint, owner solana.PublicKey) *InstructionError {
	a := in.t.get(key)
	if !a.Owner.Equals(solana.TokenProgramID) {
		return progErr("IncorrectProgramId", "InitializeAccount: account "+key.String()+" is not owned by the token program")
	}
	if len(a.Data) != TokenAccountSize {
		return progErr("InvalidAccountData", fmt.Sprintf("InitializeAccount: account has %d bytes, want %d", len(a.Data), TokenAccountSize))
	}
	if _, ok := DecodeTokenAccount(a.Data); ok {
		return customErr(tokErrAlreadyInUse, "InitializeAccount: account "+key.String()+" is already initialized")
	}
	ma := in.t.get(mint)
	if !ma.Owner.Equals(solana.TokenProgramID) {
		return customErr(tokErrInvalidMint, "InitializeAccount: mint "+mint.String()+" is not owned by the token program")
	}
	if _, ok := DecodeMint(ma.Data); !ok {
		return customErr(tokErrInvalidMint, "InitializeAccount: "+mint.String()+" is not an initialized mint")
	}
	a.Data = EncodeTokenAccount(token.Account{Mint: mint, Owner: owner, State: token.Initialized})
	return in.t.store(solana.TokenProgramID, key, a)
}

func tokMintTo(in *instr, amount uint64, decimals *uint8) *InstructionError {
	mk, dk, auth := in.accounts[0].key, in.accounts[1].key, in.accounts[2].key
	ma := in.t.get(mk)
	if !ma.Owner.Equals(solana.TokenProgramID) {
		return progErr("IncorrectProgramId", "MintTo: mint is not owned by the token program")
	}
	m, ok := DecodeMint(ma.Data)
	if !ok {
		return customErr(tokErrUninitializedState, "MintTo: mint "+mk.String()+" is not initialized")
	}
	da := in.t.get(dk)
	if !da.Owner.Equals(solana.TokenProgramID) {
		return progErr("IncorrectProgramId", "MintTo: destination is not owned by the token program")
	}
	d, ok := DecodeTokenAccount(da.Data)
	if !ok {
		return customErr(tokErrUninitializedState, "MintTo: destination "+dk.String()+" is not initialized")
	}
	if d.State == token.Frozen {
		return customErr(tokErrAccountFrozen, "MintTo: destination is frozen")
	}
	if !d.Mint.Equals(mk) {
		return customErr(tokErrMintMismatch, "MintTo: destination holds another mint")
	}
	if decimals != nil && *decimals != m.Decimals {
		return customErr(tokErrMintDecimalsMismatch, "MintToChecked: decimals differ from the mint's")
	}
	if m.MintAuthority == nil {
		return customErr(tokErrFixedSupply, "MintTo: the mint has no mint authority")
	}
	if !m.MintAuthority.Equals(auth) {
		return customErr(tokErrOwnerMismatch, "MintTo: "+auth.String()+" is not the mint authority")
	}
	if !in.signed(auth) {
		return progErr("MissingRequiredSignature", "MintTo: mint authority "+auth.String()+" must sign")
	}
	if m.Supply+amount < m.Supply || d.Amount+amount < d.Amount {
		return customErr(tokErrOverflow, "MintTo: supply overflows")
	}
	m.Supply += amount
	d.Amount += amount
	ma.Data = EncodeMint(m)
	da.Data = EncodeTokenAccount(d)
	if ierr := in.t.store(solana.TokenProgramID, mk, ma); ierr != nil {
		return ierr
	}
	return in.t.store(solana.TokenProgramID, dk, da)
}

// tokTransfer moves amount from src to dst, authorized by owner (the source's
// owner, signing). With mint set (TransferChecked) the mint and decimals are
// checked too.
func tokTransfer(in *instr, src, dst, owner solana.PublicKey, amount uint64, mint *solana.PublicKey, decimals *uint8) *InstructionError {
	sa := in.t.get(src)
	if !sa.Owner.Equals(solana.TokenProgramID) {
		return progErr("IncorrectProgramId", "Transfer: source "+src.String()+" is not owned by the token program")
	}
	s, ok := DecodeTokenAccount(sa.Data)
	if !ok {
		return customErr(tokErrUninitializedState, "Transfer: source "+src.String()+" is not an initialized token account")
	}
	da := in.t.get(dst)
	if !da.Owner.Equals(solana.TokenProgramID) {
		return progErr("IncorrectProgramId", "Transfer: destination "+dst.String()+" is not owned by the token program")
	}
	d, ok := DecodeTokenAccount(da.Data)
	if !ok {
		return customErr(tokErrUninitializedState, "Transfer: destination "+dst.String()+" is not an initialized token account")
	}
	if s.State == token.Frozen || d.State == token.Frozen {
		return customErr(tokErrAccountFrozen, "Transfer: account is frozen")
	}
	if s.Amount < amount {
		return customErr(tokErrInsufficientFunds, fmt.Sprintf("Error: insufficient funds: %d, need %d", s.Amount, amount))
	}
	if !s.Mint.Equals(d.Mint) {
		return customErr(tokErrMintMismatch, "Transfer: source and destination hold different mints")
	}
	if mint != nil {
		if !mint.Equals(s.Mint) {
			return customErr(tokErrMintMismatch, "TransferChecked: the mint given is not the accounts' mint")
		}
		ma := in.t.get(*mint)
		m, ok := DecodeMint(ma.Data)
		if !ok || !ma.Owner.Equals(solana.TokenProgramID) {
			return customErr(tokErrInvalidMint, "TransferChecked: "+mint.String()+" is not a mint")
		}
		if decimals != nil && *decimals != m.Decimals {
			return customErr(tokErrMintDecimalsMismatch, "TransferChecked: decimals differ from the mint's")
		}
	}
	if !s.Owner.Equals(owner) {
		return customErr(tokErrOwnerMismatch, "Transfer: "+owner.String()+" does not own the source account")
	}
	if !in.signed(owner) {
		return progErr("MissingRequiredSignature", "Transfer: owner "+owner.String()+" must sign")
	}
	if src.Equals(dst) {
		return nil
	}
	if d.Amount+amount < d.Amount {
		return customErr(tokErrOverflow, "Transfer: destination amount overflows")
	}
	s.Amount -= amount
	d.Amount += amount
	sa.Data = EncodeTokenAccount(s)
	da.Data = EncodeTokenAccount(d)
	if ierr := in.t.store(solana.TokenProgramID, src, sa); ierr != nil {
		return ierr
	}
	return in.t.store(solana.TokenProgramID, dst, da)
}

// execATA runs the associated token account program's Create (data empty or
// [0]) and CreateIdempotent ([1]).
func execATA(in *instr) *InstructionError {
	idempotent := false
	switch {
	case len(in.data) == 0 || (len(in.data) == 1 && in.data[0] == 0):
	case len(in.data) == 1 && in.data[0] == 1:
		idempotent = true
	default:
		return progErr("InvalidInstructionData", "solanatest executes only Create and CreateIdempotent of the associated token account program")
	}
	if len(in.accounts) < 6 {
		return progErr("NotEnoughAccountKeys", fmt.Sprintf("associated token account Create needs 6 accounts, got %d", len(in.accounts)))
	}
	payer, ata, wallet, mint := in.accounts[0], in.accounts[1], in.accounts[2], in.accounts[3]
	if !in.accounts[4].key.Equals(solana.SystemProgramID) {
		return progErr("IncorrectProgramId", "associated token account Create: account 4 is not the system program")
	}
	if !in.accounts[5].key.Equals(solana.TokenProgramID) {
		return progErr("IncorrectProgramId", "associated token account Create: account 5 is not the token program")
	}
	want, bump, err := solana.FindAssociatedTokenAddress(wallet.key, mint.key)
	if err != nil || !want.Equals(ata.key) {
		return progErr("InvalidSeeds", "Associated address does not match seed derivation")
	}
	cur := in.t.get(ata.key)
	if idempotent && cur.Owner.Equals(solana.TokenProgramID) {
		if ta, ok := DecodeTokenAccount(cur.Data); ok {
			if !ta.Owner.Equals(wallet.key) {
				return customErr(0, "associated token account owner does not match address derivation")
			}
			if !ta.Mint.Equals(mint.key) {
				return progErr("InvalidAccountData", "associated token account holds another mint")
			}
			return nil
		}
	}
	if !payer.signer || !payer.writable {
		return progErr("MissingRequiredSignature", "associated token account Create: the payer "+payer.key.String()+" must sign and be writable")
	}
	ma := in.t.get(mint.key)
	if !ma.Owner.Equals(solana.TokenProgramID) {
		return progErr("IllegalOwner", "associated token account Create: mint "+mint.key.String()+" is not owned by the token program")
	}
	// The program creates the PDA (signing for it with its seeds and bump),
	// then has the token program initialize it.
	_ = bump
	pdaSign := &instr{t: in.t, program: solana.SPLAssociatedTokenAccountProgramID, index: in.index, depth: in.depth + 1,
		accounts: []meta{payer, {key: ata.key, signer: true, writable: ata.writable}}, pdaSigners: map[solana.PublicKey]bool{ata.key: true}}
	if ierr := sysCreateAccount(pdaSign, payer.key, ata.key, RentExemptMinimum(TokenAccountSize), TokenAccountSize, solana.TokenProgramID, in.t.c.chargeRent); ierr != nil {
		return ierr
	}
	return initTokenAccount(&instr{t: in.t, program: solana.TokenProgramID, index: in.index, depth: in.depth + 1}, ata.key, mint.key, wallet.key)
}

// token165 decodes a as an initialized token account owned by the token program.
func token165(a *Account) (token.Account, bool) {
	if !a.exists() || !a.Owner.Equals(solana.TokenProgramID) {
		return token.Account{}, false
	}
	return DecodeTokenAccount(a.Data)
}
