package region

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/services/mudb"
)

// The db guarantees end to end: a real function (testdata/dbprobe) → the
// gateway → the runtime → muDB on the embedded TiKV store.

type probe struct {
	t    *testing.T
	base string
}

func deployProbe(t *testing.T, r *Region) probe {
	t.Helper()
	m, bins := stackFromDir(t, "testdata/dbprobe")
	id, _, _ := ids.NewStackID()
	if err := r.Deploy(context.Background(), id, 1, m, bins); err != nil {
		t.Fatal(err)
	}
	return probe{t: t, base: "http://" + r.Gateway().Addr() + "/" + id.String() + "/api"}
}

// call sends method path?query with body and returns status and body.
func (p probe) call(method, path string, q url.Values, body string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path+"?"+q.Encode(), strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p probe) ok(method, path string, q url.Values, body string) string {
	p.t.Helper()
	code, b := p.call(method, path, q, body)
	if code != 200 {
		p.t.Fatalf("%s %s?%s: %d %s", method, path, q.Encode(), code, b)
	}
	return b
}

func TestDB_PagesResumeAfterTheirCursorWithWritesInterleaved(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	p := deployProbe(t, r)
	p.ok("POST", "/fill", url.Values{"prefix": {"k"}, "n": {"2500"}}, "")

	seen := map[string]bool{}
	var order []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("scan did not end")
		}
		var page struct {
			Keys []string
			Next string
		}
		if err := json.Unmarshal([]byte(p.ok("GET", "/page", url.Values{"prefix": {"k"}, "limit": {"1000"}, "cursor": {cursor}}, "")), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Keys) > 1000 {
			t.Fatalf("page of %d keys, limit 1000", len(page.Keys))
		}
		for _, k := range page.Keys {
			if seen[k] {
				t.Fatalf("key %s returned twice", k)
			}
			seen[k] = true
			order = append(order, k)
		}
		if page.Next == "" {
			break
		}
		if pages == 0 {
			// Behind the cursor (never seen) and ahead of it (seen).
			p.ok("POST", "/put", url.Values{"key": {"k00000x"}}, "behind")
			p.ok("POST", "/put", url.Values{"key": {"k99999"}}, "ahead")
		}
		cursor = page.Next
	}
	if seen["k00000x"] || !seen["k99999"] || len(seen) != 2501 {
		t.Fatalf("saw %d keys (behind %t, ahead %t), want 2501 with only the one ahead", len(seen), seen["k00000x"], seen["k99999"])
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Fatalf("keys out of order: %s then %s", order[i-1], order[i])
		}
	}
}

func TestDB_ConcurrentCompareAndSwapLosesNoIncrement(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	p := deployProbe(t, r)
	const callers, each = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, b := p.call("POST", "/incr", url.Values{"key": {"counter"}, "n": {fmt.Sprint(each)}}, "")
			if code != 200 {
				t.Errorf("incr: %d %s", code, b)
				return
			}
			var n int
			fmt.Sscan(b, &n)
			mu.Lock()
			refused += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if got := p.ok("GET", "/get", url.Values{"key": {"counter"}}, ""); got != fmt.Sprint(callers*each) {
		t.Fatalf("counter %s after %d×%d increments", got, callers, each)
	}
	t.Logf("%d swaps refused and retried", refused)
}

func TestDB_ExpiredKeyIsInvisibleAtOnce(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	p := deployProbe(t, r)
	p.ok("POST", "/put", url.Values{"key": {"session"}, "ttl": {"1"}}, "s1")
	p.ok("POST", "/put", url.Values{"key": {"keep"}}, "k")
	written := time.Now()
	if code, b := p.call("GET", "/get", url.Values{"key": {"session"}}, ""); code != 200 || b != "s1" {
		if time.Since(written) < time.Second {
			t.Fatalf("fresh key: %d %q", code, b)
		}
	}
	time.Sleep(time.Until(written.Add(1100 * time.Millisecond)))
	if code, b := p.call("GET", "/get", url.Values{"key": {"session"}}, ""); code != 404 {
		t.Fatalf("key past its TTL: %d %q, want 404", code, b)
	}
	var page struct{ Keys []string }
	json.Unmarshal([]byte(p.ok("GET", "/page", url.Values{}, "")), &page)
	if strings.Join(page.Keys, ",") != "keep" {
		t.Fatalf("scan after expiry: %v, want [keep]", page.Keys)
	}
}

