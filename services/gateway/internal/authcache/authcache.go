// Package authcache resolves bearer credentials to accounts through the
// account service, caching answers briefly.
//
// The cache is keyed by SHA-256 of the credential, so the plain secret is
// not kept in memory beyond the call. Entries live for TTL (at most 5 s, the
// spec's bound for a rotated credential to stop working everywhere) and are
// dropped at once for an account whose credential was rotated anywhere
// (Forget, driven by a broadcast). Concurrent lookups of one credential
// share one RPC. Failures are never cached.
package authcache

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Account is an authenticated persistent account.
type Account struct {
	ID        string
	Namespace string
}

// MaxTTL is the longest allowed cache lifetime.
const MaxTTL = 5 * time.Second

// maxEntries bounds the cache; when full it is cleared (entries are cheap to
// refetch and live only seconds).
const maxEntries = 100_000

type entry struct {
	acc     Account
	expires time.Time
}

// Cache authenticates credentials.
type Cache struct {
	client accountv1.AccountServiceClient
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[[32]byte]entry
	sf      singleflight.Group

	// Hits and Misses count lookups, for the hit-ratio metric.
	OnLookup func(hit bool)
}

// New returns a cache over the account service client. ttl is capped at
// MaxTTL; 0 disables caching.
func New(client accountv1.AccountServiceClient, ttl time.Duration) *Cache {
	if ttl > MaxTTL {
		ttl = MaxTTL
	}
	return &Cache{client: client, ttl: ttl, now: time.Now, entries: make(map[[32]byte]entry)}
}

// Authenticate returns the account of the credential, or a *wireerr.Error:
// invalid_credential, or unavailable when the account service is down.
func (c *Cache) Authenticate(ctx context.Context, credential string) (Account, error) {
	if !ids.ValidCredentialShape(credential) {
		return Account{}, wireerr.New(wireerr.InvalidCredential, "unknown credential")
	}
	key := sha256.Sum256([]byte(credential))
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		if c.OnLookup != nil {
			c.OnLookup(true)
		}
		return e.acc, nil
	}
	if c.OnLookup != nil {
		c.OnLookup(false)
	}
	v, err, _ := c.sf.Do(string(key[:]), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		resp, err := c.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: credential})
		if err != nil {
			return Account{}, grpcx.FromStatus(err)
		}
		acc := Account{ID: resp.GetAccount().GetAccountId(), Namespace: resp.GetAccount().GetNamespace()}
		if c.ttl > 0 {
			c.mu.Lock()
			if len(c.entries) >= maxEntries {
				clear(c.entries)
			}
			c.entries[key] = entry{acc: acc, expires: c.now().Add(c.ttl)}
			c.mu.Unlock()
		}
		return acc, nil
	})
	if err != nil {
		return Account{}, err
	}
	return v.(Account), nil
}

// Forget drops every cached entry of the account (after a rotation).
func (c *Cache) Forget(accountID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.acc.ID == accountID {
			delete(c.entries, k)
		}
	}
}
