// Package admission answers, on a gateway and without a round trip on the
// hot path, whether a magic-link token admits its bearer to a conversation
// (spec 2.3): conversations are looked up once and cached (they are
// immutable), tokens are verified locally against the link service's
// published key set, and revocations are mirrored into a local set that is
// kept current by polling the link service and by a NATS broadcast.
package admission

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/linktoken"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Errors of Admit. Callers map them to the codes of their route.
var (
	ErrNoConversation = errors.New("conversation not found")
	ErrInvalid        = linktoken.ErrInvalid
	ErrExpired        = linktoken.ErrExpired
	ErrRevoked        = errors.New("link revoked")
)

// Conversation is an immutable conversation record.
type Conversation struct {
	ID             string
	Namespace      string
	Alias          string
	OwnerAccountID string
	// Metadata is the JSON text exactly as minted.
	Metadata  string
	CreatedAt time.Time
}

// Admission is a verified admission: the conversation and the link whose
// token admitted the caller.
type Admission struct {
	Conversation *Conversation
	LinkID       string
	// ExpiresAt is the link's expiry, zero if it never expires.
	ExpiresAt time.Time
}

// Checker verifies admissions. It is safe for concurrent use.
type Checker struct {
	client  linkv1.LinkServiceClient
	Keys    *Keys
	Revoked *Revocations
	now     func() time.Time

	mu    sync.Mutex
	convs map[string]convEntry
	sf    singleflight.Group

	// Tokens whose signature verified, so that the clients of one link
	// reconnecting at once do not each pay an Ed25519 verification.
	// Expiry, revocation and the signing key's presence are checked on
	// every use. A token is kept by its SHA-256 digest, not itself: the
	// token is a substring of the request it came in, which would stay
	// in memory with it, and a link is a secret.
	tmu    sync.Mutex
	tokens map[tokenKey]verifiedToken
}

type tokenKey [sha256.Size]byte

type verifiedToken struct {
	convID, linkID, kid string
	expires, at         time.Time
}

const (
	tokenTTL        = 5 * time.Minute
	tokenMaxEntries = 10_000
)

type convEntry struct {
	c       *Conversation
	fetched time.Time
}

const (
	convTTL        = 10 * time.Minute
	convMaxEntries = 50_000
)

// New returns a Checker over the link service client.
func New(client linkv1.LinkServiceClient) *Checker {
	return &Checker{
		client:  client,
		Keys:    newKeys(client),
		Revoked: newRevocations(client),
		now:     time.Now,
		convs:   make(map[string]convEntry),
		tokens:  make(map[tokenKey]verifiedToken),
	}
}

// Conversation returns the conversation (ns, alias), or ErrNoConversation,
// or a *wireerr.Error when the link service cannot answer.
func (c *Checker) Conversation(ctx context.Context, ns, alias string) (*Conversation, error) {
	key := ns + "/" + alias
	c.mu.Lock()
	e, ok := c.convs[key]
	c.mu.Unlock()
	if ok && c.now().Sub(e.fetched) < convTTL {
		return e.c, nil
	}
	v, err, _ := c.sf.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		resp, err := c.client.GetConversation(ctx, &linkv1.GetConversationRequest{Namespace: ns, Alias: alias})
		if err != nil {
			err = grpcx.FromStatus(err)
			if we, ok := wireerr.As(err); ok && we.Code.Name == wireerr.NotFound.Name {
				return nil, ErrNoConversation
			}
			return nil, err
		}
		conv := FromProto(resp)
		c.mu.Lock()
		if len(c.convs) >= convMaxEntries {
			clear(c.convs)
		}
		c.convs[key] = convEntry{c: conv, fetched: c.now()}
		c.mu.Unlock()
		return conv, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Conversation), nil
}

// FromProto converts the link service's conversation.
func FromProto(p *linkv1.Conversation) *Conversation {
	return &Conversation{
		ID:             p.GetConversationId(),
		Namespace:      p.GetNamespace(),
		Alias:          p.GetAlias(),
		OwnerAccountID: p.GetOwnerAccountId(),
		Metadata:       p.GetMetadataJson(),
		CreatedAt:      p.GetCreatedAt().AsTime(),
	}
}

