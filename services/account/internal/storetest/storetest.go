// Package storetest is the contract suite of the account store: every
// engine (pgstore, sqlitestore) runs Run against a real database, so the
// engines cannot drift apart.
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/amsrouter/ams/services/account/internal/store"
	"github.com/amsrouter/ams/services/internal/ids"
)

// Run runs the contract suite. open must return a new, empty, migrated
// store for each call; Run closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	newStore := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
		return s
	}

	t.Run("CreateAndLookup", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		a := newAccount("alpha")
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
		byHash, err := s.AccountByCredentialHash(ctx, a.CredentialHash)
		if err != nil {
			t.Fatalf("AccountByCredentialHash: %v", err)
		}
		if diff := cmp.Diff(a, byHash); diff != "" {
			t.Errorf("AccountByCredentialHash (-want +got):\n%s", diff)
		}
		byID, err := s.AccountByID(ctx, a.ID)
		if err != nil {
			t.Fatalf("AccountByID: %v", err)
		}
		if diff := cmp.Diff(a, byID); diff != "" {
			t.Errorf("AccountByID (-want +got):\n%s", diff)
		}
		if !byID.RotatedAt.IsZero() {
			t.Errorf("RotatedAt = %v before any rotation, want zero", byID.RotatedAt)
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})

	t.Run("TimestampsMillisecondsUTC", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		loc := time.FixedZone("UTC+5:30", 5*3600+1800)
		created := time.Date(2026, 5, 1, 23, 0, 5, 123_456_789, loc)
		a := newAccount("clock")
		a.CreatedAt = created
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
		got, err := s.AccountByID(ctx, a.ID)
		if err != nil {
			t.Fatalf("AccountByID: %v", err)
		}
		want := time.Date(2026, 5, 1, 17, 30, 5, 123_000_000, time.UTC)
		if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want %v in UTC", got.CreatedAt, want)
		}
		rotated := time.Date(2026, 5, 2, 1, 2, 3, 999_999_999, loc)
		r, err := s.RotateCredential(ctx, a.ID, hashOf(ids.NewCredential()), rotated)
		if err != nil {
			t.Fatalf("RotateCredential: %v", err)
		}
		wantRot := time.Date(2026, 5, 1, 19, 32, 3, 999_000_000, time.UTC)
		if !r.RotatedAt.Equal(wantRot) || r.RotatedAt.Location() != time.UTC {
			t.Errorf("RotatedAt = %v, want %v in UTC", r.RotatedAt, wantRot)
		}
		again, err := s.AccountByID(ctx, a.ID)
		if err != nil {
			t.Fatalf("AccountByID: %v", err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Errorf("account after rotation (-returned +read):\n%s", diff)
		}
	})

	t.Run("NamespaceTaken", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		first := newAccount("taken")
		if err := s.CreateAccount(ctx, first); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
		second := newAccount("taken")
		if err := s.CreateAccount(ctx, second); !errors.Is(err, store.ErrNamespaceTaken) {
			t.Fatalf("CreateAccount of a taken namespace: err = %v, want ErrNamespaceTaken", err)
		}
		if _, err := s.AccountByID(ctx, second.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("losing account was stored: AccountByID err = %v, want ErrNotFound", err)
		}
		got, err := s.AccountByCredentialHash(ctx, first.CredentialHash)
		if err != nil || got.ID != first.ID {
			t.Errorf("first account after conflict: %+v, %v", got, err)
		}
	})

	t.Run("OtherUniqueKeysConflict", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		a := newAccount("one")
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
		sameID := newAccount("two")
		sameID.ID = a.ID
		if err := s.CreateAccount(ctx, sameID); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate id: err = %v, want ErrConflict", err)
		}
		sameHash := newAccount("three")
		sameHash.CredentialHash = a.CredentialHash
		if err := s.CreateAccount(ctx, sameHash); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate credential hash: err = %v, want ErrConflict", err)
		}
	})

	t.Run("C9ConcurrentCreateSucceedsOnce", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		const n = 20
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, n)
			accts = make([]store.Account, n)
		)
		for i := range n {
			accts[i] = newAccount("contested")
			wg.Go(func() {
				<-start
				errs[i] = s.CreateAccount(ctx, accts[i])
			})
		}
		close(start)
		wg.Wait()
		var won []int
		for i, err := range errs {
			switch {
			case err == nil:
				won = append(won, i)
			case errors.Is(err, store.ErrNamespaceTaken):
			default:
				t.Errorf("creation %d: unexpected error %v", i, err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("%d creations succeeded, want exactly 1", len(won))
		}
		for i, a := range accts {
			_, err := s.AccountByID(ctx, a.ID)
			if i == won[0] && err != nil {
				t.Errorf("winner %d not stored: %v", i, err)
			}
			if i != won[0] && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("loser %d: AccountByID err = %v, want ErrNotFound", i, err)
			}
		}
	})

	t.Run("RotateCredential", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		a := newAccount("rotor")
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
		newHash := hashOf(ids.NewCredential())
		at := store.Time(time.Now())
		got, err := s.RotateCredential(ctx, a.ID, newHash, at)
		if err != nil {
			t.Fatalf("RotateCredential: %v", err)
		}
		want := a
		want.CredentialHash = newHash
		want.RotatedAt = at
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("RotateCredential (-want +got):\n%s", diff)
		}
		if _, err := s.AccountByCredentialHash(ctx, a.CredentialHash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("old hash after rotation: err = %v, want ErrNotFound", err)
		}
		byNew, err := s.AccountByCredentialHash(ctx, newHash)
		if err != nil {
			t.Fatalf("new hash after rotation: %v", err)
		}
		if diff := cmp.Diff(want, byNew); diff != "" {
			t.Errorf("AccountByCredentialHash(new) (-want +got):\n%s", diff)
		}
	})

	t.Run("RotateToTakenHashConflicts", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		a, b := newAccount("first"), newAccount("second")
		for _, x := range []store.Account{a, b} {
			if err := s.CreateAccount(ctx, x); err != nil {
				t.Fatalf("CreateAccount: %v", err)
			}
		}
		if _, err := s.RotateCredential(ctx, a.ID, b.CredentialHash, time.Now()); !errors.Is(err, store.ErrConflict) {
			t.Errorf("rotate onto another account's hash: err = %v, want ErrConflict", err)
		}
		got, err := s.AccountByCredentialHash(ctx, a.CredentialHash)
		if err != nil || got.ID != a.ID {
			t.Errorf("account after failed rotation: %+v, %v", got, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		a := newAccount("present")
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
		if _, err := s.AccountByID(ctx, ids.NewAccountID(time.Now())); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AccountByID(unknown): err = %v, want ErrNotFound", err)
		}
		if _, err := s.AccountByID(ctx, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AccountByID(\"\"): err = %v, want ErrNotFound", err)
		}
		if _, err := s.AccountByCredentialHash(ctx, hashOf(ids.NewCredential())); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AccountByCredentialHash(unknown): err = %v, want ErrNotFound", err)
		}
		if _, err := s.RotateCredential(ctx, ids.NewAccountID(time.Now()), hashOf(ids.NewCredential()), time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RotateCredential(unknown): err = %v, want ErrNotFound", err)
		}
		got, err := s.AccountByID(ctx, a.ID)
		if err != nil || got.CredentialHash != a.CredentialHash {
			t.Errorf("existing account changed: %+v, %v", got, err)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.CreateAccount(ctx, newAccount("late")); err == nil {
			t.Errorf("CreateAccount with a canceled context succeeded")
		}
		if _, err := s.AccountByID(t.Context(), "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("store unusable after a canceled call: %v", err)
		}
	})
}

var hasher = ids.NewCredentialHasher([]byte("storetest-pepper-0123456789"))

func hashOf(credential string) string { return hasher.Hash(credential) }

func newAccount(namespace string) store.Account {
	now := time.Now()
	return store.Account{
		ID:             ids.NewAccountID(now),
		Namespace:      namespace,
		CredentialHash: hashOf(ids.NewCredential()),
		CreatedAt:      store.Time(now),
	}
}
