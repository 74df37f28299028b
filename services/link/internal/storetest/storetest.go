// Package storetest is the contract suite of store.Store. Every engine runs
// the same Run against a real database (storetest_test.go: Postgres through
// pgtest, SQLite in a temporary directory).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/link/internal/store"
)

// Opener returns a new, empty, migrated store for one test; the store is
// closed by the suite.
type Opener func(t *testing.T) store.Store

// t0 has sub-millisecond digits and a non-UTC zone on purpose: stores keep
// milliseconds in UTC.
var t0 = time.Date(2026, 5, 1, 18, 0, 5, 123456789, time.FixedZone("X", 2*3600))

func open(t *testing.T, o Opener) store.Store {
	t.Helper()
	s := o(t)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func conv(ns, alias string) store.Conversation {
	return store.Conversation{
		ID:             ids.NewConversationID(t0),
		Namespace:      ns,
		Alias:          alias,
		OwnerAccountID: ids.NewAccountID(t0),
		MetadataJSON:   `{}`,
		CreatedAt:      t0,
	}
}

func link(c store.Conversation, kid string, created time.Time) store.Link {
	return store.Link{ID: ids.NewLinkID(created), ConversationID: c.ID, KeyID: kid, CreatedAt: created}
}

// norm is what a store returns for a written link.
func norm(l store.Link) store.Link {
	l.CreatedAt = store.Millis(l.CreatedAt)
	l.ExpiresAt = store.Millis(l.ExpiresAt)
	l.RevokedAt = store.Millis(l.RevokedAt)
	return l
}

func mustCreate(t *testing.T, s store.Store, c store.Conversation, l store.Link) {
	t.Helper()
	if err := s.CreateConversation(t.Context(), c, l); err != nil {
		t.Fatalf("CreateConversation(%s/%s): %v", c.Namespace, c.Alias, err)
	}
}

func ptr(s string) *string { return &s }

// Run runs the contract suite against stores made by o.
func Run(t *testing.T, o Opener) {
	t.Run("ConversationRoundTrip", func(t *testing.T) { t.Parallel(); testConversationRoundTrip(t, o) })
	t.Run("C37MetadataBytesExact", func(t *testing.T) { t.Parallel(); testMetadataBytes(t, o) })
	t.Run("NotFound", func(t *testing.T) { t.Parallel(); testNotFound(t, o) })
	t.Run("AliasTaken", func(t *testing.T) { t.Parallel(); testAliasTaken(t, o) })
	t.Run("CreateIsAtomic", func(t *testing.T) { t.Parallel(); testCreateAtomic(t, o) })
	t.Run("C9ConcurrentAliasOnce", func(t *testing.T) { t.Parallel(); testConcurrentAlias(t, o) })
	t.Run("LinksOldestFirst", func(t *testing.T) { t.Parallel(); testLinkOrdering(t, o) })
	t.Run("C16RevokeIdempotent", func(t *testing.T) { t.Parallel(); testRevoke(t, o) })
	t.Run("C16ConcurrentRevokeOnce", func(t *testing.T) { t.Parallel(); testConcurrentRevoke(t, o) })
	t.Run("RevocationLogCursor", func(t *testing.T) { t.Parallel(); testRevocationLog(t, o) })
	t.Run("LiveKeyIDs", func(t *testing.T) { t.Parallel(); testLiveKeyIDs(t, o) })
	t.Run("Ping", func(t *testing.T) {
		t.Parallel()
		if err := open(t, o).Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

func testConversationRoundTrip(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	c := conv("acme", "room-1")
	c.MetadataJSON = `{"topic":"x"}`
	l := link(c, "kid-a", t0)
	l.ExpiresAt = t0.Add(time.Hour)
	l.Label = ptr("first")
	mustCreate(t, s, c, l)

	want := c
	want.CreatedAt = store.Millis(c.CreatedAt)
	if want.CreatedAt.Location() != time.UTC || want.CreatedAt.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("Millis(%v) = %v", c.CreatedAt, want.CreatedAt)
	}
	got, err := s.ConversationByAlias(ctx, "acme", "room-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConversationByAlias (-want +got):\n%s", diff)
	}
	got, err = s.ConversationByID(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConversationByID (-want +got):\n%s", diff)
	}
	links, err := s.ListLinks(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Link{norm(l)}, links); diff != "" {
		t.Errorf("ListLinks (-want +got):\n%s", diff)
	}
}

func testMetadataBytes(t *testing.T, o Opener) {
	s := open(t, o)
	big := make([]byte, 0, 65536)
	big = append(big, `{"k":"`...)
	for len(big) < 65536-2 {
		big = append(big, 'x')
	}
	big = append(big, `"}`...)
	cases := []string{
		`{"b":1,  "a":[2,1],"ü":"\u00fc"}`,
		"  \t\n{ \"z\" : null , \"a\":1.50e+3 }\r\n",
		`{"emoji":"🦊","esc":"\"\\\/\b\f\n\r\t","nul":"\u0000"}`,
		`{}`,
		string(big),
	}
	for i, md := range cases {
		c := conv("meta", fmt.Sprintf("m-%d", i))
		c.MetadataJSON = md
		mustCreate(t, s, c, link(c, "k", t0))
		got, err := s.ConversationByAlias(t.Context(), c.Namespace, c.Alias)
		if err != nil {
			t.Fatal(err)
		}
		if got.MetadataJSON != md {
			t.Errorf("metadata %d: got %q, want %q", i, got.MetadataJSON, md)
		}
		got, err = s.ConversationByID(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.MetadataJSON != md {
			t.Errorf("metadata %d by id: got %q, want %q", i, got.MetadataJSON, md)
		}
	}
}

func testNotFound(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	c := conv("acme", "here")
	mustCreate(t, s, c, link(c, "k", t0))
	if _, err := s.ConversationByAlias(ctx, "acme", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ConversationByAlias(unknown alias) = %v, want ErrNotFound", err)
	}
	if _, err := s.ConversationByAlias(ctx, "other", "here"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ConversationByAlias(other namespace) = %v, want ErrNotFound", err)
	}
	if _, err := s.ConversationByID(ctx, ids.NewConversationID(t0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ConversationByID(unknown) = %v, want ErrNotFound", err)
	}
	orphan := store.Link{ID: ids.NewLinkID(t0), ConversationID: ids.NewConversationID(t0), KeyID: "k", CreatedAt: t0}
	if err := s.CreateLink(ctx, orphan); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateLink(unknown conversation) = %v, want ErrNotFound", err)
	}
	links, err := s.ListLinks(ctx, ids.NewConversationID(t0))
	if err != nil || len(links) != 0 {
		t.Errorf("ListLinks(unknown) = %v, %v; want none", links, err)
	}
}

func testAliasTaken(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	c1 := conv("acme", "dup")
	mustCreate(t, s, c1, link(c1, "k", t0))
	c2 := conv("acme", "dup")
	l2 := link(c2, "k", t0)
	if err := s.CreateConversation(ctx, c2, l2); !errors.Is(err, store.ErrAliasTaken) {
		t.Fatalf("second CreateConversation = %v, want ErrAliasTaken", err)
	}
	if _, err := s.ConversationByID(ctx, c2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("loser conversation stored: %v", err)
	}
	if links, _ := s.ListLinks(ctx, c2.ID); len(links) != 0 {
		t.Errorf("loser link stored: %v", links)
	}
	got, err := s.ConversationByAlias(ctx, "acme", "dup")
	if err != nil || got.ID != c1.ID {
		t.Errorf("alias now names %q (%v), want %q", got.ID, err, c1.ID)
	}
	// The same alias in another namespace is another conversation.
	c3 := conv("other", "dup")
	mustCreate(t, s, c3, link(c3, "k", t0))
}

func testCreateAtomic(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	c1 := conv("acme", "one")
	l1 := link(c1, "k", t0)
	mustCreate(t, s, c1, l1)
	// The first link reuses an existing link id: the insert of the link
	// fails, so the conversation must not be stored either.
	c2 := conv("acme", "two")
	l2 := link(c2, "k", t0)
	l2.ID = l1.ID
	if err := s.CreateConversation(ctx, c2, l2); err == nil {
		t.Fatal("CreateConversation with a duplicate link id succeeded")
	}
	if _, err := s.ConversationByAlias(ctx, "acme", "two"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("conversation stored without its link: %v", err)
	}
	// The alias is still free.
	c3 := conv("acme", "two")
	mustCreate(t, s, c3, link(c3, "k", t0))
}

func testConcurrentAlias(t *testing.T, o Opener) {
	s := open(t, o)
	const n = 20
	errs := make([]error, n)
	convs := make([]store.Conversation, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		convs[i] = conv("race", "same-alias")
		l := link(convs[i], "k", t0)
		wg.Go(func() {
			<-start
			errs[i] = s.CreateConversation(context.Background(), convs[i], l)
		})
	}
	close(start)
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if won >= 0 {
				t.Errorf("creations %d and %d both succeeded", won, i)
			}
			won = i
		case !errors.Is(err, store.ErrAliasTaken):
			t.Errorf("creation %d: %v, want ErrAliasTaken", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no creation succeeded")
	}
	got, err := s.ConversationByAlias(t.Context(), "race", "same-alias")
	if err != nil || got.ID != convs[won].ID {
		t.Errorf("alias names %q (%v), want the winner %q", got.ID, err, convs[won].ID)
	}
}

func testLinkOrdering(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	c := conv("acme", "links")
	first := link(c, "k1", t0)
	mustCreate(t, s, c, first)
	// Inserted out of order: listing is by created_at.
	third := link(c, "k2", t0.Add(2*time.Second))
	third.Label = ptr("ünïcode label")
	second := link(c, "k1", t0.Add(time.Second))
	second.ExpiresAt = t0.Add(time.Hour)
	for _, l := range []store.Link{third, second} {
		if err := s.CreateLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	other := conv("acme", "elsewhere")
	mustCreate(t, s, other, link(other, "k1", t0))
	if _, err := s.RevokeLink(ctx, c.ID, second.ID, t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	second.RevokedAt = t0.Add(3 * time.Second)
	got, err := s.ListLinks(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Link{norm(first), norm(second), norm(third)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListLinks (-want +got):\n%s", diff)
	}
}

func testRevoke(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	c := conv("acme", "rev")
	l := link(c, "k", t0)
	l.ExpiresAt = t0.Add(time.Hour)
	mustCreate(t, s, c, l)
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)

	got, err := s.RevokeLink(ctx, c.ID, l.ID, t1)
	if err != nil {
		t.Fatal(err)
	}
	want := norm(l)
	want.RevokedAt = store.Millis(t1)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RevokeLink (-want +got):\n%s", diff)
	}
	again, err := s.RevokeLink(ctx, c.ID, l.ID, t2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("re-revoke changed the link (-want +got):\n%s", diff)
	}
	revs, _, err := s.ListRevocations(ctx, 0, 100, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || revs[0].LinkID != l.ID || !revs[0].RevokedAt.Equal(store.Millis(t1)) {
		t.Errorf("revocation log = %+v, want one entry for %s at %v", revs, l.ID, t1)
	}

	if _, err := s.RevokeLink(ctx, c.ID, ids.NewLinkID(t0), t1); !errors.Is(err, store.ErrLinkNotFound) {
		t.Errorf("RevokeLink(unknown link) = %v, want ErrLinkNotFound", err)
	}
	other := conv("acme", "rev-other")
	ol := link(other, "k", t0)
	mustCreate(t, s, other, ol)
	if _, err := s.RevokeLink(ctx, c.ID, ol.ID, t1); !errors.Is(err, store.ErrLinkNotFound) {
		t.Errorf("RevokeLink(link of another conversation) = %v, want ErrLinkNotFound", err)
	}
	links, _ := s.ListLinks(ctx, other.ID)
	if len(links) != 1 || !links[0].RevokedAt.IsZero() {
		t.Errorf("link of another conversation was revoked: %+v", links)
	}
}

func testConcurrentRevoke(t *testing.T, o Opener) {
	s := open(t, o)
	c := conv("acme", "rev-race")
	l := link(c, "k", t0)
	mustCreate(t, s, c, l)
	const n = 10
	got := make([]store.Link, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got[i], errs[i] = s.RevokeLink(context.Background(), c.ID, l.ID, t0.Add(time.Duration(i+1)*time.Second))
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("revoke %d: %v", i, errs[i])
		}
		if !got[i].RevokedAt.Equal(got[0].RevokedAt) {
			t.Errorf("revoke %d returned revoked_at %v, revoke 0 %v", i, got[i].RevokedAt, got[0].RevokedAt)
		}
	}
	revs, _, err := s.ListRevocations(t.Context(), 0, 100, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || !revs[0].RevokedAt.Equal(got[0].RevokedAt) {
		t.Errorf("revocation log = %+v, want one entry at %v", revs, got[0].RevokedAt)
	}
}

func testRevocationLog(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	now := t0.Add(time.Hour)
	c := conv("acme", "log")
	forever := link(c, "k", t0)
	mustCreate(t, s, c, forever)
	// Expires 2 minutes before now: its revocation is no longer listed.
	longGone := link(c, "k", t0)
	longGone.ExpiresAt = now.Add(-2 * time.Minute)
	// Expired 30 s before now: still listed.
	recent := link(c, "k", t0)
	recent.ExpiresAt = now.Add(-30 * time.Second)
	later := link(c, "k", t0)
	later.ExpiresAt = now.Add(time.Hour)
	another := link(c, "k", t0)
	for _, l := range []store.Link{longGone, recent, later, another} {
		if err := s.CreateLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}

	if revs, next, err := s.ListRevocations(ctx, 0, 10, now); err != nil || len(revs) != 0 || next != 0 {
		t.Fatalf("empty log: %v, next %d, %v", revs, next, err)
	}
	order := []store.Link{forever, longGone, recent, later, another}
	for i, l := range order {
		if _, err := s.RevokeLink(ctx, c.ID, l.ID, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	// Re-revoking appends nothing.
	if _, err := s.RevokeLink(ctx, c.ID, forever.ID, now); err != nil {
		t.Fatal(err)
	}

	wantIDs := []string{forever.ID, recent.ID, later.ID, another.ID}
	var (
		gotIDs []string
		after  int64
		pages  int
	)
	for {
		revs, next, err := s.ListRevocations(ctx, after, 2, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) == 0 {
			if next != after {
				t.Errorf("empty page moved the cursor from %d to %d", after, next)
			}
			break
		}
		pages++
		if len(revs) > 2 {
			t.Fatalf("page of %d entries, limit 2", len(revs))
		}
		for _, r := range revs {
			if r.Seq <= after {
				t.Errorf("seq %d not after cursor %d", r.Seq, after)
			}
			after = r.Seq
			gotIDs = append(gotIDs, r.LinkID)
			if r.ConversationID != c.ID {
				t.Errorf("revocation conversation %q, want %q", r.ConversationID, c.ID)
			}
		}
		if next != after {
			t.Errorf("next = %d, want last seq %d", next, after)
		}
		if pages > 10 {
			t.Fatal("cursor does not advance")
		}
	}
	if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
		t.Errorf("revoked links listed (-want +got):\n%s", diff)
	}
	// Fields of one entry.
	revs, _, err := s.ListRevocations(ctx, 0, 1000, now)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(revs, func(r store.Revocation) bool { return r.LinkID == recent.ID })
	if i < 0 {
		t.Fatal("recent revocation missing")
	}
	want := store.Revocation{
		Seq: revs[i].Seq, LinkID: recent.ID, ConversationID: c.ID,
		RevokedAt: store.Millis(t0.Add(3 * time.Minute)), LinkExpiresAt: store.Millis(recent.ExpiresAt),
	}
	if diff := cmp.Diff(want, revs[i]); diff != "" {
		t.Errorf("revocation (-want +got):\n%s", diff)
	}
	// Earlier, the long-expired link's revocation was still listed.
	revs, _, err = s.ListRevocations(ctx, 0, 1000, longGone.ExpiresAt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(revs, func(r store.Revocation) bool { return r.LinkID == longGone.ID }) {
		t.Errorf("revocation of a link expiring now is omitted")
	}
}

func testLiveKeyIDs(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	now := t0.Add(24 * time.Hour)
	c := conv("acme", "kids")
	mustCreate(t, s, c, link(c, "forever", t0))
	add := func(kid string, expires time.Time) store.Link {
		t.Helper()
		l := link(c, kid, t0)
		l.ExpiresAt = expires
		if err := s.CreateLink(ctx, l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	add("expired", now.Add(-time.Hour))
	add("expiring", now.Add(time.Minute))
	add("in-leeway", now.Add(-3*time.Second))
	add("past-leeway", now.Add(-6*time.Second))
	r := add("revoked", time.Time{})
	if _, err := s.RevokeLink(ctx, c.ID, r.ID, t0); err != nil {
		t.Fatal(err)
	}
	// A kid with one dead and one live link is live.
	add("mixed", now.Add(-time.Hour))
	add("mixed", time.Time{})

	got, err := s.LiveKeyIDs(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{"expiring", "forever", "in-leeway", "mixed"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LiveKeyIDs (-want +got):\n%s", diff)
	}
	// Once everything expiring has expired, only links without expiry remain.
	got, err = s.LiveKeyIDs(ctx, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"forever", "mixed"}, got); diff != "" {
		t.Errorf("LiveKeyIDs an hour later (-want +got):\n%s", diff)
	}
}
