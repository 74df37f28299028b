package accountd_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	_ "modernc.org/sqlite"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	"github.com/amsrouter/ams/services/account/accountd"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/logging"
	"github.com/amsrouter/ams/services/internal/pgtest"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var testPepper = []byte("test-credential-pepper-0123456789")

// engine gives a fresh database: its URL for the service, and a function
// that runs a query on it directly.
type engine struct {
	name string
	url  func(t *testing.T) string
}

var engines = []engine{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "account.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.NewDatabase(t, "account", accountd.Migrate) }},
}

type running struct {
	svc    *accountd.Service
	client accountv1.AccountServiceClient
	health healthpb.HealthClient
	stop   func() error
}

// start runs a service on 127.0.0.1:0 until stop (or the test's end).
func start(t *testing.T, databaseURL string, log *slog.Logger) *running {
	t.Helper()
	svc, err := accountd.New(t.Context(), accountd.Config{
		GRPCAddr:         "127.0.0.1:0",
		AdminAddr:        "127.0.0.1:0",
		DatabaseURL:      databaseURL,
		CredentialPepper: testPepper,
		ShutdownGrace:    5 * time.Second,
	}, log)
	if err != nil {
		t.Fatalf("accountd.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	conn, err := grpcx.Dial(svc.GRPCAddr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			conn.Close()
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return within 30s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &running{svc: svc, client: accountv1.NewAccountServiceClient(conn), health: healthpb.NewHealthClient(conn), stop: stop}
}

// wantCode asserts that err is a gRPC status with the code and an AMS
// ErrorInfo whose reason is the catalogue entry, and that grpcx maps it
// back to that entry.
func wantCode(t *testing.T, what string, err error, want wireerr.Code) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Errorf("%s: err = %v, want status %s", what, err, want.Name)
		return
	}
	if st.Code() != want.GRPC() {
		t.Errorf("%s: code = %s, want %s", what, st.Code(), want.GRPC())
	}
	var reason string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == grpcx.Domain {
			reason = info.GetReason()
		}
	}
	if reason != want.Name {
		t.Errorf("%s: ErrorInfo reason = %q, want %q", what, reason, want.Name)
	}
	if we, ok := wireerr.As(grpcx.FromStatus(err)); !ok || we.Code != want {
		t.Errorf("%s: grpcx.FromStatus = %v, want %s", what, grpcx.FromStatus(err), want.Name)
	}
}

