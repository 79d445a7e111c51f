package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A run with -only measures some steps; mergeEarlier keeps everything else
// an earlier run wrote in the same directory, so a partial re-run updates
// its own figures and leaves the rest:
//
//   - a figure is replaced when this run measured a figure of the same
//     name, or ran its step in full (the step was named in -only); other
//     figures are kept with the step and the start time of the run that
//     measured them;
//   - results.md's section of a step this run did not run at all is copied
//     from the earlier results.md (between its <!-- step:… --> markers).

// earlierResults is what mergeEarlier reads of an earlier results.json.
type earlierResults struct {
	Started     time.Time          `json:"started"`
	Metrics     map[string]*Metric `json:"metrics"`
	MetricOrder []string           `json:"metric_order"`
}

// mergeEarlier merges the results.json and results.md in dir into r;
// steps is the suite's order of steps. Missing files are no error.
func (r *Results) mergeEarlier(dir string, steps []string) error {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var old earlierResults
	if err := json.Unmarshal(b, &old); err != nil {
		return fmt.Errorf("bench: merge with %s: %w", filepath.Join(dir, "results.json"), err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	r.merge(&old, string(md), steps)
	return nil
}

// fullyRan tells whether this run ran step in full (named in -only), so
// that figures of it this run did not produce are gone, not kept.
func (r *Results) fullyRan(step string) bool { return r.ran[step] && r.only[step] }

func (r *Results) merge(old *earlierResults, md string, steps []string) {
	order := old.MetricOrder
	if len(order) == 0 { // a results.json of before merging: names in key order
		for name := range old.Metrics {
			order = append(order, name)
		}
		slices.Sort(order)
	}
	measured := map[string]bool{}
	for _, m := range r.Metrics {
		measured[m.Name] = true
	}
	kept := map[string][]*Metric{}
	for _, name := range order {
		m := old.Metrics[name]
		if m == nil || measured[name] || (m.Step != "" && r.fullyRan(m.Step)) {
			continue
		}
		m.Name = name
		if m.Measured.IsZero() {
			m.Measured = old.Started
		}
		kept[m.Step] = append(kept[m.Step], m)
	}
	byStep := map[string][]*Metric{}
	for _, m := range r.Metrics {
		byStep[m.Step] = append(byStep[m.Step], m)
	}
	var all []*Metric
	for _, st := range append(slices.Clone(steps), "") {
		all = append(all, byStep[st]...)
		all = append(all, kept[st]...)
		delete(byStep, st)
		delete(kept, st)
	}
	for _, ms := range byStep { // steps unknown to this suite: none today
		all = append(all, ms...)
	}
	for _, ms := range kept {
		all = append(all, ms...)
	}
	r.Metrics = all
	r.runs = map[string]time.Time{}
	for _, m := range all {
		if !m.Measured.Equal(r.Started) && m.Step != "" {
			r.runs[m.Step] = m.Measured
		}
	}
	r.kept = map[string]string{}
	for _, st := range steps {
		if r.ran[st] {
			continue
		}
		if sec, ok := mdSectionOf(md, st); ok {
			r.kept[st] = sec
		}
	}
}

func stepBegin(step string) string { return "<!-- step:" + step + " -->\n" }
func stepEnd(step string) string   { return "<!-- /step:" + step + " -->\n" }

// mdSectionOf returns the text between step's markers in md.
func mdSectionOf(md, step string) (string, bool) {
	_, rest, ok := strings.Cut(md, stepBegin(step))
	if !ok {
		return "", false
	}
	sec, _, ok := strings.Cut(rest, stepEnd(step))
	return sec, ok
}

// mdSection is one step's part of results.md, between markers.
type mdSection struct {
	r    *Results
	w    func(string, ...any)
	step string
}

func (r *Results) section(w func(string, ...any), step string) *mdSection {
	w("\n%s", stepBegin(step))
	return &mdSection{r: r, w: w, step: step}
}

// end closes the section; for a step this run did not run it first copies
// the earlier results.md's section.
func (s *mdSection) end() {
	if old, ok := s.r.kept[s.step]; ok && !s.r.ran[s.step] {
		s.w("%s", strings.TrimPrefix(old, "\n"))
	}
	s.w("%s", stepEnd(s.step))
}
