package gatewayd

import (
	"context"
	"time"
)

// recreateLoop re-creates the data plane's streams and buckets after each
// NATS reconnect, retrying until it succeeds: a NATS server that restarted
// has lost its memory-backed buckets (gateway heartbeats, observer counts),
// without which liveness and observer caps stop working. It returns when
// ctx ends.
func (g *Gateway) recreateLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.reconnected:
		}
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
