package e2e

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to read the tables

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/linktoken"
)

// C5, 2.2: over a session of every control-plane call, on in-process
// gateways and a gateway process all logging at debug level, no
// credential, pepper, signing key, token, magic link or metadata reaches
// a log; the databases hold no credential, token or key either.
func TestC5SecretsNeverLoggedOrStored(t *testing.T) {
	t.Parallel()
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			logs := &gwtest.LogBuffer{}
			sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Postgres: pg, Log: logs})
			proc := gwtest.StartGatewayProcess(t, sys, "gw-proc")
			bases := []string{sys.URL(0), sys.URL(1), proc.URL}
			secrets := map[string]string{
				"credential pepper": string(sys.CredentialPepper),
				"derivation pepper": string(sys.DerivationPepper),
			}
			seed := sys.SigningKeys[0].Seed()
			for enc, s := range map[string]string{
				"hex": hex.EncodeToString(seed), "base64": base64.StdEncoding.EncodeToString(seed),
				"base64url": base64.RawURLEncoding.EncodeToString(seed),
			} {
				secrets["signing key seed ("+enc+")"] = s
			}
			logOnly := map[string]string{} // stored legitimately, never logged

			// A session touching every route, on every gateway.
			_, cred := sys.CreateAccount(t, 0, "secretive")
			secrets["credential"] = cred
			strangerCred := "ams_sk_" + strings.Repeat("F", 43)
			secrets["presented unknown credential"] = strangerCred
			for i, b := range bases {
				alias := fmt.Sprintf("room-%d", i)
				r := call(t, post, b+"/v1/secretive/conversations", bearer(cred),
					`{"alias":"`+alias+`","metadata":{"m":"METADATA-MARKER-`+alias+`"},"stream_metadata":{"s":"STREAM-METADATA-MARKER"},"link_expires_in":600}`)
				if r.Status != http.StatusCreated {
					t.Fatalf("mint on %s: %d %s", b, r.Status, r.Body)
				}
				m := r.JSON(t)
				tok := gwtest.LinkToken(t, m)
				secrets["token "+alias] = tok
				secrets["magic link "+alias] = str(t, m, "magic_link")
				secrets["token signature "+alias] = tok[strings.LastIndexByte(tok, '.')+1:]
				logOnly["metadata "+alias] = "METADATA-MARKER-" + alias
				logOnly["stream metadata"] = "STREAM-METADATA-MARKER"

				call(t, get, b+"/v1/secretive/conversations/"+alias+"?t="+tok, nil, "")
				call(t, get, b+"/v1/secretive/conversations/"+alias, bearer(cred), "")
				call(t, get, b+"/v1/secretive/conversations/"+alias, bearer(strangerCred), "")
				call(t, post, b+"/v1/secretive/conversations", bearer(strangerCred), `{}`)
				call(t, get, b+"/v1/secretive/conversations/"+alias+"?t="+tok+"x", nil, "")
				expired, err := linktoken.Mint(sys.SigningKey(), "http://x", str(t, m, "conversation_id"), "secretive", alias,
					str(t, m, "link_id"), time.Now().Add(-time.Hour), time.Now().Add(-time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				secrets["expired token "+alias] = expired
				call(t, get, b+"/v1/secretive/conversations/"+alias+"?t="+expired, nil, "")
				l := call(t, post, b+"/v1/secretive/conversations/"+alias+"/links", bearer(cred), `{"label":"lbl","expires_in":60}`).JSON(t)
				secrets["link token "+alias] = gwtest.LinkToken(t, l)
				call(t, get, b+"/v1/secretive/conversations/"+alias+"/links", bearer(cred), "")
				call(t, del, b+"/v1/secretive/conversations/"+alias+"/links/"+str(t, l, "link_id"), bearer(cred), "")
				call(t, get, b+"/v1/secretive/conversations/"+alias+"?t="+gwtest.LinkToken(t, l), nil, "")
				call(t, get, b+"/.well-known/jwks.json", nil, "")
				call(t, get, b+"/readyz", nil, "")
				call(t, get, b+"/metrics", nil, "")
			}
			r := call(t, post, bases[2]+"/v1/secretive/credentials/rotate", bearer(cred), "")
			fresh := str(t, r.JSON(t), "credential")
			secrets["rotated credential"] = fresh
			for _, b := range bases {
				eventually(t, spreadBound, "old credential refused", func() bool {
					return call(t, post, b+"/v1/secretive/conversations", bearer(cred), ``).Status == http.StatusUnauthorized
				})
				sys.Mint(t, 0, fresh, "secretive", "")
			}
			for what, s := range secrets {
				if strings.HasPrefix(s, "ams_sk_") {
					secrets[what+" (body)"] = strings.TrimPrefix(s, "ams_sk_")
				}
			}

			// Stop everything so that every log line is written.
			if err := proc.Stop(); err != nil {
				t.Errorf("stop gateway process: %v", err)
			}
			for _, g := range sys.Gateways {
				g.Stop()
			}
			sys.StopAccount()
			sys.StopLink()

			text := logs.String()
			for _, want := range []string{`"account created"`, `"credential rotated"`, `"gateway stopped"`, `"gw-proc"`} {
				if !strings.Contains(text, want) {
					t.Errorf("logs lack %s; the check would not see a leak", want)
				}
			}
			for what, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("logs contain the %s", what)
				}
			}
			for what, s := range logOnly {
				if strings.Contains(text, s) {
					t.Errorf("logs contain the %s", what)
				}
			}

			// The tables hold neither secrets nor tokens.
			rows := dumpTables(t, sys.AccountDatabaseURL)
			rows = append(rows, dumpTables(t, sys.LinkDatabaseURL)...)
			if len(rows) < 5 {
				t.Fatalf("read only %d rows: %v", len(rows), rows)
			}
			for _, row := range rows {
				for what, s := range secrets {
					if strings.Contains(row, s) {
						t.Errorf("a stored row holds the %s: %.200s", what, row)
					}
				}
			}
		})
	}
}

// dumpTables returns every row of every table of the database at dbURL
// (sqlite:<path> or postgres://…) as text.
func dumpTables(t *testing.T, dbURL string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rows []string
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		names := query(t, ctx, db, `SELECT name FROM sqlite_master WHERE type = 'table'`)
		for _, n := range names {
			rows = append(rows, query(t, ctx, db, `SELECT * FROM "`+n+`"`)...)
		}
		return rows
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tr, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(tr, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		r, err := conn.Query(ctx, `SELECT x::text FROM `+pgx.Identifier{n}.Sanitize()+` AS x`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, texts...)
	}
	return rows
}

// query runs q and returns each row's columns joined as text.
func query(t *testing.T, ctx context.Context, db *sql.DB, q string) []string {
	t.Helper()
	rs, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
