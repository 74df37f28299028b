// Package timefmt writes the wire timestamps of AMS: RFC 3339, UTC, three
// fractional digits and Z (spec conventions).
package timefmt

import "time"

// Layout is the wire timestamp layout.
const Layout = "2006-01-02T15:04:05.000Z"

// Format renders t in UTC with millisecond precision.
func Format(t time.Time) string { return string(Append(make([]byte, 0, len(Layout)), t)) }

// Append appends the wire form of t to b, for hot paths (every token
// carries one): the same text as Format, without interpreting Layout.
func Append(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, Layout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return b
}

// Ptr renders t, or returns nil for the zero time (JSON `null`).
func Ptr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := Format(t)
	return &s
}
