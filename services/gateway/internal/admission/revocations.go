package admission

import (
	"context"
	"sync"
	"time"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/internal/grpcx"
)

// Revocations mirrors the revoked links of the deployment. The link
// service's revocation log is the source of truth; the set follows it by
// cursor, on a timer and whenever a gateway announces a revocation (Kick).
// Subscribers hear of every newly revoked link once, to close the live
// connections it admitted.
type Revocations struct {
	client linkv1.LinkServiceClient
	kick   chan struct{}

	mu      sync.RWMutex
	revoked map[string]time.Time // link id -> link expiry (zero: none)
	cursor  int64
	synced  bool
	subs    []func(linkID, conversationID string)
}

func newRevocations(client linkv1.LinkServiceClient) *Revocations {
	return &Revocations{client: client, kick: make(chan struct{}, 1), revoked: map[string]time.Time{}}
}

// IsRevoked reports whether the link is revoked.
func (r *Revocations) IsRevoked(linkID string) bool {
	r.mu.RLock()
	_, ok := r.revoked[linkID]
	r.mu.RUnlock()
	return ok
}

// Synced reports whether the set has caught up with the log at least once.
func (r *Revocations) Synced() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.synced
}

// Subscribe registers fn to be called for each newly revoked link.
func (r *Revocations) Subscribe(fn func(linkID, conversationID string)) {
	r.mu.Lock()
	r.subs = append(r.subs, fn)
	r.mu.Unlock()
}

// Kick asks for a sync now (a revocation was announced).
func (r *Revocations) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Sync reads the log from the cursor to its end.
func (r *Revocations) Sync(ctx context.Context) error {
	for {
		r.mu.RLock()
		after := r.cursor
		r.mu.RUnlock()
		resp, err := r.client.ListRevocations(ctx, &linkv1.ListRevocationsRequest{After: after, Limit: 1000})
		if err != nil {
			return grpcx.FromStatus(err)
		}
		var fresh []*linkv1.Revocation
		r.mu.Lock()
		for _, rv := range resp.GetRevocations() {
			if _, dup := r.revoked[rv.GetLinkId()]; dup {
				continue
			}
			var exp time.Time
			if rv.GetLinkExpiresAt() != nil {
				exp = rv.GetLinkExpiresAt().AsTime()
			}
			r.revoked[rv.GetLinkId()] = exp
			fresh = append(fresh, rv)
		}
		if resp.GetNext() > r.cursor {
			r.cursor = resp.GetNext()
		}
		r.synced = true
		subs := r.subs
		r.mu.Unlock()
		for _, rv := range fresh {
			for _, fn := range subs {
				fn(rv.GetLinkId(), rv.GetConversationId())
			}
		}
		if len(resp.GetRevocations()) == 0 || resp.GetNext() <= after {
			return nil
		}
	}
}

// prune drops links that expired long ago: their tokens fail on expiry.
func (r *Revocations) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, exp := range r.revoked {
		if !exp.IsZero() && now.Sub(exp) > time.Minute {
			delete(r.revoked, id)
		}
	}
}

// Run syncs every interval and on Kick until ctx is done.
func (r *Revocations) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var n int
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = r.Sync(sctx)
		cancel()
		if n++; n%600 == 0 {
			r.prune(time.Now())
		}
	}
}
