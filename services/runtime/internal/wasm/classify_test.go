package wasm

import "testing"

func TestTrapCause_OneLineWithoutNumberingOrEngineBacktrace(t *testing.T) {
	cases := map[string]string{
		"error while executing at wasm backtrace:\n    0:   0x2a - <unknown>!f\n\nCaused by:\n    wasm trap: call stack exhausted\n\nStack backtrace:\n   0: <unknown>":                              "call stack exhausted",
		"failed to parse WebAssembly module\n\nCaused by:\n    unexpected end-of-file (at offset 0xa)\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>":                                         "failed to parse WebAssembly module: unexpected end-of-file (at offset 0xa)",
		"error while executing at wasm backtrace:\n 0: f\n\nCaused by:\n    0: memory fault at wasm address 0x10000 in linear memory of size 0x10000\n    1: wasm trap: out of bounds memory access": "memory fault at wasm address 0x10000 in linear memory of size 0x10000: out of bounds memory access",
		"plain": "plain",
	}
	for in, want := range cases {
		if got := trapCause(in); got != want {
			t.Errorf("trapCause(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}
