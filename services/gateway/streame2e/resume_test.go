package streame2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// readTokens reads tokens of one stream until n have been seen in total
// (seen counts those read before), checking seqs are consecutive, and
// appends their data to text. It returns the last seq, or stops early
// when the connection ends.
func readTokens(c *client, streamID string, lastSeq, n int, text *strings.Builder, seen *int, timeout time.Duration) (int, error) {
	for *seen < n {
		var m map[string]any
		select {
		case mm := <-c.msgs:
			m = mm.m
		case <-c.done:
			select {
			case mm := <-c.msgs:
				m = mm.m
			default:
				return lastSeq, fmt.Errorf("ended: %v", c.closeErr)
			}
		case <-time.After(timeout):
			return lastSeq, fmt.Errorf("no frame within %s after seq %d", timeout, lastSeq)
		}
		if m["type"] != "token" || m["stream_id"] != streamID {
			continue
		}
		seq := int(m["seq"].(float64))
		if seq != lastSeq+1 {
			return lastSeq, fmt.Errorf("seq %d after %d (duplicate or gap)", seq, lastSeq)
		}
		lastSeq = seq
		text.WriteString(m["data"].(string))
		*seen++
	}
	return lastSeq, nil
}

// C53: a reader whose gateway is SIGKILLed mid-stream resumes on the
// other gateway with its cursor and ends with exactly the text sent: no
// gap, no duplicate. Twenty rounds, kill points at random.
func TestC53ResumeAcrossGatewayDeath(t *testing.T) {
	const (
		rounds = 20
		tokens = 5000
	)
	sys := gwtest.Start(t, gwtest.Options{Gateways: -1})
	gw1 := gwtest.StartGatewayProcess(t, sys, "stay")
	_, credW := createAccount(t, gw1.URL, "writer")
	_, credR := createAccount(t, gw1.URL, "reader")

	for round := 0; round < rounds; round++ {
		killAt := 200 + rand.IntN(tokens-400)
		t.Run(fmt.Sprintf("round%02d-kill-at-%d", round, killAt), func(t *testing.T) {
			gw2 := gwtest.StartGatewayProcess(t, sys, fmt.Sprintf("doomed%02d", round))
			conv := mintAt(t, gw1.URL, credW, "writer", "")
			link1 := conv["magic_link"].(string)
			link2 := onGateway(link1, gw2.URL)

			w := dial(t, link1, dialOpts{credential: credW, streamName: "w"})
			sidW := w.expect("joined")["stream_id"].(string)
			r := dial(t, link2, dialOpts{credential: credR, streamName: "r"})
			r.expect("joined")
			w.expect("stream_joined")

			var sent strings.Builder
			// The writer is paced (about 1.5 s for the whole stream) so it is
			// still writing while the reader's gateway dies and the reader
			// resumes: the replay hands over to live events mid-stream.
			go func() {
				for i := 1; i <= tokens; i++ {
					w.token(fmt.Sprintf("<%d>", i))
					if i%50 == 0 {
						time.Sleep(15 * time.Millisecond) // pacing the writer, not synchronisation
					}
				}
			}()
			for i := 1; i <= tokens; i++ {
				sent.WriteString(fmt.Sprintf("<%d>", i))
			}

			var got strings.Builder
			seen := 0
			last, err := readTokens(r, sidW, 0, killAt, &got, &seen, 20*time.Second)
			if err != nil {
				t.Fatalf("before the kill: %v", err)
			}
			gw2.Kill()
			// Whatever the dying gateway had written before the kill counts.
			last, _ = readTokens(r, sidW, last, tokens, &got, &seen, 2*time.Second)

			r2 := dial(t, link1, dialOpts{credential: credR, streamName: "r", resume: fmt.Sprintf("%s:%d", sidW, last)})
			j := r2.expect("joined")
			if j["resumed"] != true {
				t.Fatalf("reconnect did not resume the reader's stream: %v", j)
			}
			if _, err := readTokens(r2, sidW, last, tokens, &got, &seen, 20*time.Second); err != nil {
				t.Fatalf("after resume: %v", err)
			}
			if got.String() != sent.String() {
				t.Fatalf("received text differs from sent text (%d vs %d bytes)", got.Len(), sent.Len())
			}
		})
		if t.Failed() {
			return
		}
	}
}

// C55, C56: a resume older than retention gets replay_gap with the first
// available seq, then the retained events.
func TestC55ResumeTooOld(t *testing.T) {
	sys := gwtest.Start(t, gwtest.Options{Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Data.MaxEvents = 10
	}})
	_, credW := sys.CreateAccount(t, 0, "writer")
	_, credR := sys.CreateAccount(t, 0, "reader")
	conv := sys.Mint(t, 0, credW, "writer", "")
	link := conv["magic_link"].(string)
	w := dial(t, link, dialOpts{credential: credW, streamName: "w"})
	sidW := w.expect("joined")["stream_id"].(string)
	r := dial(t, link, dialOpts{credential: credR, streamName: "r"})
	r.expect("joined")
	w.expect("stream_joined")
	for i := 1; i <= 50; i++ {
		w.token(fmt.Sprint(i))
	}
	var got strings.Builder
	seen := 0
	if _, err := readTokens(r, sidW, 0, 50, &got, &seen, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	r.close()

	r2 := dial(t, link, dialOpts{credential: credR, streamName: "r", resume: sidW + ":5"})
	if j := r2.expect("joined"); j["retention"].(map[string]any)["max_events"].(float64) != 10 {
		t.Fatalf("joined.retention %v", j["retention"])
	}
	gap := r2.expect("replay_gap")
	if gap["stream_id"] != sidW || gap["requested_seq"].(float64) != 6 || gap["first_available_seq"].(float64) != 41 {
		t.Fatalf("replay_gap %v", gap)
	}
	for seq := 41; seq <= 50; seq++ {
		m := r2.expect("token")
		if int(m["seq"].(float64)) != seq {
			t.Fatalf("replayed seq %v, want %d", m["seq"], seq)
		}
	}
	w.token("live")
	if m := r2.expect("token"); m["seq"].(float64) != 51 || m["data"] != "live" {
		t.Fatalf("first live event %v", m)
	}
}
