package streame2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
)

// C48, C52, C54–C56: the tokens of one client array travel between
// gateways as one NATS message (fewer stored messages than tokens), and
// readers see exactly the frames of one token per message: live on the
// other gateway, and replayed from a cursor anywhere inside a batch, with
// max_events counting events, not messages.
func TestC48BatchesAcrossGateways(t *testing.T) {
	t.Parallel()
	const (
		tokens    = 600
		maxEvents = 250
	)
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Data.MaxEvents = maxEvents
	}})
	_, credW := account(t, sys, "writer")
	_, credR := account(t, sys, "reader")
	r := newRoom(t, sys, credW, "writer", "room")
	w, jw := r.join(t, 0, dialOpts{credential: credW, streamName: "w", batch: true})
	sidW := jw["stream_id"].(string)
	rd, _ := r.join(t, 1, dialOpts{credential: credR, streamName: "r"})
	w.expect("stream_joined")

	rng := rand.New(rand.NewPCG(5, 6))
	var sent strings.Builder
	for i := 1; i <= tokens; {
		n := min(1+rng.IntN(60), tokens-i+1)
		var els []string
		for k := range n {
			d := fmt.Sprintf("<%d\n\"é>", i+k) // escapes and non-ASCII survive
			els = append(els, fmt.Sprintf(`{"type":"token","data":%q}`, d))
			sent.WriteString(d)
		}
		w.sendRaw([]byte("[" + strings.Join(els, ",") + "]"))
		i += n
	}
	var got strings.Builder
	seen := 0
	if _, err := readTokens(rd, sidW, 0, tokens, &got, &seen, wait); err != nil {
		t.Fatalf("live: %v", err)
	}
	if got.String() != sent.String() {
		t.Fatalf("live text differs from sent text (%d vs %d bytes)", got.Len(), sent.Len())
	}

	// The arrays were stored as batches: fewer messages than tokens.
	nc, err := nats.Connect(sys.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(t.Context(), dataplane.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	subj, err := subject.Event(r.convID, sidW)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subj]; n == 0 || n >= tokens/4 {
		t.Fatalf("%d tokens stored as %d messages, want a few batches", tokens, n)
	}

	// Resume from cursors before, at and inside the retained batches. Each
	// round adds one live token, which moves the first available seq on.
	base := tokens - maxEvents + 1
	for i, pos := range []int{0, base - 2, base - 1, base, base + 1, 417, 418, tokens - 1, tokens} {
		last := tokens + i // the newest seq so far
		first := last - maxEvents + 1
		c, _ := r.join(t, 1, dialOpts{credential: credR, streamName: fmt.Sprintf("r%d", i), resume: fmt.Sprintf("%s:%d", sidW, pos)})
		from := pos + 1
		if from < first {
			gap := c.expectOf("w", "replay_gap")
			if int(gap["requested_seq"].(float64)) != from || int(gap["first_available_seq"].(float64)) != first {
				t.Fatalf("resume at %d: replay_gap %v, want first available %d", pos, gap, first)
			}
			from = first
		}
		seen := from - 1
		var text strings.Builder
		if _, err := readTokens(c, sidW, from-1, last, &text, &seen, wait); err != nil {
			t.Fatalf("resume at %d: %v", pos, err)
		}
		w.token("live")
		c.wantTokenOf("w", "live", last+1)
		rd.wantTokenOf("w", "live", last+1)
		c.close()
	}

	// An array larger than a batch's byte bound travels as a few batches.
	stored := func() uint64 {
		t.Helper()
		info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(subj))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[subj]
	}
	before := stored()
	var els []string
	sent.Reset()
	for k := range 100 {
		d := fmt.Sprintf("%04d", k) + strings.Repeat("x", 2000)
		els = append(els, fmt.Sprintf(`{"type":"token","data":%q}`, d))
		sent.WriteString(d)
	}
	w.sendRaw([]byte("[" + strings.Join(els, ",") + "]"))
	got.Reset()
	seen = 0
	if _, err := readTokens(rd, sidW, tokens+9, 100, &got, &seen, wait); err != nil {
		t.Fatalf("large array: %v", err)
	}
	if got.String() != sent.String() {
		t.Fatal("large array: received text differs from sent text")
	}
	if n := stored() - before; n < 3 || n > 10 {
		t.Fatalf("100 tokens of 2 KB stored as %d messages, want a few batches of at most 64 KiB", n)
	}
}
