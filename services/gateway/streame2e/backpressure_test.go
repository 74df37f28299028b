package streame2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// smallWindowClient dials with a 4 KiB TCP receive buffer, so a reader
// that reads slowly really holds the gateway back (the kernel cannot
// absorb the stream).
func smallWindowClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return err
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// C46 and lossless backpressure: a reader throttled to a few KB/s is closed
// 4290 slow_consumer, told its cursor, resumes from it and ends with the
// complete text, while a fast reader on the same conversation receives
// every token at the writer's pace.
func TestC46SlowReaderResumesLossless(t *testing.T) {
	// A 64 KiB kernel send buffer per connection keeps the kernel from
	// absorbing the whole stream for the slow reader.
	sys := gwtest.Start(t, gwtest.Options{Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Hub.QueueFrames = 512
		cfg.SendBuffer = 64 << 10
	}})
	_, credW := sys.CreateAccount(t, 0, "writer")
	_, credF := sys.CreateAccount(t, 0, "fast")
	_, credS := sys.CreateAccount(t, 0, "slow")
	conv := sys.Mint(t, 0, credW, "writer", "")
	link := conv["magic_link"].(string)

	w := dial(t, link, dialOpts{credential: credW, streamName: "w"})
	sidW := w.expect("joined")["stream_id"].(string)
	fast := dial(t, link, dialOpts{credential: credF, streamName: "f"})
	fast.expect("joined")
	w.expect("stream_joined")

	// The slow reader: raw, 4 KiB receive window, about 10 KB/s.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+credS)
	h.Set("X-AMS-Stream-Name", "s")
	h.Set("X-AMS-Resume", "*") // a cursor: this client speaks resume
	slow, _, err := websocket.Dial(ctx, connectURL(link), &websocket.DialOptions{HTTPHeader: h, HTTPClient: smallWindowClient()})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(1 << 20)
	if _, j, err := slow.Read(ctx); err != nil || !strings.Contains(string(j), `"type":"joined"`) {
		t.Fatalf("slow joined: %s %v", j, err)
	}
	fast.expect("stream_joined")
	w.expect("stream_joined")

	const n = 2000
	pad := strings.Repeat("x", 1000)
	data := func(i int) string { return fmt.Sprintf("%05d%s", i, pad) }
	var sent strings.Builder
	for i := 1; i <= n; i++ {
		sent.WriteString(data(i))
	}
	// The writer emits about 2,000 tokens/s, a pace the fast reader holds.
	go func() {
		for i := 1; i <= n; i++ {
			w.token(data(i))
			if i%20 == 0 {
				time.Sleep(10 * time.Millisecond) // pacing the writer, not synchronisation
			}
		}
	}()

	// The fast reader gets everything, in order.
	fastDone := make(chan error, 1)
	go func() {
		var got strings.Builder
		seen := 0
		_, err := readTokens(fast, sidW, 0, n, &got, &seen, 30*time.Second)
		if err == nil && got.String() != sent.String() {
			err = errors.New("fast reader's text differs")
		}
		fastDone <- err
	}()

	// The slow reader reads a frame every 100 ms until the server closes it.
	var got strings.Builder
	last, cursor := 0, ""
	for {
		_, b, err := slow.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4290 || ce.Reason != "slow_consumer" {
				t.Fatalf("slow reader ended with %v, want 4290 slow_consumer", err)
			}
			break
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		switch m["type"] {
		case "token":
			seq := int(m["seq"].(float64))
			if seq != last+1 {
				t.Fatalf("slow reader: seq %d after %d", seq, last)
			}
			last = seq
			got.WriteString(m["data"].(string))
		case "cursor":
			cursor = m["cursor"].(string)
		}
		time.Sleep(100 * time.Millisecond) // the throttle: this reader is slow on purpose
	}
	if err := <-fastDone; err != nil {
		t.Fatalf("fast reader: %v", err)
	}
	want := fmt.Sprintf("%s:%d", sidW, last)
	if !strings.Contains(cursor, want) {
		t.Fatalf("cursor frame %q does not hold %s", cursor, want)
	}
	if last >= n {
		t.Fatalf("the slow reader was never behind (read %d of %d)", last, n)
	}
	t.Logf("slow reader closed 4290 after %d of %d tokens; cursor %s", last, n, cursor)

	// Resume from the cursor it was given: the rest, complete.
	r := dial(t, link, dialOpts{credential: credS, streamName: "s", resume: cursor})
	r.expect("joined")
	seen := last
	if _, err := readTokens(r, sidW, last, n, &got, &seen, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got.String() != sent.String() {
		t.Fatal("slow reader's text after resume differs from the text sent")
	}
}
