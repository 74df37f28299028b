package httpapi

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/amsrouter/ams/services/internal/wireerr"
)

func TestObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body    string
		emptyOK bool
		ok      bool
	}{
		{`{}`, false, true},
		{` {"a":1} `, false, true},
		{``, true, true},
		{" \t\r\n", true, true},
		{``, false, false},
		{`  `, false, false},
		{`[]`, true, false},
		{`null`, true, false},
		{`"x"`, true, false},
		{`1`, true, false},
		{`{`, true, false},
		{`{} {}`, true, false},
		{`{}x`, true, false},
		{`{"a":}`, true, false},
		{`{"a":1,}`, true, false},
		{"\f", true, false},
		{"\u00a0{}", true, false},
		{"\v{}\v", true, false},
	}
	for _, tc := range tests {
		m, err := object([]byte(tc.body), tc.emptyOK)
		if (err == nil) != tc.ok {
			t.Errorf("object(%q, %v) error = %v, want ok %v", tc.body, tc.emptyOK, err, tc.ok)
		}
		if err != nil {
			if we, _ := wireerr.As(err); we == nil || we.Code != wireerr.InvalidJSON {
				t.Errorf("object(%q) error = %v, want invalid_json", tc.body, err)
			}
		} else if m == nil {
			t.Errorf("object(%q) = nil map", tc.body)
		}
	}
}

// jsonInteger is a JSON number without fraction or exponent.
var jsonInteger = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// FuzzObject checks the body helpers against encoding/json: object
// accepts exactly the JSON objects (and blank bodies when allowed); the
// optional-member readers accept only their type and keep exact bytes.
func FuzzObject(f *testing.F) {
	for _, s := range []string{``, ` `, `{}`, `[]`, `null`, `{"namespace":"acme"}`, `{"alias":null,"metadata":{"a":[1,{"b":"c"}]}}`,
		`{"link_expires_in":60}`, `{"link_expires_in":6e1}`, `{"label":"\u00e9\ud83d\ude00"}`, `{"a":"\ud800"}`, `{"a":1}{}`,
		"{\"a\":\"\xff\"}", `{"a":{"b":{}}, "a":2}`} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, emptyOK bool) {
		m, err := object(body, emptyOK)
		trimmed := strings.Trim(string(body), " \t\r\n")
		var ref map[string]json.RawMessage
		refErr := json.Unmarshal(body, &ref)
		isObject := refErr == nil && ref != nil && strings.HasPrefix(trimmed, "{")
		blank := strings.Trim(string(body), " \t\r\n") == ""
		switch {
		case err != nil:
			if we, _ := wireerr.As(err); we == nil || we.Code != wireerr.InvalidJSON {
				t.Fatalf("object error %v, want invalid_json", err)
			}
			if isObject || (blank && emptyOK) {
				t.Fatalf("object(%q) refused a JSON object or an allowed blank body", body)
			}
			return
		case blank:
			if !emptyOK || len(m) != 0 {
				t.Fatalf("object(%q, %v) = %v", body, emptyOK, m)
			}
			return
		case !isObject:
			t.Fatalf("object(%q) accepted a body encoding/json does not read as an object (%v)", body, refErr)
		}
		if len(m) != len(ref) {
			t.Fatalf("object has %d members, encoding/json %d", len(m), len(ref))
		}
		for k, v := range m {
			if !json.Valid(v) {
				t.Fatalf("member %q = %q is not JSON", k, v)
			}
			if s, ok := m.String(k); ok && !(v == nil || string(v) == "null") {
				var want string
				if json.Unmarshal(v, &want) != nil || v[0] != '"' || s != want {
					t.Fatalf("Members.String(%q) = %q from %q", k, s, v)
				}
			} else if !ok && v[0] == '"' {
				t.Fatalf("Members.String(%q) refused the string %q", k, v)
			}
			if o, ok := m.Object(k, 1<<10, "DEF"); ok && !(v == nil || string(v) == "null") {
				if o != string(v) || o[0] != '{' || len(o) > 1<<10 || !utf8.ValidString(o) {
					t.Fatalf("Members.Object(%q) = %q from %q", k, o, v)
				}
			} else if ok && o != "DEF" {
				t.Fatalf("Members.Object(%q) of null = %q, want the default", k, o)
			}
			if n, present, ok := m.Int(k, -1000, 1000); ok && present {
				if n < -1000 || n > 1000 || !jsonInteger.MatchString(string(v)) || strings.TrimPrefix(strconv.FormatInt(n, 10), "-") != strings.TrimPrefix(string(v), "-") {
					t.Fatalf("Members.Int(%q) = %d from %q", k, n, v)
				}
			} else if !present && !(v == nil || string(v) == "null") {
				t.Fatalf("Members.Int(%q) says absent for %q", k, v)
			}
		}
		if _, ok := m.String("\x00absent"); !ok {
			t.Fatal("Members.String of an absent member is not ok")
		}
	})
}
