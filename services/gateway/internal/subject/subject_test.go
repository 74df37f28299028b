package subject

import (
	"strings"
	"testing"
)

const (
	conv = "conv_01J0000000000000000A"
	str  = "str_0123456789abcdef0123456789"
)

func TestSubjects(t *testing.T) {
	s, err := Event(conv, str)
	if err != nil || s != "ams.tok."+conv+"."+str {
		t.Fatalf("Event = %q, %v", s, err)
	}
	if id, ok := StreamOf(s); !ok || id != str {
		t.Fatalf("StreamOf = %q %v", id, ok)
	}
	w, _ := Conversation(conv)
	if w != "ams.tok."+conv+".*" {
		t.Fatal(w)
	}
	for _, bad := range []string{"conv_x.y", "conv_*", "conv_>", "conv_01J0000000000000000A.>", "conv 01", ""} {
		if _, err := Event(bad, str); err == nil {
			t.Errorf("Event accepted conversation %q", bad)
		}
		if _, err := Conversation(bad); err == nil {
			t.Errorf("Conversation accepted %q", bad)
		}
	}
	if _, err := Handoff("gw.1"); err == nil {
		t.Error("gateway name with a dot accepted")
	}
}

func FuzzSubjects(f *testing.F) {
	for _, s := range []string{conv, str, "a.b", "*", ">", " ", "conv_01J0000000000000000A.*", "str_0123456789abcdef012345678>"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, c, s string) {
		for _, fn := range []func() (string, error){
			func() (string, error) { return Event(c, s) },
			func() (string, error) { return PresenceKey(c, s) },
			func() (string, error) { return Conversation(c) },
			func() (string, error) { return PresenceFilter(c) },
			func() (string, error) { return Handoff(s) },
		} {
			subj, err := fn()
			if err != nil {
				continue
			}
			// A valid subject has exactly the tokens we built: the inputs
			// contribute no '.', wildcard or space.
			for _, tok := range strings.Split(subj, ".") {
				if tok == "" || strings.ContainsAny(tok, " \t\r\n>") || (strings.Contains(tok, "*") && tok != "*") {
					t.Fatalf("bad token %q in %q", tok, subj)
				}
			}
			if strings.Count(subj, ".") > 3 {
				t.Fatalf("too many tokens in %q", subj)
			}
		}
	})
}
