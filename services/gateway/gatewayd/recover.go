package gatewayd

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
)

// natsStartWait bounds how long a starting gateway waits for NATS.
const natsStartWait = 30 * time.Second

// waitConnected waits until nc is connected, logging every few seconds,
// for at most within.
func waitConnected(ctx context.Context, nc *nats.Conn, within time.Duration, log *slog.Logger) error {
	ch := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(ch)
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for !nc.IsConnected() {
		select {
		case st := <-ch:
			if st == nats.CLOSED {
				return fmt.Errorf("connect nats: connection closed")
			}
		case <-tick.C:
			log.Info("waiting for NATS")
		case <-deadline.C:
			return fmt.Errorf("connect nats: no connection within %s", within)
		case <-ctx.Done():
			return fmt.Errorf("connect nats: %w", ctx.Err())
		}
	}
	return nil
}

// recreateLoop runs after each NATS reconnect: the data plane's streams
// and buckets are re-created, retrying until it succeeds (a NATS server
// that restarted has lost its memory-backed buckets, gateway heartbeats
// and observer counts, without which liveness and observer caps stop
// working; one that lost its store has lost every stream); then the hub
// sends again the events that may have been lost with the old connection,
// which held streams keep until the data plane is checked (at most
// dataplane.CheckWait), so that a re-created events stream stores each
// stream's events in order; then the hub's presence watch is restarted,
// retrying likewise. It returns when ctx ends.
func (g *Gateway) recreateLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.reconnected:
		}
		var lost bool
		recreate := func(ctx context.Context) (err error) {
			lost, err = g.plane.Recreate(ctx)
			return err
		}
		// Should the data plane not be checked within CheckWait, held
		// streams publish again without it, and the quiet ones need this
		// resend to send what they kept.
		late := time.AfterFunc(dataplane.CheckWait, g.hub.Reconnected)
		ok := g.retry(ctx, "data plane checked", "data plane not recreated", recreate)
		late.Stop()
		if !ok {
			return
		}
		if lost {
			g.metrics.NATSStoreLost.WithLabelValues("events").Inc()
			g.log.Warn("NATS lost its events stream: the events published before are gone")
		}
		g.hub.Reconnected()
		if !g.retry(ctx, "presence watch restarted", "presence watch not restarted", g.hub.RestartPresence) {
			return
		}
	}
}

// retry calls fn, each call bounded by 5 s, until it succeeds, waiting
// 250 ms after the first failure and doubling up to 5 s, and logs done or
// failed (with " after a NATS reconnect"). It reports false when ctx ended
// first.
func (g *Gateway) retry(ctx context.Context, done, failed string, fn func(context.Context) error) bool {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(rctx)
		cancel()
		if err == nil {
			g.log.Info(done + " after a NATS reconnect")
			return true
		}
		g.log.Warn(failed+" after a NATS reconnect", "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}