func TestGRPC(t *testing.T) {
	t.Parallel()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			r := start(t, e.url(t), logging.Discard())
			ctx := t.Context()

			t.Run("C8CreateAndAuthenticate", func(t *testing.T) {
				before := time.Now().Truncate(time.Millisecond)
				res, err := r.client.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: "alice"})
				if err != nil {
					t.Fatalf("CreateAccount: %v", err)
				}
				acc := res.GetAccount()
				if !ids.AccountIDRe.MatchString(acc.GetAccountId()) {
					t.Errorf("account_id %q does not match %s (C1)", acc.GetAccountId(), ids.AccountIDRe)
				}
				if !ids.CredentialRe.MatchString(res.GetCredential()) {
					t.Errorf("credential does not match %s (C1)", ids.CredentialRe)
				}
				if acc.GetNamespace() != "alice" {
					t.Errorf("namespace = %q, want alice", acc.GetNamespace())
				}
				created := acc.GetCreatedAt().AsTime()
				if created.Before(before) || created.After(time.Now()) || created.Nanosecond()%int(time.Millisecond) != 0 {
					t.Errorf("created_at = %v, want a millisecond instant of this test", created)
				}
				if acc.GetRotatedAt() != nil {
					t.Errorf("rotated_at = %v before any rotation, want unset", acc.GetRotatedAt())
				}
				auth, err := r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: res.GetCredential()})
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if diff := cmp.Diff(acc.String(), auth.GetAccount().String()); diff != "" {
					t.Errorf("authenticated account (-created +authenticated):\n%s", diff)
				}
			})

			t.Run("C9DuplicateNamespace", func(t *testing.T) {
				first, err := r.client.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: "bob"})
				if err != nil {
					t.Fatalf("CreateAccount: %v", err)
				}
				_, err = r.client.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: "bob"})
				wantCode(t, "second CreateAccount(bob)", err, wireerr.NamespaceTaken)
				if st := status.Code(err); st != codes.AlreadyExists {
					t.Errorf("code = %s, want AlreadyExists", st)
				}
				auth, err := r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: first.GetCredential()})
				if err != nil || auth.GetAccount().GetAccountId() != first.GetAccount().GetAccountId() {
					t.Errorf("first account after conflict: %v, %v", auth, err)
				}
			})

			t.Run("C8InvalidNamespace", func(t *testing.T) {
				for _, ns := range []string{"", "-a", "A", strings.Repeat("a", 64), "a_b", "a.b", "a b", "é"} {
					_, err := r.client.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: ns})
					wantCode(t, "CreateAccount("+ns+")", err, wireerr.InvalidNamespace)
				}
				for _, ns := range []string{strings.Repeat("z", 63), "0", "a-"} {
					if _, err := r.client.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: ns}); err != nil {
						t.Errorf("CreateAccount(%q): %v", ns, err)
					}
				}
			})

			t.Run("C24InvalidCredential", func(t *testing.T) {
				for _, c := range []string{
					"",
					"nope",
					ids.NewCredential(), // well formed, unknown
					"ams_sk_" + strings.Repeat("A", 42),
					"Bearer " + ids.NewCredential(),
				} {
					_, err := r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: c})
					wantCode(t, "Authenticate", err, wireerr.InvalidCredential)
				}
			})

			t.Run("C17Rotation", func(t *testing.T) {
				created, err := r.client.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: "carol"})
				if err != nil {
					t.Fatalf("CreateAccount: %v", err)
				}
				id := created.GetAccount().GetAccountId()
				rot, err := r.client.RotateCredential(ctx, &accountv1.RotateCredentialRequest{AccountId: id})
				if err != nil {
					t.Fatalf("RotateCredential: %v", err)
				}
				if rot.GetCredential() == created.GetCredential() || !ids.CredentialRe.MatchString(rot.GetCredential()) {
					t.Errorf("rotation returned the old or a malformed credential")
				}
				if rot.GetAccount().GetRotatedAt() == nil {
					t.Errorf("rotated_at unset after rotation")
				}
				if got := rot.GetAccount().GetAccountId(); got != id {
					t.Errorf("rotated account id = %q, want %q", got, id)
				}
				auth, err := r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: rot.GetCredential()})
				if err != nil {
					t.Fatalf("Authenticate(new): %v", err)
				}
				if diff := cmp.Diff(rot.GetAccount().String(), auth.GetAccount().String()); diff != "" {
					t.Errorf("account by new credential (-rotated +authenticated):\n%s", diff)
				}
				_, err = r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: created.GetCredential()})
				wantCode(t, "Authenticate(old)", err, wireerr.InvalidCredential)
			})

			t.Run("RotateUnknownAccount", func(t *testing.T) {
				for _, id := range []string{ids.NewAccountID(time.Now()), "", "acc_nope"} {
					_, err := r.client.RotateCredential(ctx, &accountv1.RotateCredentialRequest{AccountId: id})
					wantCode(t, "RotateCredential("+id+")", err, wireerr.NotFound)
				}
			})

			t.Run("Health", func(t *testing.T) {
				for _, svc := range []string{"", "ams.account.v1.AccountService"} {
					res, err := r.health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
					if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
						t.Errorf("health %q: %v, %v; want SERVING", svc, res, err)
					}
				}
				base := "http://" + r.svc.AdminAddr()
				if code, body := get(t, base+"/healthz"); code != 200 || body != `{"ok":true}` {
					t.Errorf("/healthz = %d %s", code, body)
				}
				if code, body := get(t, base+"/readyz"); code != 200 || body != `{"ok":true,"checks":{"database":"ok"}}` {
					t.Errorf("/readyz = %d %s", code, body)
				}
				if code, _ := get(t, base+"/nope"); code != 404 {
					t.Errorf("/nope = %d, want 404", code)
				}
			})
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return res.StatusCode, strings.TrimSpace(string(b))
}

