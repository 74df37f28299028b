package linktoken

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newKey(t testing.TB) Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewKey(priv)
}

func keysOf(ks ...Key) KeyFunc {
	return func(kid string) (ed25519.PublicKey, bool) {
		for _, k := range ks {
			if k.ID == kid {
				return k.Private.Public().(ed25519.PublicKey), true
			}
		}
		return nil, false
	}
}

const (
	conv  = "conv_01J00000000000000000"
	ns    = "acme"
	alias = "room-1"
	link  = "lnk_01J00000000000000000"
)

var t0 = time.Date(2026, 5, 1, 18, 0, 0, 0, time.UTC)

// C6: the token is an EdDSA JWT with kid and the listed claims.
func TestC6MintShape(t *testing.T) {
	k := newKey(t)
	tok, err := Mint(k, "https://ams.example", conv, ns, alias, link, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var hdr map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["alg"] != "EdDSA" || hdr["kid"] != k.ID || hdr["typ"] != "JWT" {
		t.Fatalf("header = %v", hdr)
	}
	var claims map[string]any
	b, _ = base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"iss", "sub", "ns", "alias", "jti", "iat", "exp"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("claim %s missing in %v", c, claims)
		}
	}
	noexp, _ := Mint(k, "https://ams.example", conv, ns, alias, link, t0, time.Time{})
	b, _ = base64.RawURLEncoding.DecodeString(strings.Split(noexp, ".")[1])
	claims = nil
	_ = json.Unmarshal(b, &claims)
	if _, ok := claims["exp"]; ok {
		t.Errorf("non-expiring link carries exp: %v", claims)
	}
}

func TestVerify(t *testing.T) {
	k, other := newKey(t), newKey(t)
	good, _ := Mint(k, "iss", conv, ns, alias, link, t0, t0.Add(time.Hour))
	forever, _ := Mint(k, "iss", conv, ns, alias, link, t0, time.Time{})
	byOther, _ := Mint(other, "iss", conv, ns, alias, link, t0, time.Time{})
	// A token signed by an unknown key that claims a known kid.
	forged, _ := Mint(Key{ID: k.ID, Private: other.Private}, "iss", conv, ns, alias, link, t0, time.Time{})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": conv, "ns": ns, "alias": alias, "jti": link})
	hs.Header["kid"] = k.ID
	hsTok, _ := hs.SignedString([]byte(k.Private.Public().(ed25519.PublicKey)))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": conv, "ns": ns, "alias": alias, "jti": link})
	none.Header["kid"] = k.ID
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	expiredForged, _ := Mint(Key{ID: k.ID, Private: other.Private}, "iss", conv, ns, alias, link, t0, t0.Add(time.Minute))

	tests := []struct {
		name        string
		tok         string
		conv, alias string
		now         time.Time
		want        error
	}{
		{"valid", good, conv, alias, t0.Add(time.Minute), nil},
		{"no expiry", forever, conv, alias, t0.Add(1000 * time.Hour), nil},
		{"within leeway", good, conv, alias, t0.Add(time.Hour + 4*time.Second), nil},
		{"C14 expired after leeway", good, conv, alias, t0.Add(time.Hour + 5*time.Second), ErrExpired},
		{"C7 other conversation", good, "conv_01J00000000000000001", alias, t0, ErrInvalid},
		{"C7 other alias", good, conv, "room-2", t0, ErrInvalid},
		{"C7 unknown kid", byOther, conv, alias, t0, ErrInvalid},
		{"C7 bad signature", forged, conv, alias, t0, ErrInvalid},
		{"C7 HS256 with public key", hsTok, conv, alias, t0, ErrInvalid},
		{"C7 alg none", noneTok, conv, alias, t0, ErrInvalid},
		{"expired with bad signature is invalid", expiredForged, conv, alias, t0.Add(time.Hour), ErrInvalid},
		{"expired for another conversation is invalid", good, "conv_01J00000000000000001", alias, t0.Add(2 * time.Hour), ErrInvalid},
		{"garbage", "abc.def.ghi", conv, alias, t0, ErrInvalid},
		{"empty", "", conv, alias, t0, ErrInvalid},
		{"oversized", strings.Repeat("a", MaxLen+1), conv, alias, t0, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(tt.tok, keysOf(k), tt.conv, ns, tt.alias, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && c.LinkID() != link {
				t.Fatalf("link id = %q", c.LinkID())
			}
		})
	}
}

func TestKeyIDStable(t *testing.T) {
	k := newKey(t)
	if KeyID(k.Private.Public().(ed25519.PublicKey)) != k.ID || len(k.ID) != 43 {
		t.Fatalf("kid %q", k.ID)
	}
}

func FuzzVerify(f *testing.F) {
	k := newKey(f)
	good, _ := Mint(k, "iss", conv, ns, alias, link, t0, t0.Add(time.Hour))
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(tok, keysOf(k), conv, ns, alias, t0)
		if err == nil && (c.ConversationID() != conv || c.Namespace != ns || c.Alias != alias) {
			t.Fatalf("accepted a token for another conversation: %+v", c)
		}
		if err == nil && tok != good {
			// Only an exact re-encoding of a minted token can verify.
			if _, err2 := jwt.NewParser().ParseWithClaims(tok, &Claims{}, func(*jwt.Token) (any, error) { return k.Private.Public(), nil }); err2 != nil {
				t.Fatalf("accepted %q that jwt rejects: %v", tok, err2)
			}
		}
	})
}
