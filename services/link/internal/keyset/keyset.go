// Package keyset holds the link service's Ed25519 signing keys and decides
// which public keys are published for gateways to verify link tokens.
//
// Keys come as PEM text of PKCS#8 "PRIVATE KEY" blocks. The first block is
// the active key, which signs every new link; later blocks are retired keys,
// kept only to keep verifying links they signed. The published set is the
// active key plus every retired key that still has live links (neither
// revoked nor expired, per store.LiveKeyIDs). Rotating is therefore: put a
// new key first, restart; old links stay valid until they expire or are
// revoked, and then their key drops out of the published set (and can be
// removed from the file).
package keyset

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/amsrouter/ams/services/internal/linktoken"
)

const pemType = "PRIVATE KEY"

// Parse reads the Ed25519 private keys of PEM text, active key first. It
// fails on anything else: no block, another block type, another key
// algorithm, stray text or a repeated key. Errors never hold key material.
func Parse(pemText []byte) ([]ed25519.PrivateKey, error) {
	var keys []ed25519.PrivateKey
	seen := map[string]bool{}
	rest := pemText
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != pemType {
			return nil, fmt.Errorf("signing key %d: PEM block %q, want %q (PKCS#8)", n, b.Type, pemType)
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key %d: not a PKCS#8 private key", n)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key %d: %T, want Ed25519", n, k)
		}
		kid := linktoken.KeyID(ek.Public().(ed25519.PublicKey))
		if seen[kid] {
			return nil, fmt.Errorf("signing key %d: repeats key %s", n, kid)
		}
		seen[kid] = true
		keys = append(keys, ek)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("signing keys: text outside PEM blocks")
	}
	if len(keys) == 0 {
		return nil, errors.New("signing keys: no PEM \"PRIVATE KEY\" block")
	}
	return keys, nil
}

// Generate returns a new Ed25519 private key.
func Generate() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return k, nil
}

// Encode returns the PEM "PRIVATE KEY" (PKCS#8) text of a key.
func Encode(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// LoadOrCreate reads the keys in the PEM file at path. If the file does not
// exist it generates one key and writes it there (mode 0600, directory
// 0700), atomically: of concurrent callers one file wins and all read it.
// It is meant for development and the all-in-one runner, which keep keys
// in their data directory; production passes keys as a secret.
func LoadOrCreate(path string) ([]ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return Parse(b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	k, err := Generate()
	if err != nil {
		return nil, err
	}
	text, err := Encode(k)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create signing key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".signing-key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	// Link fails if path exists: never overwrite a key someone wrote since.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read signing keys: %w", err)
			}
			return Parse(b)
		}
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return []ed25519.PrivateKey{k}, nil
}

// LiveFunc returns the kids of keys that signed links still live at now
// (store.Store.LiveKeyIDs).
type LiveFunc func(ctx context.Context, now time.Time) ([]string, error)

// PublicKey is one published verification key.
type PublicKey struct {
	ID     string
	Key    ed25519.PublicKey
	Active bool
}

// DefaultTTL is how long a computed published set is reused.
const DefaultTTL = 5 * time.Second

// Options tune a Set; zero values take defaults.
type Options struct {
	// TTL is how long a published set is cached (DefaultTTL).
	TTL time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Log receives a warning when live links cannot be read.
	Log *slog.Logger
}

// Set is the signing key set of a running service. It is safe for
// concurrent use.
type Set struct {
	active  linktoken.Key
	retired []linktoken.Key
	live    LiveFunc
	ttl     time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu       sync.Mutex
	cached   []PublicKey
	cachedAt time.Time
}

// New returns a set whose first key is active. live tells which retired
// keys still have live links.
func New(keys []ed25519.PrivateKey, live LiveFunc, o Options) (*Set, error) {
	if len(keys) == 0 {
		return nil, errors.New("no signing key")
	}
	s := &Set{live: live, ttl: o.TTL, now: o.Now, log: o.Log}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for i, k := range keys {
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("signing key %d: not an Ed25519 private key", i+1)
		}
		lk := linktoken.NewKey(k)
		if seen[lk.ID] {
			return nil, fmt.Errorf("signing key %d: repeats key %s", i+1, lk.ID)
		}
		seen[lk.ID] = true
		if i == 0 {
			s.active = lk
		} else {
			s.retired = append(s.retired, lk)
		}
	}
	return s, nil
}

// Active returns the key that signs new links.
func (s *Set) Active() linktoken.Key { return s.active }

// Published returns the active key first, then each retired key that still
// has live links, in configuration order. The answer is cached for the TTL:
// a retired key never gains links, so a cached set is at worst a few
// seconds late in dropping a key. If live links cannot be read, every
// configured key is published (a superset never refuses a valid link) and
// the result is not cached.
func (s *Set) Published(ctx context.Context) []PublicKey {
	if len(s.retired) == 0 {
		return []PublicKey{s.public(s.active, true)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cached != nil && !now.Before(s.cachedAt) && now.Sub(s.cachedAt) < s.ttl {
		return slices.Clone(s.cached)
	}
	out := []PublicKey{s.public(s.active, true)}
	kids, err := s.live(ctx, now)
	if err != nil {
		s.log.WarnContext(ctx, "read live signing keys; publishing every key", "err", err)
		for _, k := range s.retired {
			out = append(out, s.public(k, false))
		}
		return out
	}
	live := make(map[string]bool, len(kids))
	for _, kid := range kids {
		live[kid] = true
	}
	for _, k := range s.retired {
		if live[k.ID] {
			out = append(out, s.public(k, false))
		}
	}
	s.cached, s.cachedAt = out, now
	return slices.Clone(out)
}

func (s *Set) public(k linktoken.Key, active bool) PublicKey {
	return PublicKey{ID: k.ID, Key: k.Private.Public().(ed25519.PublicKey), Active: active}
}
