package faulte2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
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

	r, err := dial(ctx, link1, credR, "r", "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.CloseNow() }()
	frames := make(chan map[string]any, 256)
	go readInto(ctx, r, frames)
	waitType(t, frames, "joined")
	send := func(name, data string) {
		t.Helper()
		w := &writer{t: t, links: []string{link0}, cred: credW, name: name}
		c, _, err := w.connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"token","data":"`+data+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	waitToken := func(data string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := time.After(within)
		for {
			select {
			case m := <-frames:
				if m["type"] == "token" && strings.Contains(m["data"].(string), data) {
					return time.Since(start)
				}
			case <-deadline:
				t.Fatalf("token %q not delivered within %s", data, within)
			}
		}
	}
	send("w1", "before")
	waitToken("before", wait)

	sys.RestartNATS(t)
	start := time.Now()
	send("w2", "after")
	// nats.go alone recreates a lost consumer after two missed heartbeats
	// of 5 s: 20 s here before the gateway restarted its watch itself.
	waitToken("after", wait)
	t.Logf("a stream that joined after the restart reached the reader %s after NATS was back", time.Since(start).Round(time.Millisecond))
}
