package manifest

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a
// manifest or one of its documented errors, and that every manifest it
// accepts survives Marshal and Parse unchanged. The seed corpus is in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned a manifest and an error: %v", err)
			}
			var verr *ValidationError
			var serr *SyntaxError
			switch {
			case errors.As(err, &verr):
				if len(verr.Errors) == 0 {
					t.Fatal("empty ValidationError")
				}
				for _, fe := range verr.Errors {
					if fe.Msg == "" || fe.Line < 0 {
						t.Fatalf("bad FieldError %#v", fe)
					}
				}
			case errors.As(err, &serr), errors.Is(err, ErrTooLarge):
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed manifest: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(m)): %v\nYAML:\n%s", err, out)
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("Parse(Marshal(m)) =\n%#v\nwant\n%#v\nYAML:\n%s", back, m, out)
		}
		if err := m.Validate(DefaultLimits()); err != nil {
			t.Fatalf("Validate of a parsed manifest: %v", err)
		}
	})
}
