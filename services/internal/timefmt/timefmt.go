// Package timefmt writes the wire timestamps of AMS: RFC 3339, UTC, three
// fractional digits and Z (spec conventions).
package timefmt

import "time"

// Layout is the wire timestamp layout.
const Layout = "2006-01-02T15:04:05.000Z"

// Format renders t in UTC with millisecond precision.
func Format(t time.Time) string { return t.UTC().Format(Layout) }

// Append appends the wire form of t to b, for hot paths.
func Append(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, Layout) }

// Ptr renders t, or returns nil for the zero time (JSON `null`).
func Ptr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := Format(t)
	return &s
}
