package httpstream

import (
	"strings"
	"testing"

	"github.com/amsrouter/ams/services/internal/wireerr"
)

// A set-metadata body is held to the WebSocket frame's nesting bound: the
// metadata a set_metadata frame accepts (nested up to 255 deep inside the
// frame's object) and nothing deeper, refused as invalid_metadata.
func TestMetadataBodyNesting(t *testing.T) {
	nested := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	for _, tt := range []struct {
		body, code string
	}{
		{" " + nested(255) + "\n", ""},
		{nested(256), wireerr.InvalidMetadata.Name},
		{`{"a":` + strings.Repeat("[", 255) + strings.Repeat("]", 255) + `}`, wireerr.InvalidMetadata.Name},
		{`{"a":` + strings.Repeat("[", 254) + strings.Repeat("]", 254) + `}`, ""},
		{`{"n":1e999999999}`, ""},
		{`[]`, wireerr.InvalidMetadata.Name},
	} {
		md, err := decodeMetadataBody([]byte(tt.body))
		got := ""
		if we, ok := wireerr.As(err); ok {
			got = we.Code.Name
		} else if err != nil {
			got = "untyped: " + err.Error()
		}
		if got != tt.code {
			t.Errorf("%.40s: %q, want %q", tt.body, got, tt.code)
		}
		if err == nil && md != strings.TrimSpace(tt.body) {
			t.Errorf("%.40s: kept %.40q", tt.body, md)
		}
	}
}
