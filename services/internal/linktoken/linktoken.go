// Package linktoken mints and verifies magic-link admission tokens `t`
// (spec 2.3): compact JWTs signed with Ed25519, header
// {"alg":"EdDSA","kid":…,"typ":"JWT"}, claims iss, sub (conversation id),
// ns, alias, jti (link id), iat and exp when the link expires.
//
// The link service mints; gateways verify locally from the published key
// set. Revocation is not a property of the token: callers check the link id
// against their revoked set after Verify succeeds.
package linktoken

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Leeway is how long after `exp` a token is still accepted (spec 2.3:
// valid while now < exp + 5 s).
const Leeway = 5 * time.Second

// MaxLen bounds the token text accepted for verification. Real tokens are
// about 400 bytes.
const MaxLen = 4096

var (
	// ErrInvalid: malformed, wrong algorithm, unknown kid, bad signature, or
	// issued for another conversation.
	ErrInvalid = errors.New("invalid link token")
	// ErrExpired: a valid token whose exp + Leeway has passed.
	ErrExpired = errors.New("link expired")
)

// Claims are the claims of a link token.
type Claims struct {
	Namespace string `json:"ns"`
	Alias     string `json:"alias"`
	jwt.RegisteredClaims
}

// LinkID is the token's link id (jti).
func (c *Claims) LinkID() string { return c.ID }

// ConversationID is the token's conversation id (sub).
func (c *Claims) ConversationID() string { return c.Subject }

// Key is one signing key with its key id.
type Key struct {
	ID      string
	Private ed25519.PrivateKey
}

// KeyID returns the RFC 7638 JWK thumbprint of an Ed25519 public key,
// base64url without padding: a stable kid derived from the key alone.
func KeyID(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewKey wraps a private key with its derived kid.
func NewKey(priv ed25519.PrivateKey) Key {
	return Key{ID: KeyID(priv.Public().(ed25519.PublicKey)), Private: priv}
}

// Mint signs a token for the link. expiresAt zero means no exp claim.
func Mint(k Key, issuer, conversationID, namespace, alias, linkID string, issuedAt, expiresAt time.Time) (string, error) {
	c := Claims{
		Namespace: namespace,
		Alias:     alias,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:   issuer,
			Subject:  conversationID,
			ID:       linkID,
			IssuedAt: jwt.NewNumericDate(issuedAt.Truncate(time.Second)),
		},
	}
	if !expiresAt.IsZero() {
		c.ExpiresAt = jwt.NewNumericDate(expiresAt)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = k.ID
	s, err := tok.SignedString(k.Private)
	if err != nil {
		return "", fmt.Errorf("sign link token: %w", err)
	}
	return s, nil
}

// KeyFunc resolves a kid to a public key; ok is false for an unknown kid.
type KeyFunc func(kid string) (ed25519.PublicKey, bool)

// Verify checks a token for the conversation (id, namespace, alias) at time
// now, per spec 2.3. It returns the claims, or ErrInvalid / ErrExpired.
func Verify(token string, keys KeyFunc, conversationID, namespace, alias string, now time.Time) (*Claims, error) {
	if token == "" || len(token) > MaxLen {
		return nil, ErrInvalid
	}
	var c Claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuedAt(),
	)
	_, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, ErrInvalid
		}
		pub, ok := keys(kid)
		if !ok {
			return nil, ErrInvalid
		}
		return pub, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		// The signature was checked before the claims: the token is ours
		// but expired. It is expired only if it also names this
		// conversation; a stale token of another one is just invalid.
		if c.Subject != conversationID || c.Namespace != namespace || c.Alias != alias {
			return nil, ErrInvalid
		}
		return nil, ErrExpired
	default:
		return nil, ErrInvalid
	}
	if c.Subject != conversationID || c.Namespace != namespace || c.Alias != alias || c.ID == "" {
		return nil, ErrInvalid
	}
	return &c, nil
}
