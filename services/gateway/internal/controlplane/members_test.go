package controlplane

import (
	"encoding/json"
	"testing"
)

func TestOptionalMembers(t *testing.T) {
	t.Parallel()
	var m Members
	if err := json.Unmarshal([]byte(`{"s":"x","e":"","n":null,"i":60,"big":31536001,"f":60.0,"neg":-1,"o":{ "k" : [1] },"a":[],"q":"60","bad":"{\"x\":1"}`), &m); err != nil {
		t.Fatal(err)
	}
	// Members built from gRPC fields hold any text: a value that is not
	// one object with no surrounding space is refused.
	m["text"] = json.RawMessage(`{"a":`)
	m["spaced"] = json.RawMessage(`{} `)
	m["two"] = json.RawMessage(`{}{}`)
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{{"s", "x", true}, {"e", "", true}, {"n", "", true}, {"absent", "", true}, {"i", "", false}, {"o", "", false}, {"a", "", false}} {
		if got, ok := m.String(tc.key); got != tc.want || ok != tc.ok {
			t.Errorf("String(%s) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{{"o", `{ "k" : [1] }`, true}, {"n", "DEF", true}, {"absent", "DEF", true}, {"a", "", false}, {"s", "", false}, {"i", "", false},
		{"text", "", false}, {"spaced", "", false}, {"two", "", false}, {"bad", "", false}} {
		if got, ok := m.Object(tc.key, 64, "DEF"); got != tc.want || ok != tc.ok {
			t.Errorf("Object(%s) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := m.Object("o", 5, "{}"); ok {
		t.Errorf("Object accepted an object over its size bound")
	}
	for _, tc := range []struct {
		key         string
		n           int64
		present, ok bool
	}{{"i", 60, true, true}, {"absent", 0, false, true}, {"n", 0, false, true}, {"big", 0, true, false},
		{"f", 0, true, false}, {"neg", 0, true, false}, {"q", 0, true, false}, {"o", 0, true, false}} {
		n, present, ok := m.Int(tc.key, MinLinkExpiry, MaxLinkExpiry)
		if n != tc.n || present != tc.present || ok != tc.ok {
			t.Errorf("Int(%s) = %d, %v, %v; want %d, %v, %v", tc.key, n, present, ok, tc.n, tc.present, tc.ok)
		}
	}
}
