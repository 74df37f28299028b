// Package pgtest gives tests a real, empty, migrated Postgres database.
//
// The server is, in order: the URL in AMS_TEST_DATABASE_URL; the local
// server at 127.0.0.1:5432 (trust auth, database postgres); else a throwaway
// cluster this package creates with initdb and pg_ctl in a temporary
// directory on a free port. If none can be had the test fails: a missing
// database is never a reason to skip.
//
// Each test gets its own database, cloned from a template that was migrated
// once per test binary. Call Main from TestMain so templates and a
// throwaway cluster are removed at the end.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	mu        sync.Mutex
	serverURL string
	serverErr error
	started   bool
	stopFn    func()
	templates = map[string]string{} // key -> template database name
	created   []string
)

// Main runs the tests and removes what the package created.
func Main(m *testing.M) int {
	code := m.Run()
	cleanup()
	return code
}

func cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if serverURL != "" && len(created) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, serverURL); err == nil {
			for _, db := range created {
				_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
			}
			conn.Close(ctx)
		}
	}
	created = nil
	if stopFn != nil {
		stopFn()
		stopFn = nil
	}
}

// ServerURL returns the URL of a reachable Postgres server's maintenance
// database, starting a throwaway cluster when needed. It fails the test if
// no server can be had.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !started {
		started = true
		serverURL, serverErr = findServer()
	}
	if serverErr != nil {
		tb.Fatalf("pgtest: no Postgres server: %v", serverErr)
	}
	return serverURL
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

func findServer() (string, error) {
	if u := os.Getenv("AMS_TEST_DATABASE_URL"); u != "" {
		if err := ping(u); err != nil {
			return "", fmt.Errorf("AMS_TEST_DATABASE_URL: %w", err)
		}
		return u, nil
	}
	local := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if err := ping(local); err == nil {
		return local, nil
	}
	return startCluster()
}

// startCluster runs initdb and pg_ctl in a temporary directory. Postgres
// refuses to run as root, so as root the cluster runs as the postgres user.
func startCluster() (string, error) {
	bindir, err := findBinDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "amspg-")
	if err != nil {
		return "", err
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	var wrap []string
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return "", errors.New("running as root and no postgres user to run a throwaway cluster")
		}
		if err := exec.Command("chown", "-R", "postgres", dir).Run(); err != nil {
			return "", fmt.Errorf("chown cluster dir: %w", err)
		}
		wrap = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(args ...string) error {
		full := append(append([]string{}, wrap...), args...)
		out, err := exec.Command(full[0], full[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(args[0]), err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run(filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"); err != nil {
		return "", err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if err := run(filepath.Join(bindir, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start"); err != nil {
		return "", err
	}
	stopFn = func() {
		_ = run(filepath.Join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop")
		_ = os.RemoveAll(dir)
	}
	u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := ping(u); err != nil {
		return "", err
	}
	return u, nil
}

func findBinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(matches)
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no reachable server and no initdb to start one (install postgresql or set AMS_TEST_DATABASE_URL)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func withDatabase(u, db string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.Path = "/" + db
	return p.String()
}

// NewDatabase returns the URL of a new database holding the schema that
// migrate creates. key names the schema: databases of one key are cloned
// from one template, migrated once per test binary. The database is dropped
// when the test ends.
func NewDatabase(tb testing.TB, key string, migrate func(ctx context.Context, url string) error) string {
	tb.Helper()
	base := ServerURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	mu.Lock()
	tmpl, ok := templates[key]
	if !ok {
		tmpl = randomName("amstpl_" + strconv.Itoa(os.Getpid()) + "_")
		if err := createDB(ctx, base, tmpl, ""); err != nil {
			mu.Unlock()
			tb.Fatalf("pgtest: create template: %v", err)
		}
		created = append(created, tmpl)
		if err := migrate(ctx, withDatabase(base, tmpl)); err != nil {
			mu.Unlock()
			tb.Fatalf("pgtest: migrate template: %v", err)
		}
		templates[key] = tmpl
	}
	mu.Unlock()

	name := randomName("amstest_")
	// CREATE DATABASE ... TEMPLATE fails while another session is connected
	// to the template; migrations close their pool, so retry briefly.
	var err error
	for i := 0; i < 50; i++ {
		if err = createDB(ctx, base, name, tmpl); err == nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return withDatabase(base, name)
}

func createDB(ctx context.Context, base, name, template string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		q += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	_, err = conn.Exec(ctx, q)
	return err
}
