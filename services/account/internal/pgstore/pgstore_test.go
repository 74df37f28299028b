package pgstore_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/amsrouter/ams/services/account/internal/pgstore"
	"github.com/amsrouter/ams/services/account/internal/store"
	"github.com/amsrouter/ams/services/account/internal/storetest"
	"github.com/amsrouter/ams/services/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		url := pgtest.NewDatabase(t, "account", pgstore.Migrate)
		s, err := pgstore.Open(t.Context(), url)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	})
}

// Replicas starting together migrate once: the advisory lock serialises
// them and every later run finds nothing pending.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, "empty", func(context.Context, string) error { return nil })
	var (
		wg   sync.WaitGroup
		errs = make([]error, 4)
	)
	for i := range errs {
		wg.Go(func() { errs[i] = pgstore.Migrate(t.Context(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var applied int
	q := `SELECT count(*) FROM ` + pgstore.VersionTable + ` WHERE version_id = 1 AND is_applied`
	if err := conn.QueryRow(t.Context(), q).Scan(&applied); err != nil {
		t.Fatalf("read versions: %v", err)
	}
	if applied != 1 {
		t.Errorf("migration 1 recorded %d times, want 1", applied)
	}
	var tables int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM information_schema.tables WHERE table_name = 'accounts'`).Scan(&tables); err != nil {
		t.Fatalf("read tables: %v", err)
	}
	if tables != 1 {
		t.Errorf("accounts tables = %d, want 1", tables)
	}
}