func TestDB_BatchIsAllOrNothing(t *testing.T) {
	r := startDBRegion(t, t.TempDir())
	p := deployProbe(t, r)
	for _, atomic := range []string{"0", "1"} {
		// One value over max_value_bytes fails the batch across tables.
		body := `[{"table":"items","key":"a` + atomic + `","value":"1"},{"table":"other","key":"b` + atomic + `","value":"2"},{"table":"items","key":"c` + atomic + `","size":1048577}]`
		code, b := p.call("POST", "/batch", url.Values{"atomic": {atomic}}, body)
		if code != 422 || !strings.Contains(b, "1048577") || !strings.Contains(b, "1048576") {
			t.Fatalf("atomic=%s: batch with an oversized value: %d %s", atomic, code, b)
		}
		for _, k := range []struct{ table, key string }{{"items", "a" + atomic}, {"other", "b" + atomic}} {
			if code, _ := p.call("GET", "/get", url.Values{"table": {k.table}, "key": {k.key}}, ""); code != 404 {
				t.Fatalf("atomic=%s: %s/%s written by a failed batch", atomic, k.table, k.key)
			}
		}
		// A table the manifest does not declare fails it too, named.
		body = `[{"table":"items","key":"d` + atomic + `","value":"1"},{"table":"nope","key":"e","value":"2"}]`
		if code, b := p.call("POST", "/batch", url.Values{"atomic": {atomic}}, body); code != 422 || !strings.Contains(b, `\"nope\"`) {
			t.Fatalf("atomic=%s: batch with an undeclared table: %d %s", atomic, code, b)
		}
		if code, _ := p.call("GET", "/get", url.Values{"key": {"d" + atomic}}, ""); code != 404 {
			t.Fatalf("atomic=%s: d written by a failed batch", atomic)
		}
	}
	p.ok("POST", "/batch", url.Values{"atomic": {"1"}}, `[{"table":"items","key":"x","value":"1"},{"table":"other","key":"y","value":"2"}]`)
	if got := p.ok("GET", "/get", url.Values{"table": {"other"}, "key": {"y"}}, ""); got != "2" {
		t.Fatalf("other/y = %q", got)
	}
}

func TestDB_LimitsNameTheLimit(t *testing.T) {
	bothPaths(t, testDBLimitsNameTheLimit)
}

func testDBLimitsNameTheLimit(t *testing.T, path *path) {
	r := path.start(t, Options{DataDir: t.TempDir(), Mudb: &MudbOptions{}, Storage: &StorageOptions{}})
	p := deployProbe(t, r)
	cfg := mudb.DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cases := []struct {
		what string
		q    url.Values
		want []string
	}{
		{"value", url.Values{"key": {"v"}, "size": {fmt.Sprint(cfg.MaxValueBytes + 1)}}, []string{fmt.Sprint(cfg.MaxValueBytes + 1), fmt.Sprint(cfg.MaxValueBytes)}},
		{"key", url.Values{"keylen": {fmt.Sprint(cfg.MaxKeyBytes + 1)}}, []string{fmt.Sprint(cfg.MaxKeyBytes + 1), fmt.Sprint(cfg.MaxKeyBytes)}},
		{"empty key", url.Values{"key": {""}}, []string{"key"}},
	}
	for _, tc := range cases {
		code, b := p.call("POST", "/put", tc.q, "")
		path.record(t, tc.what, "%d %s", code, b)
		if code != 422 {
			t.Errorf("%s: %d %s, want 422", tc.what, code, b)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(b, w) {
				t.Errorf("%s: error %s does not say %q", tc.what, b, w)
			}
		}
	}
	// A value exactly at the limit is fine.
	p.ok("POST", "/put", url.Values{"key": {"v"}, "size": {fmt.Sprint(cfg.MaxValueBytes)}}, "")

	var items []string
	for i := range cfg.MaxBatchEntries + 1 {
		items = append(items, fmt.Sprintf(`{"table":"items","key":"b%d","value":"x"}`, i))
	}
	code, b := p.call("POST", "/batch", nil, "["+strings.Join(items, ",")+"]")
	path.record(t, "batch", "%d %s", code, b)
	if code != 422 || !strings.Contains(b, fmt.Sprint(cfg.MaxBatchEntries)) {
		t.Errorf("batch of %d: %d %s", len(items), code, b)
	}
}
