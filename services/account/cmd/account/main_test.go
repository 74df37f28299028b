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

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	"github.com/amsrouter/ams/services/internal/grpcx"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpListsEveryFlag(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, env(nil), &out); err != nil {
		t.Fatalf("run -h: %v", err)
	}
	for _, want := range []string{
		"-grpc-addr", "-admin-addr", "-database-url", "-credential-pepper-file", "-log-format",
		"-log-level", "-shutdown-grace", "AMS_ACCOUNT_GRPC_ADDR", "AMS_ACCOUNT_CREDENTIAL_PEPPER",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "account.db")
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"missing pepper", []string{"-database-url", db}, nil, "credential-pepper is required"},
		{"short pepper", []string{"-database-url", db}, map[string]string{"AMS_ACCOUNT_CREDENTIAL_PEPPER": "short"}, "at least 16"},
		{"missing database", nil, map[string]string{"AMS_ACCOUNT_CREDENTIAL_PEPPER": "0123456789abcdef"}, "database-url is required"},
		{"bad log format", []string{"-database-url", db, "-log-format", "xml"}, map[string]string{"AMS_ACCOUNT_CREDENTIAL_PEPPER": "0123456789abcdef"}, "log format"},
		{"stray argument", []string{"serve"}, nil, "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(t.Context(), c.args, env(c.env), &out)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("run = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the service's logger and the test.
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

// logLine returns the first JSON log record with the message.
func logLine(s, msg string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

func TestRunServesUntilCanceled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const pepper = "pepper-from-a-file-0123456789"
	pepperFile := filepath.Join(dir, "pepper")
	if err := os.WriteFile(pepperFile, []byte(pepper+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-grpc-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-credential-pepper-file", pepperFile, "-log-level", "debug",
	}
	vars := map[string]string{"AMS_ACCOUNT_DATABASE_URL": "sqlite:" + filepath.Join(dir, "account.db")}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, env(vars), &logs) }()

	var serving map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for serving == nil {
		select {
		case err := <-done:
			t.Fatalf("run returned before serving: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no serving log line within 20s:\n%s", logs.String())
		}
		serving = logLine(logs.String(), "account service serving")
		if serving == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	start := logLine(logs.String(), "account service starting")
	if start == nil || start["credential_pepper"] != "[redacted]" || start["database_url"] == nil {
		t.Errorf("start-up log = %v, want the resolved config with the pepper redacted", start)
	}

	addr, _ := serving["grpc_addr"].(string)
	conn, err := grpcx.Dial(addr)
	if err != nil {
		t.Fatalf("dial %q: %v", addr, err)
	}
	defer conn.Close()
	client := accountv1.NewAccountServiceClient(conn)
	res, err := client.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: "wired"})
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	if _, err := client.Authenticate(ctx, &accountv1.AuthenticateRequest{Credential: res.GetCredential()}); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of cancel")
	}
	if text := logs.String(); strings.Contains(text, pepper) || strings.Contains(text, res.GetCredential()) {
		t.Errorf("logs contain the pepper or a credential:\n%s", text)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:hunter2@db:5432/ams?sslmode=disable": "postgres://u:xxxxx@db:5432/ams?sslmode=disable",
		"postgres://u@db/ams?password=hunter2":             "postgres://u@db/ams?password=xxxxx",
		"sqlite:data/account.db":                           "sqlite:data/account.db",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
