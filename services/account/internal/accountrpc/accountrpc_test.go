package accountrpc_test

import (
	"path/filepath"
	"strings"
	"testing"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	"github.com/amsrouter/ams/services/account/internal/accountrpc"
	"github.com/amsrouter/ams/services/account/internal/sqlitestore"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/logging"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

func newServer(tb testing.TB) *accountrpc.Server {
	tb.Helper()
	st, err := sqlitestore.Open(tb.Context(), filepath.Join(tb.TempDir(), "account.db"))
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return accountrpc.New(st, ids.NewCredentialHasher([]byte("fuzz-pepper-0123456789")), logging.Discard())
}

// FuzzAuthenticate: no input panics, and nothing but the account's own
// credential authenticates (C5, C17: only the exact current credential).
func FuzzAuthenticate(f *testing.F) {
	srv := newServer(f)
	created, err := srv.CreateAccount(f.Context(), &accountv1.CreateAccountRequest{Namespace: "fuzz"})
	if err != nil {
		f.Fatalf("CreateAccount: %v", err)
	}
	known := created.GetCredential()
	wantID := created.GetAccount().GetAccountId()

	for _, seed := range []string{
		"",
		"ams_sk_",
		known,
		known[:len(known)-1],
		known + "A",
		" " + known,
		known + "\n",
		strings.ToUpper(known),
		"ams_sk_" + strings.Repeat("A", 43),
		"ams_sk_" + strings.Repeat("/", 43),
		"ams_sk_' OR '1'='1' -- " + strings.Repeat("x", 20),
		"Bearer " + known,
		"ams_sk_\x00" + strings.Repeat("a", 42),
		"ams_sk_ääääääääääääääääääääää",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, credential string) {
		res, err := srv.Authenticate(t.Context(), &accountv1.AuthenticateRequest{Credential: credential})
		if credential == known {
			if err != nil || res.GetAccount().GetAccountId() != wantID {
				t.Fatalf("own credential: %v, %v", res, err)
			}
			return
		}
		if res != nil {
			t.Fatalf("Authenticate(%q) = %v, want refusal", credential, res)
		}
		if we, ok := wireerr.As(err); !ok || we.Code != wireerr.InvalidCredential {
			t.Fatalf("Authenticate(%q) err = %v, want invalid_credential", credential, err)
		}
	})
}

// A RotateCredential id that cannot be an account id is not_found without
// touching the store.
func TestRotateMalformedID(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, id := range []string{"", "acc_", "acc_anon_0123456789abcdef0123456789", "x"} {
		_, err := srv.RotateCredential(t.Context(), &accountv1.RotateCredentialRequest{AccountId: id})
		if we, ok := wireerr.As(err); !ok || we.Code != wireerr.NotFound {
			t.Errorf("RotateCredential(%q) err = %v, want not_found", id, err)
		}
	}
}
