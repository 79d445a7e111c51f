package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// The load generator's protocol end to end, in this process: open the
// embedded store, then count-bounded direct runs answer exactly the
// requests asked for, each preceded by its "measure" message.
func TestServeChild_DirectRunsAnswerExactCounts(t *testing.T) {
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	enc.Encode(childCmd{Op: "open", Dir: t.TempDir(), Keys: 10, ValueSize: 32})
	enc.Encode(childCmd{Op: "run", Path: "direct", Kind: "get", Concurrency: 2, Requests: 50})
	enc.Encode(childCmd{Op: "run", Path: "direct", Kind: "put", Concurrency: 2, Requests: 20})
	enc.Encode(childCmd{Op: "run", Path: "nowhere", Kind: "get", Concurrency: 1, Requests: 1})
	var out bytes.Buffer
	if err := serveChild(context.Background(), &in, &out); err != nil {
		t.Fatal(err)
	}
	var msgs []childMsg
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m childMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 6 {
		t.Fatalf("%d messages: %+v", len(msgs), msgs)
	}
	if msgs[0].Event != "ok" || msgs[1].Event != "measure" || msgs[3].Event != "measure" || msgs[5].Event != "error" {
		t.Fatalf("events %q %q %q %q", msgs[0].Event, msgs[1].Event, msgs[3].Event, msgs[5].Event)
	}
	for i, want := range map[int]int64{2: 50, 4: 20} {
		m := msgs[i]
		if m.Event != "result" || m.Requests != want || m.Errors != 0 || int64(len(m.Samples)) != want {
			t.Errorf("message %d: %s, %d requests (want %d), %d errors (%s), %d samples", i, m.Event, m.Requests, want, m.Errors, m.FirstError, len(m.Samples))
		}
	}
}

func TestServeChild_RunBeforeOpenFails(t *testing.T) {
	var in, out bytes.Buffer
	json.NewEncoder(&in).Encode(childCmd{Op: "run", Path: "direct", Kind: "get", Concurrency: 1, Requests: 1})
	if err := serveChild(context.Background(), &in, &out); err != nil {
		t.Fatal(err)
	}
	var m childMsg
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &m); err != nil || m.Event != "error" {
		t.Fatalf("%v %+v", err, m)
	}
}
