package streame2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// smallBufferClient is an HTTP client whose sockets have a small receive
// buffer, so that a connection nobody reads fills up quickly.
func smallBufferClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// C46, C47: a reader that stops reading overflows its bounded queue and is
// closed 4290 slow_consumer, having got a gap-free prefix of the stream;
// the writer and a fast reader of the same conversation, on this gateway
// and another, keep going and get everything.
func TestC46SlowConsumer(t *testing.T) {
	t.Parallel()
	const queueBytes = 256 << 10
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Hub.QueueBytes = queueBytes
	}})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	w, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "w"})
	fast0, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "fast0"})
	fast1, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "fast1"})
	slow := dial(t, r.link, dialOpts{credential: credB, streamName: "slow", noRead: true, httpClient: smallBufferClient()})
	fast0.expect("stream_joined")
	fast0.expect("stream_joined")
	fast1.expect("stream_joined")

	// The writer emits 16 KiB tokens, never more than a few ahead of the
	// fast readers (they must not overflow: the queue is lowered), until
	// the slow reader is dropped; then some more.
	const window, maxTokens = 4, 4000
	chunk := strings.Repeat("s", 16<<10-8)
	data := func(i int) string { return fmt.Sprintf("%07d:%s", i, chunk) }
	readers := []*client{fast0, fast1}
	next := []int{1, 1}
	slowLeft := []bool{false, false}
	read := func(ri int) {
		t.Helper()
		m := readers[ri].nextMsg(wait)
		switch m.m["type"] {
		case "token":
			if m.m["data"] != data(next[ri]) || num(t, m.m, "seq") != next[ri] {
				t.Fatalf("fast reader %d got seq %v, want %d", ri, m.m["seq"], next[ri])
			}
			next[ri]++
		case "stream_left":
			if m.m["stream_name"] != "slow" {
				t.Fatalf("fast reader %d got %s", ri, m.raw)
			}
			slowLeft[ri] = true
		default:
			t.Fatalf("fast reader %d got %.200s", ri, m.raw)
		}
	}
	sent, extra := 0, 0
	for extra < 50 {
		if sent == maxTokens {
			t.Fatalf("the slow reader was not dropped after %d tokens of 16 KiB", sent)
		}
		sent++
		w.token(data(sent))
		for ri := range readers {
			for next[ri] <= sent-window {
				read(ri)
			}
		}
		if slowLeft[0] && slowLeft[1] {
			extra++
		}
	}
	for ri := range readers {
		for next[ri] <= sent {
			read(ri)
		}
	}
	t.Logf("slow reader dropped; %d tokens sent", sent)

	// The slow reader gets joined, a gap-free prefix, then 4290.
	slow.startReading()
	if m := slow.nextMsg(wait); m.m["type"] != "joined" {
		t.Fatalf("slow reader's first frame %.200s", m.raw)
	}
	frames := slow.wantCloseAfter(codeSlow, "slow_consumer")
	seq := 0
	for _, m := range frames {
		if m.m["type"] != "token" {
			t.Fatalf("slow reader got %.200s", m.raw)
		}
		seq++
		if m.m["data"] != data(seq) || num(t, m.m, "seq") != seq {
			t.Fatalf("slow reader got seq %v after %d", m.m["seq"], seq-1)
		}
	}
	if seq >= sent {
		t.Errorf("slow reader got all %d tokens", seq)
	}
	t.Logf("slow reader got %d tokens before 4290", seq)

	// It can reconnect and read on.
	again, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "slow"})
	w.token("after")
	again.wantToken("w", "after", sent+1)
}
