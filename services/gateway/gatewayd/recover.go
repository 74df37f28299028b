package gatewayd

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
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

// recreateLoop runs after each NATS reconnect: the hub sends again the
// events that may have been lost with the old connection, and the data
// plane's streams and buckets are re-created, retrying until it succeeds:
// a NATS server that restarted has lost its memory-backed buckets (gateway
// heartbeats, observer counts), without which liveness and observer caps
// stop working. It returns when ctx ends.
func (g *Gateway) recreateLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.reconnected:
		}
		g.hub.Reconnected()
		for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := g.plane.Recreate(rctx)
			cancel()
			if err == nil {
				g.log.Info("data plane checked after a NATS reconnect")
				break
			}
			g.log.Warn("data plane not recreated after a NATS reconnect", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}
