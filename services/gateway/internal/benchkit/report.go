package benchkit

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Table is a result table, printed as Markdown so that it pastes into
// docs/benchmarks.md as is.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string
}

// Row appends a row.
func (t *Table) Row(cells ...string) { t.Rows = append(t.Rows, cells) }

// Note appends a line printed under the table.
func (t *Table) Note(format string, args ...any) {
	t.Notes = append(t.Notes, fmt.Sprintf(format, args...))
}

// Print writes the table.
func (t *Table) Print(w io.Writer) {
	fmt.Fprintf(w, "\n#### %s\n\n", t.Title)
	width := make([]int, len(t.Header))
	for i, h := range t.Header {
		width[i] = len(h)
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], len([]rune(c)))
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i := range width {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(t.Header)
	sep := make([]string, len(width))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range t.Rows {
		line(r)
	}
	if len(t.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.Notes {
			fmt.Fprintln(w, n)
		}
	}
}

// Target is one performance target of the product and what a run measured for it.
type Target struct {
	Name     string
	Goal     string
	Measured string
	Met      bool
	// Undersized marks a run smaller than the size the target is stated
	// at (a short run): its verdict is indicative only.
	Undersized bool
}

// Verdict is "met", "not met", or, for an undersized run, which of the
// two it would be.
func (t Target) Verdict() string {
	v := "**not met**"
	if t.Met {
		v = "met"
	}
	if t.Undersized {
		return "(" + strings.Trim(v, "*") + " at a smaller size than the target's)"
	}
	return v
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// rate formats tokens per second with thousands separators.
func rate(v float64) string { return thousands(int64(v + 0.5)) }

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ratio formats a/b as "0.42×".
func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// percentiles formats p50 / p90 / p99 / p99.9 of h in ms.
func percentiles(h *Histogram) string {
	if h == nil || h.Count() == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s / %s", ms(h.Percentile(0.5)), ms(h.Percentile(0.9)), ms(h.Percentile(0.99)), ms(h.Percentile(0.999)))
}

// kib formats bytes as KiB with one decimal.
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
