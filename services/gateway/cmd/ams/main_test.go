package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func noEnv(string) string { return "" }

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		err     error
		out     string // in stdout
		errText string // in stderr
	}{
		{[]string{"-h"}, nil, "Commands:", ""},
		{[]string{"help"}, nil, "migrate", ""},
		{[]string{"dev", "-h"}, nil, "", "-data-dir"},
		{[]string{"migrate", "-h"}, nil, "", "-database-url"},
		{nil, errUsage, "", "Usage: ams <command>"},
		{[]string{"bogus"}, errUsage, "", `unknown command "bogus"`},
	} {
		var stdout, stderr gwtest.LogBuffer
		err := run(t.Context(), tc.args, noEnv, &stdout, &stderr)
		if !errors.Is(err, tc.err) {
			t.Errorf("ams %v: error %v, want %v", tc.args, err, tc.err)
		}
		if !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.errText) {
			t.Errorf("ams %v: stdout %q, stderr %q; want %q and %q", tc.args, stdout.String(), stderr.String(), tc.out, tc.errText)
		}
	}
	for _, name := range []string{"dev", "migrate"} {
		var stderr gwtest.LogBuffer
		_ = run(t.Context(), []string{name, "-h"}, noEnv, &gwtest.LogBuffer{}, &stderr)
		if !strings.Contains(stderr.String(), "[AMS_"+strings.ToUpper(name)+"_") {
			t.Errorf("ams %s -h does not show the environment variables:\n%s", name, stderr.String())
		}
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pgURL := pgtest.NewDatabase(t, "empty", func(context.Context, string) error { return nil })
	for _, service := range []string{"account", "link"} {
		for _, db := range []string{"sqlite:" + filepath.Join(dir, service+".db"), pgURL} {
			for range 2 { // migrating twice is a no-op
				var stdout gwtest.LogBuffer
				if err := run(t.Context(), []string{"migrate", "-service", service, "-database-url", db}, noEnv, &stdout, &gwtest.LogBuffer{}); err != nil {
					t.Fatalf("migrate %s %s: %v", service, db, err)
				}
				if !strings.Contains(stdout.String(), service+" schema is up to date") {
					t.Errorf("stdout = %q", stdout.String())
				}
			}
		}
	}
	env := func(k string) string {
		return map[string]string{"AMS_MIGRATE_SERVICE": "link", "AMS_MIGRATE_DATABASE_URL": "sqlite:" + filepath.Join(dir, "env.db")}[k]
	}
	if err := run(t.Context(), []string{"migrate"}, env, &gwtest.LogBuffer{}, &gwtest.LogBuffer{}); err != nil {
		t.Errorf("migrate from the environment: %v", err)
	}
	for _, args := range [][]string{
		{"migrate", "-database-url", "sqlite:" + filepath.Join(dir, "x.db")},
		{"migrate", "-service", "gateway", "-database-url", "sqlite:" + filepath.Join(dir, "x.db")},
		{"migrate", "-service", "account"},
		{"migrate", "-service", "account", "-database-url", "mysql://nope"},
	} {
		if err := run(t.Context(), args, noEnv, &gwtest.LogBuffer{}, &gwtest.LogBuffer{}); err == nil {
			t.Errorf("ams %v succeeded", args)
		}
	}
}

// devRun is a running `ams dev`.
type devRun struct {
	url            string
	stdout, stderr *gwtest.LogBuffer
	stop           func() error
}

var runningAt = regexp.MustCompile(`AMS is running at (http://\S+)`)

