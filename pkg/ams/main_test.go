package ams_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/amsrouter/ams/pkg/ams"
	"github.com/amsrouter/ams/pkg/ams/amstest"
	"github.com/amsrouter/ams/pkg/wire"
)

// baseURL and grpcAddr address the system TestMain starts, shared by the
// examples and by the tests that need no system of their own.
var baseURL, grpcAddr string

func TestMain(m *testing.M) {
	os.Exit(amstest.Main(&sharedSystem{m}))
}

// sharedSystem runs the tests with one `ams dev` around them.
type sharedSystem struct{ m *testing.M }

func (s *sharedSystem) Run() int {
	dir, err := os.MkdirTemp("", "ams-sdk-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sys, err := amstest.StartProcess(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	baseURL, grpcAddr = sys.URL, sys.GRPCAddr
	code := s.m.Run()
	if err := sys.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop ams dev:", err)
		return 1
	}
	return code
}

// account creates an account on the system at base and returns a client
// for it.
func account(t testing.TB, base, prefix string) *ams.Client {
	t.Helper()
	c := &ams.Client{BaseURL: base}
	a, err := c.CreateAccount(t.Context(), amstest.Namespace(prefix))
	if err != nil {
		t.Fatal(err)
	}
	c.Namespace, c.Credential = a.Namespace, a.Credential
	return c
}

// conversation mints a conversation and returns its magic link.
func conversation(t testing.TB, c *ams.Client) string {
	t.Helper()
	conv, err := c.CreateConversation(t.Context(), ams.ConversationOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return conv.MagicLink
}

// join joins and closes the session at cleanup.
func join(t testing.TB, c *ams.Client, link string, opts ...ams.JoinOption) *ams.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := c.Join(ctx, link, opts...)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitFor reads events until one satisfies ok, failing on timeout or
// when the session ends first. It returns the event.
func waitFor[T wire.Event](t testing.TB, s *ams.Session, ok func(T) bool) T {
	t.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, open := <-s.Events():
			if !open {
				var zero T
				t.Fatalf("events ended while waiting for %T (err %v)", zero, s.Err())
			}
			if e, is := ev.(T); is && (ok == nil || ok(e)) {
				return e
			}
			if c, is := ev.(ams.Closed); is {
				var zero T
				t.Fatalf("session closed (%d %s: %v) while waiting for %T", c.Code, c.Reason, c.Err, zero)
			}
		case <-timer.C:
			var zero T
			t.Fatalf("no %T within 30 s", zero)
		}
	}
}
