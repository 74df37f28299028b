package presence

import (
	"log/slog"
	"testing"
	"time"
)

// A gateway's silence is measured up to this gateway's own newest
// heartbeat seen in its watch: when that lags (an overloaded NATS, a
// backlogged watch), others are not declared gone for the lag; when it
// is current, a silent gateway is gone after deadAfter as before.
func TestSilenceIsMeasuredOnOwnHeartbeats(t *testing.T) {
	const dead = 10 * time.Second
	now := time.Now()
	var gone []string
	l := NewLiveness(nil, "gw-a", 2*time.Second, dead, slog.New(slog.DiscardHandler))
	l.OnGone(func(gw string, _ time.Time) { gone = append(gone, gw) })

	// Before its own first heartbeat comes back: the wall clock.
	l.seen["gw-b"] = now.Add(-11 * time.Second)
	if l.Alive("gw-b") {
		t.Fatal("gw-b silent for 11 s is alive")
	}

	// Its own heartbeats lag as much as gw-b's: gw-b is not gone.
	l.selfSeen = now.Add(-10 * time.Second)
	l.seen["gw-b"] = now.Add(-12 * time.Second)
	l.sweep()
	if len(gone) != 0 || !l.Alive("gw-b") {
		t.Fatalf("gone %v, alive %v: gw-b declared gone for this gateway's own lag", gone, l.Alive("gw-b"))
	}
	if _, isGone := l.GoneSince("gw-b"); isGone {
		t.Fatal("GoneSince says gone")
	}

	// Its own heartbeats are current, gw-b's stopped 11 s before: gone.
	l.selfSeen = now
	l.seen["gw-b"] = now.Add(-11 * time.Second)
	l.sweep()
	if len(gone) != 1 || gone[0] != "gw-b" || l.Alive("gw-b") {
		t.Fatalf("gone %v, alive %v: a silent gateway was not declared gone", gone, l.Alive("gw-b"))
	}
	if since, isGone := l.GoneSince("gw-b"); !isGone || !since.Equal(now.Add(-11*time.Second)) {
		t.Fatalf("GoneSince = %v, %v", since, isGone)
	}
}