// With its database gone the service is alive but not ready (C18 shape).
func TestReadyzReportsDatabase(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, "account", accountd.Migrate)
	r := start(t, url, logging.Discard())
	base := "http://" + r.svc.AdminAddr()
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d before the database went away, want 200", code)
	}
	conn, err := pgx.Connect(t.Context(), pgtest.ServerURL(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	db, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "DROP DATABASE "+pgx.Identifier{db.Database}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatalf("drop database: %v", err)
	}
	code, body := get(t, base+"/readyz")
	var got struct {
		OK     bool              `json:"ok"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if code != 503 || got.OK || got.Checks["database"] == "ok" || got.Checks["database"] == "" {
		t.Errorf("/readyz without database = %d %s, want 503 with a database error", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz without database = %d, want 200", code)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// C5: secrets never reach logs; the database holds only hashes.
func TestC5SecretsNeverLoggedOrStored(t *testing.T) {
	t.Parallel()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			url := e.url(t)
			var logs syncBuffer
			log, err := logging.New(&logs, "json", "debug")
			if err != nil {
				t.Fatal(err)
			}
			r := start(t, url, log)
			ctx := t.Context()

			created, err := r.client.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: "secretive"})
			if err != nil {
				t.Fatalf("CreateAccount: %v", err)
			}
			old := created.GetCredential()
			if _, err := r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: old}); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			rot, err := r.client.RotateCredential(ctx, &accountv1.RotateCredentialRequest{AccountId: created.GetAccount().GetAccountId()})
			if err != nil {
				t.Fatalf("RotateCredential: %v", err)
			}
			cur := rot.GetCredential()
			if _, err := r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: cur}); err != nil {
				t.Fatalf("Authenticate(new): %v", err)
			}
			if _, err := r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: old}); err == nil {
				t.Fatalf("old credential still authenticates")
			}
			if _, err := r.client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: old + "x"}); err == nil {
				t.Fatalf("malformed credential authenticates")
			}
			if err := r.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}

			text := logs.String()
			for _, want := range []string{"account created", "credential rotated", "authentication refused"} {
				if !strings.Contains(text, want) {
					t.Errorf("logs lack %q; the test would not see a leak:\n%s", want, text)
				}
			}
			secrets := map[string]string{
				"old credential": old, "new credential": cur, "pepper": string(testPepper),
				"old credential body": strings.TrimPrefix(old, "ams_sk_"), "new credential body": strings.TrimPrefix(cur, "ams_sk_"),
			}
			for what, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("logs contain the %s", what)
				}
			}

			rows := readAccounts(t, url)
			if len(rows) != 1 {
				t.Fatalf("accounts rows = %d, want 1", len(rows))
			}
			row := rows[0]
			for col, v := range row {
				for what, s := range secrets {
					if strings.Contains(v, s) {
						t.Errorf("column %s holds the %s", col, what)
					}
				}
			}
			m := hmac.New(sha256.New, testPepper)
			m.Write([]byte(cur))
			if want := hex.EncodeToString(m.Sum(nil)); row["credential_hash"] != want {
				t.Errorf("credential_hash = %q, want HMAC-SHA-256(pepper, credential) = %q", row["credential_hash"], want)
			}
		})
	}
}

// readAccounts reads every column of every accounts row as text, straight
// from the database.
func readAccounts(t *testing.T, url string) []map[string]string {
	t.Helper()
	const q = `SELECT CAST(id AS TEXT), CAST(namespace AS TEXT), CAST(credential_hash AS TEXT),
		CAST(created_at AS TEXT), COALESCE(CAST(rotated_at AS TEXT), '') FROM accounts`
	cols := []string{"id", "namespace", "credential_hash", "created_at", "rotated_at"}
	var out []map[string]string
	add := func(v []string) {
		m := map[string]string{}
		for i, c := range cols {
			m[c] = v[i]
		}
		out = append(out, m)
	}
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		defer db.Close()
		rows, err := db.QueryContext(t.Context(), q)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		defer rows.Close()
		for rows.Next() {
			v := make([]string, len(cols))
			if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4]); err != nil {
				t.Fatalf("scan: %v", err)
			}
			add(v)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("rows: %v", err)
		}
		return out
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		v := make([]string, len(cols))
		if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4]); err != nil {
			t.Fatalf("scan: %v", err)
		}
		add(v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	return out
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	good := accountd.Config{
		GRPCAddr:         "127.0.0.1:0",
		DatabaseURL:      "sqlite:" + filepath.Join(t.TempDir(), "account.db"),
		CredentialPepper: testPepper,
	}
	cases := map[string]func(c *accountd.Config){
		"no pepper":       func(c *accountd.Config) { c.CredentialPepper = nil },
		"short pepper":    func(c *accountd.Config) { c.CredentialPepper = []byte("fifteen-bytes!!") },
		"no database":     func(c *accountd.Config) { c.DatabaseURL = "" },
		"bad scheme":      func(c *accountd.Config) { c.DatabaseURL = "mysql://x" },
		"no grpc address": func(c *accountd.Config) { c.GRPCAddr = "" },
		"negative grace":  func(c *accountd.Config) { c.ShutdownGrace = -time.Second },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := good
			mutate(&c)
			if svc, err := accountd.New(t.Context(), c, logging.Discard()); err == nil {
				svc.Close()
				t.Errorf("New accepted a config with %s", name)
			}
		})
	}
}

// A Service that is never Run releases its port and store on Close. Not
// parallel: the package's other tests' connections take ephemeral ports
// too, and one could take a port freed here before it is bound again.
func TestCloseWithoutRun(t *testing.T) {
	svc, err := accountd.New(t.Context(), accountd.Config{
		GRPCAddr:         "127.0.0.1:0",
		AdminAddr:        "127.0.0.1:0",
		DatabaseURL:      "sqlite:" + filepath.Join(t.TempDir(), "account.db"),
		CredentialPepper: testPepper,
	}, logging.Discard())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addrs := []string{svc.GRPCAddr(), svc.AdminAddr()}
	if err := svc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err == nil {
			l.Close()
			continue
		}
		// Another process's connection may have taken the port as its
		// own end: then nothing listens on it.
		if c, derr := net.DialTimeout("tcp", a, time.Second); derr == nil {
			c.Close()
			t.Errorf("address %s still held after Close: %v", a, err)
		}
	}
	if err := svc.Run(t.Context()); err == nil {
		t.Errorf("Run after Close succeeded")
	}
}
