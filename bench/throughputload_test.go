package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoadChild_HTTPRunBracketsTheMeasuredPhase drives the load
// generator's "http" op over its real protocol (JSON lines in and out)
// against a loopback server and checks that it says "measure" and "end"
// around exactly the measured requests, then answers with the count and
// percentiles computed on its side, without shipping the samples.
func TestLoadChild_HTTPRunBracketsTheMeasuredPhase(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("Hello, world!"))
	}))
	t.Cleanup(srv.Close)

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- serveChild(context.Background(), inR, outW); outW.Close() }()
	enc := json.NewEncoder(inW)
	lines := bufio.NewScanner(outR)

	for run := 1; run <= 2; run++ {
		if err := enc.Encode(childCmd{Op: "http", URL: srv.URL, Concurrency: 2, Requests: 100, Warmup: 20 * time.Millisecond, Series: "s"}); err != nil {
			t.Fatal(err)
		}
		var events []string
		var atMeasure, atEnd int64
		var res childMsg
		for res.Event != "result" && lines.Scan() {
			var m childMsg
			if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
				t.Fatalf("load generator said %q: %v", lines.Text(), err)
			}
			events = append(events, m.Event)
			switch m.Event {
			case "measure":
				atMeasure = hits.Load()
			case "end":
				atEnd = hits.Load()
			case "result":
				res = m
			case "error":
				t.Fatalf("run %d: %s", run, m.Error)
			}
		}
		if len(events) != 3 || events[0] != "measure" || events[1] != "end" || events[2] != "result" {
			t.Fatalf("run %d: events %q, want measure, end, result", run, events)
		}
		// A warm-up request cut short may still reach the server after
		// "measure": at most one per worker.
		if got := atEnd - atMeasure; res.Requests != 100 || got < 100 || got > 102 {
			t.Errorf("run %d: the server answered %d requests between measure and end; the result counts %d, want 100", run, got, res.Requests)
		}
		if res.P50 <= 0 || res.P50 > res.P90 || res.P90 > res.P99 || len(res.Samples) != 0 {
			t.Errorf("run %d: percentiles %v %v %v and %d samples, want ordered positive percentiles and no samples", run, res.P50, res.P90, res.P99, len(res.Samples))
		}
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
