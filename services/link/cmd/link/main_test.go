package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/link/internal/keyset"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestHelpListsEveryFlag(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, env(nil), &out, &errb); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-grpc-addr", "-admin-addr", "-database-url", "-signing-keys-file", "AMS_LINK_SIGNING_KEYS",
		"-log-format", "-log-level", "-shutdown-grace", "-generate-key", "AMS_LINK_DATABASE_URL", ":7002", ":7102"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"-generate-key"}, env(nil), &out, &errb); err != nil {
		t.Fatal(err)
	}
	keys, err := keyset.Parse(out.Bytes())
	if err != nil || len(keys) != 1 {
		t.Fatalf("output is not one PEM key: %v", err)
	}
	var again bytes.Buffer
	_ = run(t.Context(), []string{"-generate-key"}, env(nil), &again, &errb)
	if again.String() == out.String() {
		t.Error("two runs printed the same key")
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	var key bytes.Buffer
	if err := run(t.Context(), []string{"-generate-key"}, env(nil), &key, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no database", nil, map[string]string{"AMS_LINK_SIGNING_KEYS": key.String()}, "database-url is required"},
		{"no keys", []string{"-database-url", "sqlite:x.db"}, nil, "signing-keys is required"},
		{"bad keys", []string{"-database-url", "sqlite:x.db"}, map[string]string{"AMS_LINK_SIGNING_KEYS": "junk"}, "signing keys"},
		{"bad log level", []string{"-database-url", "sqlite:x.db", "-log-level", "loud"}, map[string]string{"AMS_LINK_SIGNING_KEYS": key.String()}, "log level"},
		{"bad env duration", nil, map[string]string{"AMS_LINK_SHUTDOWN_GRACE": "soon"}, "AMS_LINK_SHUTDOWN_GRACE"},
		{"stray argument", []string{"serve"}, nil, "unexpected argument"},
	} {
		err := run(t.Context(), tc.args, env(tc.env), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestRedactsDatabasePassword(t *testing.T) {
	t.Parallel()
	var key bytes.Buffer
	if err := run(t.Context(), []string{"-generate-key"}, env(nil), &key, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var errb lockedBuffer
	err := run(t.Context(), []string{"-grpc-addr", "127.0.0.1:0", "-admin-addr", ""},
		env(map[string]string{
			"AMS_LINK_SIGNING_KEYS": key.String(),
			// Port 1: nothing listens, the connection is refused at once.
			"AMS_LINK_DATABASE_URL": "postgres://ams:hunter2@127.0.0.1:1/ams?sslmode=disable&connect_timeout=2",
		}), &bytes.Buffer{}, &errb)
	if err == nil {
		t.Fatal("run succeeded without a database")
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(errb.String(), "hunter2") {
		t.Errorf("password leaked: err %v, log %s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "database_url") {
		t.Errorf("config log lacks database_url: %s", errb.String())
	}
}

func TestRunServesAndStops(t *testing.T) {
	t.Parallel()
	var key bytes.Buffer
	if err := run(t.Context(), []string{"-generate-key"}, env(nil), &key, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(keyFile, key.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-grpc-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-signing-keys-file", keyFile},
			env(map[string]string{"AMS_LINK_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "link.db"), "AMS_LINK_LOG_LEVEL": "debug"}),
			&bytes.Buffer{}, &errb)
	}()

	// Wait for the ready line and read the bound address from it.
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, errb.String())
		case <-time.After(10 * time.Millisecond):
		}
		sc := bufio.NewScanner(strings.NewReader(errb.String()))
		for sc.Scan() {
			var line struct {
				Msg      string `json:"msg"`
				GRPCAddr string `json:"grpc_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "link service ready" {
				addr = line.GRPCAddr
			}
		}
	}
	if addr == "" {
		t.Fatalf("no ready line:\n%s", errb.String())
	}
	conn, err := grpcx.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: "ams.link.v1.LinkService"})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", r.GetStatus(), err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
	out := errb.String()
	if !strings.Contains(out, `"signing_keys_file":"`+keyFile+`"`) {
		t.Errorf("config log lacks the key file path:\n%s", out)
	}
	for _, line := range strings.Split(key.String(), "\n") {
		if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(out, line) {
			t.Errorf("log contains key material:\n%s", out)
		}
	}
}