// startDev runs `ams dev` on a random port with the data directory dir
// and waits for its banner.
func startDev(t *testing.T, dir string, extra ...string) *devRun {
	t.Helper()
	d := &devRun{stdout: &gwtest.LogBuffer{}, stderr: &gwtest.LogBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := append([]string{"dev", "-data-dir", dir, "-http-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0", "-log-level", "debug"}, extra...)
	go func() { done <- run(ctx, args, noEnv, d.stdout, d.stderr) }()
	var once sync.Once
	var stopErr error
	d.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("ams dev did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = d.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := runningAt.FindStringSubmatch(d.stdout.String()); m != nil {
			d.url = m[1]
			return d
		}
		select {
		case err := <-done:
			t.Fatalf("ams dev exited: %v\n%s", err, d.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ams dev printed no URL within 30s:\n%s", d.stderr.String())
		}
	}
}

// TestDev runs the whole system in one process: it serves the control
// plane, keeps its secrets in the data directory with mode 0600, logs
// none of them, stops on cancel, and a restart on the same directory
// keeps accounts, credentials and links working.
func TestDev(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	d := startDev(t, dir)
	if r := gwtest.DoResponse(t, http.MethodGet, d.url+"/readyz", nil, ""); r.Status != http.StatusOK {
		t.Fatalf("readyz: %d %s", r.Status, r.Body)
	}
	r := gwtest.DoResponse(t, http.MethodPost, d.url+"/v1/accounts", nil, `{"namespace":"devtest"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create account: %d %s", r.Status, r.Body)
	}
	cred, _ := r.JSON(t)["credential"].(string)
	r = gwtest.DoResponse(t, http.MethodPost, d.url+"/v1/devtest/conversations", gwtest.Bearer(cred), `{"alias":"room"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("mint: %d %s", r.Status, r.Body)
	}
	tok := gwtest.LinkToken(t, r.JSON(t))

	for _, f := range []string{credentialPepperFile, derivationPepperFile, signingKeysFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("data dir: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	for _, f := range []string{accountDBFile, linkDBFile, natsDir} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data dir: %v", err)
		}
	}
	if err := d.stop(); err != nil {
		t.Fatalf("ams dev: %v", err)
	}
	logs := d.stderr.String()
	if !strings.Contains(logs, "ams dev stopped") {
		t.Errorf("no clean stop in the log:\n%s", logs)
	}

	// Same directory, same secrets: everything still works.
	d2 := startDev(t, dir)
	if r := gwtest.DoResponse(t, http.MethodGet, d2.url+"/v1/devtest/conversations/room?t="+tok, nil, ""); r.Status != http.StatusOK {
		t.Errorf("inspect after restart: %d %s", r.Status, r.Body)
	}
	if r := gwtest.DoResponse(t, http.MethodGet, d2.url+"/v1/devtest/conversations/room", gwtest.Bearer(cred), ""); r.Status != http.StatusOK {
		t.Errorf("owner inspect after restart: %d %s", r.Status, r.Body)
	}
	if err := d2.stop(); err != nil {
		t.Fatalf("ams dev: %v", err)
	}

	logs += d2.stderr.String()
	secrets := map[string]string{"credential": cred, "token": tok}
	for _, f := range []string{credentialPepperFile, derivationPepperFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		secrets[f] = string(b)
	}
	for what, s := range secrets {
		if strings.Contains(logs, s) || strings.Contains(d.stdout.String()+d2.stdout.String(), s) {
			t.Errorf("the output holds the %s", what)
		}
	}
}

// TestDevWalkthrough runs the walkthrough `ams dev` prints, as printed,
// in bash against the running system.
func TestDevWalkthrough(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	var script []string
	for _, line := range strings.Split(d.stdout.String(), "\n") {
		if s := strings.TrimSpace(line); strings.HasPrefix(line, "  ") && s != "" && !strings.HasPrefix(s, "#") {
			script = append(script, s)
		}
	}
	if len(script) < 5 {
		t.Fatalf("walkthrough has %d lines:\n%s", len(script), d.stdout.String())
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\{"account_id":"acc_[0-9A-Z]{20}","namespace":"demo-[0-9]+-[0-9]+","credential":"ams_sk_`),
		regexp.MustCompile(`(?m)^\{"conversation_id":"conv_[0-9A-Z]{20}","alias":"hello","magic_link":"http://`),
		regexp.MustCompile(`(?m)^(\{"conversation_id":"conv_[0-9A-Z]{20}","namespace":"demo-[0-9]+-[0-9]+","alias":"hello","metadata":\{"topic":"demo"\}.*\n){2}`),
		regexp.MustCompile(`(?m)^\{"links":\[\{"link_id":"lnk_`),
	} {
		if !want.Match(out) {
			t.Errorf("walkthrough output lacks %s:\n%s", want, out)
		}
	}
}
