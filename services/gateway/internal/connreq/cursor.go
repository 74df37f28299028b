package connreq

import (
	"strconv"
	"strings"

	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Cursor is a replay cursor (spec 5.1): per stream, the highest seq
// already received; All is the `*` cursor.
type Cursor struct {
	All       bool
	Positions map[string]uint64
	// Order keeps the stream ids in the order given.
	Order []string
}

// maxSeq is the largest seq (2^53 - 1).
const maxSeq = 1<<53 - 1

var errCursor = wireerr.New(wireerr.InvalidResumeHeader, "resume must be * or stream_id:seq pairs")

// ParseCursor reads `*` or `pos *( OWS "," OWS pos )`, pos =
// stream_id ":" 1*DIGIT, at most 100 positions, no duplicates.
func ParseCursor(v string) (*Cursor, error) {
	v = strings.TrimSpace(v)
	if v == "*" {
		return &Cursor{All: true, Positions: map[string]uint64{}}, nil
	}
	if v == "" {
		return nil, errCursor
	}
	parts := strings.Split(v, ",")
	if len(parts) > MaxCursorItems {
		return nil, errCursor
	}
	c := &Cursor{Positions: make(map[string]uint64, len(parts))}
	for _, p := range parts {
		p = strings.Trim(p, " \t")
		id, num, ok := strings.Cut(p, ":")
		if !ok || !ids.ValidStreamID(id) || num == "" || len(num) > 16 {
			return nil, errCursor
		}
		for i := 0; i < len(num); i++ {
			if num[i] < '0' || num[i] > '9' {
				return nil, errCursor
			}
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || n > maxSeq {
			return nil, errCursor
		}
		if _, dup := c.Positions[id]; dup {
			return nil, errCursor
		}
		c.Positions[id] = n
		c.Order = append(c.Order, id)
	}
	return c, nil
}

// String renders the cursor, sorted by stream id as SSE ids are (spec 5.3).
func (c *Cursor) String() string {
	if c.All {
		return "*"
	}
	keys := make([]string, 0, len(c.Positions))
	for k := range c.Positions {
		keys = append(keys, k)
	}
	sortStrings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(c.Positions[k], 10))
	}
	return b.String()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
