// Package browsertest drives a headless Chromium for the console's tests:
// StartBrowser, Screenshot, Do, Eval and WaitFor, through chromedp.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// StepTimeout bounds each Do, Eval and WaitFor call of this harness.
var StepTimeout = 20 * time.Second

// chromiumPath finds the browser: $MU_CHROMIUM, /usr/bin/chromium, or
// chromium on PATH; "" when there is none.
func chromiumPath() string {
	if p := os.Getenv("MU_CHROMIUM"); p != "" {
		return p
	}
	if st, err := os.Stat("/usr/bin/chromium"); err == nil && !st.IsDir() {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// StartBrowser starts headless Chromium (no sandbox, as root here; no GPU;
// a 1280x900 window) and returns a chromedp context for one tab. The browser
// is closed when the test ends. The test is skipped when Chromium is not
// installed. Uncaught exceptions of the page fail the test; its console
// errors and warnings are logged.
func StartBrowser(t testing.TB) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("Chromium is not installed (/usr/bin/chromium or chromium on PATH): run `make chromium` " +
			"(apt-get install chromium) to run the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	start, cancelStart := context.WithTimeout(context.Background(), time.Minute)
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // the first Do starts the browser and binds it to ctx
	select {
	case err := <-started:
		if err != nil {
			cancel()
			cancelAlloc()
			t.Fatalf("start Chromium %s: %v", path, err)
		}
	case <-start.Done():
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium %s: no answer within a minute", path)
	}

	var (
		mu         sync.Mutex
		exceptions []string
		done       = make(chan struct{})
	)
	messages := chromedp.Console(ctx)
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch {
			case m.IsException():
				mu.Lock()
				exceptions = append(exceptions, fmt.Sprintf("%s:%d: %s", m.URL, m.Line+1, m))
				mu.Unlock()
			case m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning:
				t.Logf("browser console %s: %s (%s:%d)", m.Type, m, m.URL, m.Line+1)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, e := range exceptions {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	return ctx
}

// ArtifactsDir is where screenshots go: $MU_TEST_ARTIFACTS, else
// <repo>/.tmp/artifacts/console (the repo is the folder holding go.work).
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MU_TEST_ARTIFACTS")
	if dir == "" {
		root, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for d := root; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
				root = d
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
		dir = filepath.Join(root, ".tmp", "artifacts", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Screenshot writes a PNG of the whole page to ArtifactsDir as name.png,
// logs its path and returns it. A failure to take it is logged, not fatal.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	buf, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // quality 100 is PNG
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(ArtifactsDir(t), unsafeName.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	t.Logf("screenshot %s", path)
	return path
}

// Do runs steps in the tab within StepTimeout; on failure it saves a
// screenshot named after what and fails the test.
func Do(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		Screenshot(t, ctx, "failed-"+what)
		t.Fatalf("%s: %v", what, err)
	}
}

// Eval evaluates a JavaScript expression in the page and decodes its value.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor polls a JavaScript expression until it is truthy, within
// StepTimeout; on timeout it saves a screenshot and fails the test.
func WaitFor(t testing.TB, ctx context.Context, what, expr string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Poll[bool](`!!(`+expr+`)`, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		Screenshot(t, ctx, "failed-"+what)
		t.Fatalf("wait for %s (%s): %v", what, expr, err)
	}
}
