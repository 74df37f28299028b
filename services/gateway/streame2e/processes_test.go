package streame2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// createAccount creates an account through a gateway at base.
func createAccount(t *testing.T, base, ns string) (string, string) {
	t.Helper()
	r := gwtest.DoResponse(t, http.MethodPost, base+"/v1/accounts", nil, `{"namespace":"`+ns+`"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create account %s: %d %s", ns, r.Status, r.Body)
	}
	m := r.JSON(t)
	return m["account_id"].(string), m["credential"].(string)
}

func mintAt(t *testing.T, base, cred, ns, body string) map[string]any {
	t.Helper()
	r := gwtest.DoResponse(t, http.MethodPost, base+"/v1/"+ns+"/conversations", gwtest.Bearer(cred), body)
	if r.Status != http.StatusCreated {
		t.Fatalf("mint: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)
}

// onGateway rewrites a magic link to point at another gateway.
func onGateway(link, base string) string {
	i := len("http://")
	for i < len(link) && link[i] != '/' {
		i++
	}
	return base + link[i:]
}

// expectTokens reads n tokens of one stream in seq order starting at
// from, skipping nothing else but membership frames of other streams.
func expectTokens(t *testing.T, c *client, streamID string, from, n int, data func(int) string) {
	t.Helper()
	for i := 0; i < n; i++ {
		m := c.next(20 * time.Second)
		if m["type"] != "token" {
			t.Fatalf("frame %d: got %v, want a token", i, m)
		}
		if m["stream_id"] != streamID {
			t.Fatalf("frame %d: token of stream %v, want %s", i, m["stream_id"], streamID)
		}
		if seq := int(m["seq"].(float64)); seq != from+i {
			t.Fatalf("frame %d: seq %d, want %d", i, seq, from+i)
		}
		if data != nil && m["data"] != data(from+i) {
			t.Fatalf("frame %d: data %q, want %q", i, m["data"], data(from+i))
		}
	}
}

// C38, C44, C50, C51: two gateway processes on one NATS server, three
// participants across them.
func TestC51TwoGatewayProcesses(t *testing.T) {
	sys := gwtest.Start(t, gwtest.Options{Gateways: -1})
	// Each reader's outbound queue holds the whole burst below: this test
	// is about completeness and order across gateways, and a reader the
	// machine's load slows down must not be closed as a slow consumer
	// (4290 has tests of its own: TestC46SlowConsumer and
	// TestC46SlowReaderResumesLossless).
	queue := "AMS_GATEWAY_QUEUE_FRAMES=16384"
	gw1 := gwtest.StartGatewayProcess(t, sys, "gw1", queue)
	gw2 := gwtest.StartGatewayProcess(t, sys, "gw2", queue)

	_, credA := createAccount(t, gw1.URL, "ann")
	_, credB := createAccount(t, gw2.URL, "ben")
	_, credC := createAccount(t, gw1.URL, "cat")
	conv := mintAt(t, gw1.URL, credA, "ann", `{"alias":"trio"}`)
	link1 := conv["magic_link"].(string)
	link2 := onGateway(link1, gw2.URL)

	a := dial(t, link1, dialOpts{credential: credA, streamName: "a"})
	ja := a.expect("joined")
	sidA := ja["stream_id"].(string)
	b := dial(t, link2, dialOpts{credential: credB, streamName: "b"})
	jb := b.expect("joined")
	sidB := jb["stream_id"].(string)
	if got := a.expect("stream_joined"); got["stream_id"] != sidB {
		t.Fatalf("a: stream_joined %v", got)
	}
	c := dial(t, link1, dialOpts{credential: credC, streamName: "c"})
	jc := c.expect("joined")
	sidC := jc["stream_id"].(string)
	if n := len(jc["peers"].([]any)); n != 2 {
		t.Fatalf("c sees %d peers", n)
	}
	for _, p := range []*client{a, b} {
		if got := p.expect("stream_joined"); got["stream_id"] != sidC {
			t.Fatalf("stream_joined %v", got)
		}
	}

	// Tokens every way; nobody receives their own.
	a.token("from a")
	b.token("from b")
	c.token("from c")
	got := map[*client][]string{}
	for _, p := range []*client{a, b, c} {
		for i := 0; i < 2; i++ {
			m := p.expect("token")
			got[p] = append(got[p], m["stream_id"].(string))
		}
	}
	own := map[*client]string{a: sidA, b: sidB, c: sidC}
	for p, ids := range got {
		for _, id := range ids {
			if id == own[p] {
				t.Fatalf("a participant received its own token")
			}
		}
	}

	// A burst of 10,000 tokens on one stream arrives complete and in order
	// at readers on both gateways.
	const burst = 10_000
	data := func(seq int) string { return fmt.Sprintf("burst-%05d", seq) }
	for i := 2; i < burst+2; i++ {
		a.token(data(i))
	}
	done := make(chan struct{}, 2)
	for _, p := range []*client{b, c} {
		go func() {
			defer func() { done <- struct{}{} }()
			expectTokens(t, p, sidA, 2, burst, data)
		}()
	}
	<-done
	<-done
	if t.Failed() {
		return
	}

	// Displace-and-resume on the other gateway: the old connection gets
	// 4001 stream_displaced, the new one resumes the stream, peers see no
	// membership change, and seq continues.
	a2 := dial(t, link2, dialOpts{credential: credA, streamName: "a"})
	ja2 := a2.expect("joined")
	if ja2["resumed"] != true || ja2["stream_id"] != sidA || int(ja2["last_seq"].(float64)) != burst+1 {
		t.Fatalf("resumed joined %v", ja2)
	}
	if code, reason := a.closed(10 * time.Second); code != 4001 || reason != "stream_displaced" {
		t.Fatalf("displaced connection closed %d %q", code, reason)
	}
	a2.token("after resume")
	for _, p := range []*client{b, c} {
		m := p.next(10 * time.Second)
		if m["type"] != "token" || m["stream_id"] != sidA || int(m["seq"].(float64)) != burst+2 {
			t.Fatalf("after resume got %v (membership frames must not appear)", m)
		}
	}

	// SIGKILL the gateway holding a and b: c, on the other gateway, gets
	// stream_left for both within 15 s.
	killed := time.Now()
	gw2.Kill()
	left := map[string]bool{}
	for len(left) < 2 {
		m := c.until("stream_left", 15*time.Second-time.Since(killed))
		left[m["stream_id"].(string)] = true
	}
	if !left[sidA] || !left[sidB] {
		t.Fatalf("stream_left for %v", left)
	}
	t.Logf("stream_left of the killed gateway's streams after %s", time.Since(killed).Round(time.Millisecond))
}
