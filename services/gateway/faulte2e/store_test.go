package faulte2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// NATS loses its store: while two gateways serve a conversation, its
// writer on gateway 0 and a reader on gateway 1, the server stops and one
// starts on the same port with an empty JetStream directory. The gateways
// create the data plane again, and presence revisions start again from 1.
// The gateway that holds the stream writes its record again: a reader on a
// gateway that starts to serve the conversation afterwards is shown the
// stream and gets its tokens. The reader's gateway takes the new store's
// revisions as new, though they are lower than those it applied before:
// the reader gets the stream's stream_left when the writer leaves.
func TestNATSLosesItsStore(t *testing.T) {
	t.Parallel()
	sys, credW, credR, link0, link1 := twoGateways(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	frames := joinReader(ctx, t, link1, credR, "r")
	// Streams that join and leave before w give the old store revisions
	// above any that w's records reach in the new one.
	for i := range 5 {
		name := fmt.Sprintf("x%d", i)
		c := connectWriter(ctx, t, link0, credW, name)
		waitFrame(t, frames, "stream_joined of "+name, streamFrame("stream_joined", name))
		_ = c.Close(websocket.StatusNormalClosure, "")
		waitFrame(t, frames, "stream_left of "+name, streamFrame("stream_left", name))
	}
	w := connectWriter(ctx, t, link0, credW, "w")
	sendToken(ctx, t, w, "before")
	waitFrame(t, frames, "token before", tokenFrame("before"))

	sys.RestartNATSWithoutStore(t)
	start := time.Now()
	sendToken(ctx, t, w, "held")
	waitFrame(t, frames, "token held", tokenFrame("held"))
	t.Logf("the held stream's token reached the reader %s after NATS was back", time.Since(start).Round(time.Millisecond))

	// A reader on a gateway new to the conversation is shown w once its
	// record is written again; it redials until then.
	gw2 := sys.AddGateway(t, nil)
	link2 := onGateway(link0, gw2.URL)
	frames2 := make(chan map[string]any, 256)
	deadline := time.Now().Add(wait)
	for {
		r2, err := dial(ctx, link2, credR, "r2", "")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = r2.CloseNow() }()
		_, b, err := r2.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `"stream_name":"w"`) {
			go readInto(ctx, r2, frames2)
			break
		}
		_ = r2.Close(websocket.StatusNormalClosure, "")
		if time.Now().After(deadline) {
			t.Fatalf("a reader joining gateway 2 was not shown stream w within %s of NATS's restart: %s", wait, b)
		}
		time.Sleep(100 * time.Millisecond) // redial pace
	}
	t.Logf("the held stream's record was back %s after NATS was", time.Since(start).Round(time.Millisecond))
	sendToken(ctx, t, w, "late")
	late := waitFrame(t, frames2, "token late on gateway 2", tokenFrame("late"))
	waitFrame(t, frames, "token late on gateway 1", tokenFrame("late"))

	// A resume from the start replays what the new store holds: w's seqs
	// from the first available on, each once and in order, after a
	// replay_gap if seq 1 went with the old store (C53, C55). Seq 1 may
	// have been sent again with the last second's events.
	frames3 := resumeReader(ctx, t, link2, credR, "r3", "*")
	var gap map[string]any
	next := uint64(0)
	for next != uint64(late["seq"].(float64))+1 {
		m := waitFrame(t, frames3, "replayed token late", func(m map[string]any) bool {
			return m["stream_name"] == "w" && (m["type"] == "token" || m["type"] == "replay_gap")
		})
		if m["type"] == "replay_gap" {
			if gap != nil || next != 0 {
				t.Fatalf("replay_gap %v after %v, at seq %d", m, gap, next)
			}
			gap, next = m, uint64(m["first_available_seq"].(float64))
			continue
		}
		seq := uint64(m["seq"].(float64))
		if next == 0 && gap == nil {
			next = 1
		}
		if seq != next {
			t.Fatalf("replayed seq %d, want %d (replay_gap %v)", seq, next, gap)
		}
		next++
	}
	if gap == nil {
		t.Logf("a resume from the start after the loss: w's seqs 1 to %d, seq 1 sent again", next-1)
	} else {
		t.Logf("a resume from the start after the loss: replay_gap %v, then w's seqs to %d", gap, next-1)
	}

	_ = w.Close(websocket.StatusNormalClosure, "")
	waitFrame(t, frames, "stream_left of w on gateway 1", streamFrame("stream_left", "w"))
	waitFrame(t, frames2, "stream_left of w on gateway 2", streamFrame("stream_left", "w"))
	// Each gateway that was connected counted the loss once; its
	// presence watch restarted before gateway 1 could deliver stream_left.
	checkStoreLost(t, sys, 0, 1)
	checkStoreLost(t, sys, 1, 1)
	checkStoreLost(t, sys, 2, 0) // started after the loss
}

// checkStoreLost checks that gateway i counted want losses of the NATS
// store, of its events and of its presence records.
func checkStoreLost(t *testing.T, sys *gwtest.System, i int, want float64) {
	t.Helper()
	for _, part := range []string{"events", "presence"} {
		sample := `ams_nats_store_lost_total{part="` + part + `"}`
		if n := sys.Metric(t, i, sample); n != want {
			t.Errorf("gateway %d: %s = %v, want %v", i, sample, n, want)
		}
	}
}
