package faulte2e

import (
	"context"
	"testing"
	"time"
)

// A stream that joins after NATS restarted reaches a reader on the other
// gateway, in a conversation that gateway served before the restart: the
// gateway's presence watch is back as soon as NATS is, not after its
// consumer's missed heartbeats.
func TestStreamJoinsAfterNATSRestart(t *testing.T) {
	t.Parallel()
	sys, credW, credR, link0, link1 := twoGateways(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	frames := joinReader(ctx, t, link1, credR, "r")
	sendToken(ctx, t, connectWriter(ctx, t, link0, credW, "w1"), "before")
	waitFrame(t, frames, "token before", tokenFrame("before"))

	sys.RestartNATS(t)
	start := time.Now()
	sendToken(ctx, t, connectWriter(ctx, t, link0, credW, "w2"), "after")
	// nats.go alone recreates a lost consumer after two missed heartbeats
	// of 5 s: 20 s here before the gateway restarted its watch itself.
	waitFrame(t, frames, "token after", tokenFrame("after"))
	t.Logf("a stream that joined after the restart reached the reader %s after NATS was back", time.Since(start).Round(time.Millisecond))
	// The server kept its store: no gateway took the restart for a loss
	// (which would have it apply every record again from the first).
	checkStoreLost(t, sys, 0, 0)
	checkStoreLost(t, sys, 1, 0)
}
