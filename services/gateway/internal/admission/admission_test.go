package admission

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/internal/linktoken"
)

// newTestChecker returns a Checker with one signing key and a synced,
// empty revocation set, and a token for conv minted with that key.
func newTestChecker(t *testing.T, conv *Conversation, now time.Time, expires time.Time) (*Checker, string, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := New(nil)
	key := linktoken.NewKey(priv)
	kid := linktoken.KeyID(pub)
	c.Keys.keys = map[string]ed25519.PublicKey{kid: pub}
	c.Keys.lastTried = time.Now() // no refresh for an unknown kid (there is no link service)
	c.Revoked.synced = true
	c.now = func() time.Time { return now }
	tok, err := linktoken.Mint(key, "http://gw", conv.ID, conv.Namespace, conv.Alias, "lnk_one", now.Add(-time.Minute), expires)
	if err != nil {
		t.Fatal(err)
	}
	return c, tok, kid
}

// The verified-token cache admits a repeated token without a new
// signature check, and still applies revocation, expiry, the key set and
// the conversation on every use.
func TestVerifyCache(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	conv := &Conversation{ID: "conv_01J00000000000000000", Namespace: "acme", Alias: "room"}
	other := &Conversation{ID: "conv_01J00000000000000001", Namespace: "acme", Alias: "other"}

	t.Run("hit", func(t *testing.T) {
		c, tok, kid := newTestChecker(t, conv, now, now.Add(time.Hour))
		for i := 0; i < 2; i++ {
			a, err := c.Verify(conv, tok)
			if err != nil || a.LinkID != "lnk_one" || !a.ExpiresAt.Equal(now.Add(time.Hour)) {
				t.Fatalf("verify %d: %+v, %v", i, a, err)
			}
			if i == 0 {
				// The signature no longer checks against the key set:
				// only a cache hit admits the token again.
				otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
				c.Keys.keys[kid] = otherPub
			}
		}
		delete(c.tokens, tokenKey(sha256.Sum256([]byte(tok))))
		if _, err := c.Verify(conv, tok); err == nil {
			t.Fatal("without the cache the token verified against the wrong key")
		}
	})
	t.Run("revoked after caching", func(t *testing.T) {
		c, tok, _ := newTestChecker(t, conv, now, now.Add(time.Hour))
		if _, err := c.Verify(conv, tok); err != nil {
			t.Fatal(err)
		}
		c.Revoked.revoked["lnk_one"] = time.Time{}
		if _, err := c.Verify(conv, tok); !errors.Is(err, ErrRevoked) {
			t.Fatalf("got %v, want ErrRevoked", err)
		}
	})
	t.Run("expired after caching", func(t *testing.T) {
		c, tok, _ := newTestChecker(t, conv, now, now.Add(time.Minute))
		if _, err := c.Verify(conv, tok); err != nil {
			t.Fatal(err)
		}
		c.now = func() time.Time { return now.Add(time.Minute + linktoken.Leeway + time.Second) }
		if _, err := c.Verify(conv, tok); !errors.Is(err, linktoken.ErrExpired) {
			t.Fatalf("got %v, want ErrExpired", err)
		}
	})
	t.Run("key withdrawn after caching", func(t *testing.T) {
		c, tok, kid := newTestChecker(t, conv, now, now.Add(time.Hour))
		if _, err := c.Verify(conv, tok); err != nil {
			t.Fatal(err)
		}
		delete(c.Keys.keys, kid)
		if _, err := c.Verify(conv, tok); err == nil {
			t.Fatal("a token of a withdrawn key was admitted")
		}
	})
	t.Run("other conversation", func(t *testing.T) {
		c, tok, _ := newTestChecker(t, conv, now, now.Add(time.Hour))
		if _, err := c.Verify(conv, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(other, tok); err == nil {
			t.Fatal("a token of another conversation was admitted")
		}
	})
}
