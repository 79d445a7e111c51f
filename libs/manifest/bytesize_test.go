package manifest

import (
	"encoding/json"
	"math"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{in: "1048576", want: MiB},
		{in: "0", want: 0},
		{in: "512B", want: 512},
		{in: "256MiB", want: 256 * MiB},
		{in: "512KiB", want: 512 * KiB},
		{in: "1.5GiB", want: 1536 * MiB},
		{in: "2TiB", want: 2 * TiB},
		{in: "1kB", want: 1000},
		{in: "1KB", want: 1000},
		{in: "1MB", want: 1_000_000},
		{in: "1GB", want: 1_000_000_000},
		{in: "3TB", want: 3_000_000_000_000},
		{in: "0.5KiB", want: 512},
		{in: "1.25MB", want: 1_250_000},
		{in: " 64 MiB ", want: 64 * MiB},
		{in: "007MiB", want: 7 * MiB},
		{in: "18446744073709551615", want: math.MaxUint64},
		{in: "15EiB", wantErr: `invalid size "15EiB": unknown unit "EiB" (want B, kB, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
		{in: "256Mb", wantErr: `invalid size "256Mb": unknown unit "Mb" (want B, kB, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
		{in: "256mib", wantErr: `invalid size "256mib": unknown unit "mib" (want B, kB, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
		{in: "1e6", wantErr: `invalid size "1e6": unknown unit "e6" (want B, kB, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
		{in: "-1MiB", wantErr: `invalid size "-1MiB": negative sizes are not allowed`},
		{in: "-0", wantErr: `invalid size "-0": negative sizes are not allowed`},
		{in: "", wantErr: `invalid size "": empty`},
		{in: "MiB", wantErr: `invalid size "MiB": must start with a number`},
		{in: ".5GiB", wantErr: `invalid size ".5GiB": must start with a number`},
		{in: "+1MiB", wantErr: `invalid size "+1MiB": must start with a number`},
		{in: "1.GiB", wantErr: `invalid size "1.GiB": missing digits after the decimal point`},
		{in: "1.1B", wantErr: `invalid size "1.1B": not a whole number of bytes`},
		{in: "0.3KiB", wantErr: `invalid size "0.3KiB": not a whole number of bytes`},
		{in: "18446744073709551616", wantErr: `invalid size "18446744073709551616": too large (the maximum is 18446744073709551615 bytes)`},
		{in: "16777216TiB", wantErr: `invalid size "16777216TiB": too large (the maximum is 18446744073709551615 bytes)`},
		{in: "100000000000000000000000000000000000000000", wantErr: `invalid size "100000000000000000000000000000000000000000": too many digits`},
		{in: "1 000", wantErr: `invalid size "1 000": unknown unit "000" (want B, kB, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
		{in: "0x10", wantErr: `invalid size "0x10": unknown unit "x10" (want B, kB, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
	}
	for _, tc := range tests {
		got, err := ParseByteSize(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseByteSize(%q) = %d, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestByteSize_String(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1kB"},
		{1024, "1KiB"},
		{256 * MiB, "256MiB"},
		{1536 * MiB, "1536MiB"},
		{4 * GiB, "4GiB"},
		{1_000_000_000, "1GB"},
		{1_500_000, "1500kB"},
		{1_000_001, "1000001B"},
		{2 * TiB, "2TiB"},
		{5_000_000_000_000, "5TB"},
		{math.MaxUint64, "18446744073709551615B"},
	}
	for _, tc := range tests {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", uint64(tc.in), got, tc.want)
		}
		back, err := ParseByteSize(tc.want)
		if err != nil || back != tc.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.want, back, err, uint64(tc.in))
		}
	}
}

func TestByteSize_MiBCeil(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want uint64
	}{
		{0, 0},
		{1, 1},
		{MiB - 1, 1},
		{MiB, 1},
		{MiB + 1, 2},
		{256 * MiB, 256},
		{1_000_000_000, 954},
		{math.MaxUint64, 1 << 44},
	}
	for _, tc := range tests {
		if got := tc.in.MiBCeil(); got != tc.want {
			t.Errorf("ByteSize(%d).MiBCeil() = %d, want %d", uint64(tc.in), got, tc.want)
		}
	}
}

func TestByteSize_Text(t *testing.T) {
	var cfg struct{ Memory ByteSize }
	if err := json.Unmarshal([]byte(`{"Memory":"1.5GiB"}`), &cfg); err != nil || cfg.Memory != 1536*MiB {
		t.Fatalf("Unmarshal = %v, %v", cfg.Memory, err)
	}
	out, err := json.Marshal(cfg)
	if err != nil || string(out) != `{"Memory":"1536MiB"}` {
		t.Errorf("Marshal = %s, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"Memory":"1 parsec"}`), &cfg); err == nil {
		t.Error("Unmarshal of a bad size succeeded")
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"256MiB", "1GB", "1.5GiB", "1048576", "-1", "0.5KiB", "18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			return
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("ParseByteSize(%q) = %d; String %q parses to %d, %v", s, uint64(b), b.String(), uint64(back), err)
		}
	})
}