// Verify checks a token for a known conversation: signature, key, claims,
// expiry (with the spec's 5 s leeway) and revocation.
func (c *Checker) Verify(conv *Conversation, token string) (Admission, error) {
	if !c.Revoked.Synced() {
		// Without the revoked set a revoked link would be admitted.
		return Admission{}, wireerr.New(wireerr.Unavailable, "link revocations are not loaded yet")
	}
	now := c.now()
	key := tokenKey(sha256.Sum256([]byte(token)))
	if v, ok := c.cachedToken(conv.ID, key, now); ok {
		if c.Revoked.IsRevoked(v.linkID) {
			return Admission{}, ErrRevoked
		}
		return Admission{Conversation: conv, LinkID: v.linkID, ExpiresAt: v.expires}, nil
	}
	var kid string
	lookup := func(k string) (ed25519.PublicKey, bool) {
		kid = k
		return c.Keys.Lookup(k)
	}
	claims, err := linktoken.Verify(token, lookup, conv.ID, conv.Namespace, conv.Alias, now)
	if err != nil {
		return Admission{}, err
	}
	if c.Revoked.IsRevoked(claims.LinkID()) {
		return Admission{}, ErrRevoked
	}
	a := Admission{Conversation: conv, LinkID: claims.LinkID()}
	if claims.ExpiresAt != nil {
		a.ExpiresAt = claims.ExpiresAt.Time
	}
	c.tmu.Lock()
	if len(c.tokens) >= tokenMaxEntries {
		clear(c.tokens)
	}
	c.tokens[key] = verifiedToken{convID: conv.ID, linkID: a.LinkID, kid: kid, expires: a.ExpiresAt, at: now}
	c.tmu.Unlock()
	return a, nil
}

// cachedToken returns a token verified earlier for this conversation, if
// it is recent, not expired and its key is still published. Anything else
// goes through a full verification, which reports expiry as such.
func (c *Checker) cachedToken(convID string, key tokenKey, now time.Time) (verifiedToken, bool) {
	c.tmu.Lock()
	v, ok := c.tokens[key]
	c.tmu.Unlock()
	if !ok || v.convID != convID || now.Sub(v.at) > tokenTTL ||
		(!v.expires.IsZero() && !now.Before(v.expires)) || !c.Keys.has(v.kid) {
		return verifiedToken{}, false
	}
	return v, true
}

// Admit looks the conversation up, then verifies the token for it. The
// lookup comes first: an unknown conversation is reported as such whatever
// the token (spec 4.2 check 2).
func (c *Checker) Admit(ctx context.Context, ns, alias, token string) (Admission, error) {
	conv, err := c.Conversation(ctx, ns, alias)
	if err != nil {
		return Admission{}, err
	}
	return c.Verify(conv, token)
}

// Keys mirrors the link service's published key set.
type Keys struct {
	client linkv1.LinkServiceClient

	mu        sync.RWMutex
	keys      map[string]ed25519.PublicKey
	order     []string
	fetched   time.Time
	lastTried time.Time
	sf        singleflight.Group
}

func newKeys(client linkv1.LinkServiceClient) *Keys {
	return &Keys{client: client, keys: map[string]ed25519.PublicKey{}}
}

// Refresh fetches the key set.
func (k *Keys) Refresh(ctx context.Context) error {
	_, err, _ := k.sf.Do("", func() (any, error) {
		k.mu.Lock()
		k.lastTried = time.Now()
		k.mu.Unlock()
		resp, err := k.client.GetKeySet(ctx, &linkv1.GetKeySetRequest{})
		if err != nil {
			return nil, grpcx.FromStatus(err)
		}
		keys := make(map[string]ed25519.PublicKey, len(resp.GetKeys()))
		order := make([]string, 0, len(resp.GetKeys()))
		for _, pk := range resp.GetKeys() {
			if len(pk.GetEd25519()) != ed25519.PublicKeySize || pk.GetKid() == "" {
				continue
			}
			keys[pk.GetKid()] = ed25519.PublicKey(pk.GetEd25519())
			order = append(order, pk.GetKid())
		}
		k.mu.Lock()
		k.keys, k.order, k.fetched = keys, order, time.Now()
		k.mu.Unlock()
		return nil, nil
	})
	return err
}

// Lookup returns the public key of kid. An unknown kid triggers a refresh
// (at most once a second), so a key added by a rotation is picked up by the
// first token that uses it.
func (k *Keys) Lookup(kid string) (ed25519.PublicKey, bool) {
	k.mu.RLock()
	pub, ok := k.keys[kid]
	recent := time.Since(k.lastTried) < time.Second
	k.mu.RUnlock()
	if ok || recent {
		return pub, ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := k.Refresh(ctx); err != nil {
		return nil, false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	pub, ok = k.keys[kid]
	return pub, ok
}

// has reports whether kid is in the key set, without a refresh.
func (k *Keys) has(kid string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.keys[kid]
	return ok
}

// PublicKey is one published key.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// All returns the current key set in the link service's order.
func (k *Keys) All() []PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]PublicKey, 0, len(k.order))
	for _, id := range k.order {
		out = append(out, PublicKey{ID: id, Key: k.keys[id]})
	}
	return out
}

// Loaded reports whether a key set was ever fetched.
func (k *Keys) Loaded() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return !k.fetched.IsZero()
}

// Run refreshes the key set every interval until ctx is done.
func (k *Keys) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = k.Refresh(rctx)
			cancel()
		}
	}
}
