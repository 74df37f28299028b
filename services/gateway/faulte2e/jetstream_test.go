package faulte2e

import (
	"context"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
)

// JetStream unavailable while core NATS works: the server comes back
// without JetStream, so the gateways cannot re-create the data plane.
// After a reconnect a held stream keeps its events until the data plane
// is checked, but for at most dataplane.CheckWait: live tokens then reach
// the reader on the other gateway, unstored. Once JetStream is back, the
// stream goes on.
func TestTokensFlowWhileJetStreamIsAway(t *testing.T) {
	t.Parallel()
	sys, credW, credR, link0, link1 := twoGateways(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	frames := joinReader(ctx, t, link1, credR, "r")
	w := connectWriter(ctx, t, link0, credW, "w")
	sendToken(ctx, t, w, "before")
	waitFrame(t, frames, "token before", tokenFrame("before"))

	sys.RestartNATSWithoutJetStream(t)
	start := time.Now()
	sendToken(ctx, t, w, "during")
	waitFrame(t, frames, "token during, without JetStream", tokenFrame("during"))
	took := time.Since(start)
	t.Logf("a token written without JetStream reached the reader %s after NATS was back", took.Round(time.Millisecond))
	if took < dataplane.CheckWait/2 {
		// Not a failure of the product, but the wait it tests did not
		// happen: the data plane was checked, which it cannot be.
		t.Errorf("the token came after %s, before any wait for the data plane", took)
	}

	sys.StopNATS()
	sys.StartNATS(t)
	sendToken(ctx, t, w, "after")
	waitFrame(t, frames, "token after, with JetStream back", tokenFrame("after"))
}
