package cmd

import (
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows one transfer: on a terminal a bar redrawn in place (bytes,
// rate, ETA), otherwise plain lines at each quarter. Safe for one sender.
type progress struct {
	w        io.Writer
	tty      bool
	what     string
	total    int64
	start    time.Time
	mu       sync.Mutex
	lastDraw time.Time
	quarter  int64 // plain mode: quarters reported
}

// newProgress starts showing a transfer on w; tty picks the bar.
func newProgress(w io.Writer, tty bool, what string, total int64) *progress {
	p := &progress{w: w, tty: tty, what: what, total: total, start: time.Now()}
	if !p.tty {
		fmt.Fprintf(w, "uploading %s: %s\n", what, sizeText(total))
	}
	return p
}

// update reports sent bytes.
func (p *progress) update(sent, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		if now := time.Now(); now.Sub(p.lastDraw) >= 50*time.Millisecond || sent == total {
			p.lastDraw = now
			p.draw(sent)
		}
		return
	}
	if total <= 0 {
		return
	}
	for q := sent * 4 / total; p.quarter < q && p.quarter < 3; {
		p.quarter++
		fmt.Fprintf(p.w, "uploading %s: %d%% (%s of %s)\n", p.what, p.quarter*25, sizeText(p.quarter*total/4), sizeText(total))
	}
}

const barWidth = 30

func (p *progress) draw(sent int64) {
	el := time.Since(p.start)
	rate := float64(sent) / max(el.Seconds(), 1e-6)
	frac := 1.0
	if p.total > 0 {
		frac = float64(sent) / float64(p.total)
	}
	filled := int(frac * barWidth)
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	eta := "--"
	if rate > 0 && sent < p.total {
		eta = etaOf(p.total-sent, rate).String()
	} else if sent >= p.total {
		eta = "0s"
	}
	fmt.Fprintf(p.w, "\r\x1b[2Kuploading %s [%s] %s / %s  %s/s  ETA %s", p.what, bar, sizeText(sent), sizeText(p.total), sizeText(int64(rate)), eta)
}

// done ends the display with the result.
func (p *progress) done(result string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start)
	if p.tty {
		p.draw(p.total)
		fmt.Fprintln(p.w)
	}
	fmt.Fprintf(p.w, "uploaded %s: %s in %s (%s/s): %s\n", p.what, sizeText(p.total), el.Round(time.Millisecond), sizeText(int64(float64(p.total)/max(el.Seconds(), 1e-6))), result)
}

// sizeText is n bytes in KiB, MiB or GiB.
func sizeText(n int64) string {
	return binaryUnits(big.NewInt(n), "B")
}

// etaOf is how long left bytes take at rate bytes per second, to the
// second.
func etaOf(left int64, rate float64) time.Duration {
	return time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second)
}
