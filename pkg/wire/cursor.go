package wire

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Cursor is a resume position (spec 5.1): per stream id, the highest seq
// already received. Its String form is the value of `X-AMS-Resume`.
type Cursor map[string]uint64

// MaxCursorPositions is the most positions a cursor may hold.
const MaxCursorPositions = 100

// String renders the cursor sorted by stream id:
// `str_…:12,str_…:3`. An empty cursor renders as "*" (replay every
// retained event).
func (c Cursor) String() string {
	if len(c) == 0 {
		return "*"
	}
	var b strings.Builder
	for i, id := range slices.Sorted(maps.Keys(c)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(c[id], 10))
	}
	return b.String()
}

var streamIDPattern = regexp.MustCompile(`^str_[0-9a-f]{26}$`)

// ValidStreamID reports whether s has the form of a stream id.
func ValidStreamID(s string) bool { return streamIDPattern.MatchString(s) }

// ErrInvalidCursor reports a malformed cursor.
var ErrInvalidCursor = errors.New("invalid resume cursor")

// ParseCursor parses a cursor. "*" gives an empty cursor.
func ParseCursor(s string) (Cursor, error) {
	s = strings.TrimSpace(s)
	c := Cursor{}
	if s == "*" {
		return c, nil
	}
	for pos := range strings.SplitSeq(s, ",") {
		id, seq, ok := strings.Cut(strings.TrimSpace(pos), ":")
		if !ok || !ValidStreamID(id) {
			return nil, fmt.Errorf("%w: position %q", ErrInvalidCursor, pos)
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil || seq == "" || seq[0] == '+' {
			return nil, fmt.Errorf("%w: seq %q", ErrInvalidCursor, seq)
		}
		if _, dup := c[id]; dup {
			return nil, fmt.Errorf("%w: %s twice", ErrInvalidCursor, id)
		}
		c[id] = n
	}
	if len(c) > MaxCursorPositions {
		return nil, fmt.Errorf("%w: more than %d positions", ErrInvalidCursor, MaxCursorPositions)
	}
	return c, nil
}
