package faulte2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// A gateway SIGKILLed mid-stream while it holds the writer's stream and a
// reader: the writer's connection moves to the surviving gateway (its
// stream resumes there, seq continues), the reader resumes there with its
// cursor. Only the last tokens written on the killed connection may be
// lost (a WebSocket has no acknowledgements); everything the stream holds
// reaches both readers, the one that moved and the one that never did,
// exactly once and in order.
func TestGatewayKilledMidStream(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Hub.DeadAfter = 3 * time.Second
	}})
	doomed := gwtest.StartGatewayProcess(t, sys, "doomed", "AMS_GATEWAY_GATEWAY_DEAD_AFTER=3s")
	_, credW := sys.CreateAccount(t, 0, "writer")
	_, credR := sys.CreateAccount(t, 0, "reader")
	conv := sys.Mint(t, 0, credW, "writer", `{"alias":"room"}`)
	survivor := conv["magic_link"].(string)
	dying := onGateway(survivor, doomed.URL)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// The writer and one reader start on the doomed gateway.
	moving := newFollower(t, []string{dying, survivor}, credR, "moving", "w")
	staying := newFollower(t, []string{survivor}, credR, "staying", "w")
	wg.Go(func() { moving.run(ctx) })
	wg.Go(func() { staying.run(ctx) })
	const n = 300
	w := &writer{t: t, links: []string{dying, survivor}, cred: credW, name: "w"}
	written := make(chan struct{})
	wg.Go(func() { defer close(written); w.run(ctx, n, 5*time.Millisecond) })

	staying.waitFor(t, 100, wait)
	start := time.Now()
	doomed.Kill()
	t.Logf("gateway killed after %d tokens written", w.written())
	select {
	case <-written:
	case <-time.After(recovery):
		t.Fatalf("the writer did not finish within %s", recovery)
	}
	last := fmt.Sprintf("token-%05d", n-1)
	total := staying.waitLast(t, last, recovery)
	moving.waitFor(t, total, recovery)
	t.Logf("readers caught up %s after the kill", time.Since(start).Round(time.Millisecond))
	truth := replay(t, survivor, credR, "w", total)
	w.checkTruth(t, truth, true)
	moving.check(t, truth)
	staying.check(t, truth)
}
