package storeopen_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/account/internal/store"
	"github.com/amsrouter/ams/services/account/internal/storeopen"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/pgtest"
)

var testNow = store.Time(time.Now())

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestOpenDispatchesOnScheme(t *testing.T) {
	t.Parallel()
	pgURL := pgtest.NewDatabase(t, "account", storeopen.Migrate)
	urls := map[string]string{
		"postgres":   pgURL,
		"postgresql": "postgresql" + strings.TrimPrefix(pgURL, "postgres"),
		"sqlite":     "sqlite:" + filepath.Join(t.TempDir(), "account.db"),
		"memory":     "sqlite::memory:",
	}
	for name, u := range urls {
		t.Run(name, func(t *testing.T) {
			s, err := storeopen.Open(t.Context(), u)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			a := store.Account{ID: ids.NewAccountID(testNow), Namespace: name, CredentialHash: name + "-hash", CreatedAt: testNow}
			if err := s.CreateAccount(t.Context(), a); err != nil {
				t.Fatalf("CreateAccount: %v", err)
			}
			if _, err := s.AccountByCredentialHash(t.Context(), a.CredentialHash); err != nil {
				t.Errorf("AccountByCredentialHash: %v", err)
			}
		})
	}
}

func TestMigrateSQLiteThenOpen(t *testing.T) {
	t.Parallel()
	u := "sqlite:" + filepath.Join(t.TempDir(), "account.db")
	if err := storeopen.Migrate(t.Context(), u); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s, err := storeopen.Open(t.Context(), u)
	if err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	defer s.Close()
	if _, err := s.AccountByID(t.Context(), "acc_x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AccountByID: %v, want ErrNotFound", err)
	}
}

func TestOpenRefusesOtherURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "sqlite:", "mysql://u:hunter2@h/db", "host=h password=hunter2", "hunter2"} {
		_, err := storeopen.Open(t.Context(), u)
		if err == nil {
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error reveals the password: %v", u, err)
		}
	}
}
