package ids

import (
	"regexp"
	"testing"
	"time"
)

// C1: minted ids, credentials, aliases, default names and MCP session ids
// match their spec 2.1 patterns.
func TestC1Formats(t *testing.T) {
	now := time.Now()
	d := NewDeriver([]byte("pepper"))
	cases := []struct {
		re *regexp.Regexp
		v  string
	}{
		{AccountIDRe, NewAccountID(now)},
		{ConversationIDRe, NewConversationID(now)},
		{LinkIDRe, NewLinkID(now)},
		{CredentialRe, NewCredential()},
		{DefaultStreamRe, NewDefaultStreamName()},
		{RandomAliasRe, NewRandomAlias()},
		{MCPSessionIDRe, NewMCPSessionID()},
		{StreamIDRe, d.StreamID(NewConversationID(now), NewAccountID(now), "main")},
		{AnonAccountIDRe, d.AnonAccountID(NewLinkID(now))},
	}
	for i := 0; i < 200; i++ {
		for _, c := range cases {
			if !c.re.MatchString(c.v) {
				t.Fatalf("%q does not match %s", c.v, c.re)
			}
		}
	}
	if a := NewRandomAlias(); !ValidAlias(a) {
		t.Fatalf("random alias %q is not a valid alias", a)
	}
}

func TestTR20TimeOrdered(t *testing.T) {
	a := TR20(time.UnixMilli(1_000))
	b := TR20(time.UnixMilli(1_001))
	if a[:10] >= b[:10] {
		t.Fatalf("%s !< %s", a, b)
	}
	if TR20(time.UnixMilli(0))[:10] != "0000000000" {
		t.Fatal("zero time prefix")
	}
}

// C2: one tuple gives one stream id; other tuples differ.
func TestC2StreamIDDeterministic(t *testing.T) {
	d := NewDeriver([]byte("p"))
	a := d.StreamID("conv_A", "acc_A", "main")
	if a != d.StreamID("conv_A", "acc_A", "main") {
		t.Fatal("not deterministic")
	}
	for _, o := range []string{d.StreamID("conv_B", "acc_A", "main"), d.StreamID("conv_A", "acc_B", "main"), d.StreamID("conv_A", "acc_A", "main2"), NewDeriver([]byte("q")).StreamID("conv_A", "acc_A", "main")} {
		if o == a {
			t.Fatal("collision across tuples")
		}
	}
}

func TestCredentialHash(t *testing.T) {
	h := NewCredentialHasher([]byte("pep"))
	c := NewCredential()
	if h.Hash(c) != h.Hash(c) || h.Hash(c) == NewCredentialHasher([]byte("other")).Hash(c) {
		t.Fatal("hash must be deterministic and peppered")
	}
	if !Equal(h.Hash(c), h.Hash(c)) || Equal(h.Hash(c), h.Hash(NewCredential())) {
		t.Fatal("Equal")
	}
}

var (
	nsRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	streamRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

func FuzzNames(f *testing.F) {
	for _, s := range []string{"a", "-a", "a-", "A", "acme-1", "x.y", "a b", "", "ü", "a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidNamespace(s) != nsRe.MatchString(s) {
			t.Fatalf("ValidNamespace(%q) = %v", s, ValidNamespace(s))
		}
		if ValidStreamName(s) != streamRe.MatchString(s) {
			t.Fatalf("ValidStreamName(%q) = %v", s, ValidStreamName(s))
		}
		if ValidStreamID(s) != StreamIDRe.MatchString(s) {
			t.Fatalf("ValidStreamID(%q) = %v", s, ValidStreamID(s))
		}
	})
}
