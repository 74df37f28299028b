package storetest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/amsrouter/ams/services/internal/pgtest"
	"github.com/amsrouter/ams/services/link/internal/pgstore"
	"github.com/amsrouter/ams/services/link/internal/sqlitestore"
	"github.com/amsrouter/ams/services/link/internal/store"
	"github.com/amsrouter/ams/services/link/internal/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		url := pgtest.NewDatabase(t, "link", pgstore.Migrate)
		s, err := pgstore.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "link.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
