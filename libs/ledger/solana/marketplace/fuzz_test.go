package marketplace

import (
	"bytes"
	"reflect"
	"testing"
)

// accountDecoders are the account decoders, each returning its value's
// encoding alongside it.
var accountDecoders = map[string]func([]byte) (any, []byte, error){
	AccountMuState: func(b []byte) (any, []byte, error) {
		v, err := DecodeMuState(b)
		return v, v.Encode(), err
	},
	AccountProviderAuthorizer: func(b []byte) (any, []byte, error) {
		v, err := DecodeProviderAuthorizer(b)
		return v, v.Encode(), err
	},
	AccountProvider: func(b []byte) (any, []byte, error) {
		v, err := DecodeProvider(b)
		return v, v.Encode(), err
	},
	AccountProviderRegion: func(b []byte) (any, []byte, error) {
		v, err := DecodeProviderRegion(b)
		return v, v.Encode(), err
	},
	AccountStack: func(b []byte) (any, []byte, error) {
		v, err := DecodeStack(b)
		return v, v.Encode(), err
	},
	AccountAPIRequestSigner: func(b []byte) (any, []byte, error) {
		v, err := DecodeAPIRequestSigner(b)
		return v, v.Encode(), err
	},
	AccountAuthorizedUsageSigner: func(b []byte) (any, []byte, error) {
		v, err := DecodeAuthorizedUsageSigner(b)
		return v, v.Encode(), err
	},
	AccountUsageUpdate: func(b []byte) (any, []byte, error) {
		v, err := DecodeUsageUpdate(b)
		return v, v.Encode(), err
	},
}

// FuzzDecodeAccount runs every account decoder over arbitrary data (the
// data of any account a chain serves): none panics, at most the one the
// discriminator names accepts it, and what it accepts encodes back to the
// bytes it read (a prefix of the data: trailing bytes are ignored) and
// decodes again to the same value.
func FuzzDecodeAccount(f *testing.F) {
	for _, c := range decodeCases() {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		accepted := 0
		for kind, decode := range accountDecoders {
			v, enc, err := decode(data)
			if err != nil {
				continue
			}
			accepted++
			if KindOf(data) != kind {
				t.Fatalf("%s decoder accepted data KindOf calls %q", kind, KindOf(data))
			}
			if !bytes.HasPrefix(data, enc) {
				t.Fatalf("%s: re-encoding %x is not a prefix of %x", kind, enc, data)
			}
			again, _, err := decode(enc)
			if err != nil || !reflect.DeepEqual(again, v) {
				t.Fatalf("%s: re-encoding decodes to %#v, %v; want %#v", kind, again, err, v)
			}
		}
		if accepted > 1 {
			t.Fatalf("%d decoders accepted %x", accepted, data)
		}
		if _, err := DecodeAccount(data); (err == nil) != (accepted == 1) {
			t.Fatalf("DecodeAccount: %v, while %d decoders accepted %x", err, accepted, data)
		}
	})
}

// FuzzDecodeInstruction decodes arbitrary instruction data (what any
// transaction may carry to the program): no panic, and accepted data
// re-encodes to the bytes read.
func FuzzDecodeInstruction(f *testing.F) {
	for _, c := range instructionCases(f) {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		name, args, err := DecodeInstruction(data)
		if err != nil {
			return
		}
		in := instructionsByName[name]
		w, ok := args.(interface{ write(*writer) })
		if in == nil || !ok {
			t.Fatalf("DecodeInstruction returned %q with %T", name, args)
		}
		enc := encode(64, func(wr *writer) {
			wr.raw(in.disc[:])
			w.write(wr)
		})
		if !bytes.HasPrefix(data, enc) {
			t.Fatalf("%s: re-encoding %x is not a prefix of %x", name, enc, data)
		}
	})
}
