package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/amsrouter/ams/services/account/internal/sqlitestore"
	"github.com/amsrouter/ams/services/account/internal/store"
	"github.com/amsrouter/ams/services/account/internal/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "account.db"))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	})
}
