package hub

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
)

// A gap whose read-back JetStream does not answer (an overloaded or
// restarting server) is retried until it does, not skipped: the events
// are retained, and skipping them lost them for every live reader (spec
// 4.5, gap-free order). JetStream is made to fail by turning its direct
// gets off; the events stay stored.
func TestRepairRetriesWhenJetStreamFails(t *testing.T) {
	log := &warnings{}
	h, plane := startHubLog(t, log)
	ts := newTestStream(t, h, plane)
	// Seqs 1 to 3 are stored before this gateway serves the conversation.
	ts.publish(1, 3)
	ts.waitStored(3)
	sink, conn := ts.observe(-1)
	// The stream is announced at seq 1: the reader goes on live from 2.
	ts.live(1)
	c := ts.announced()

	// JetStream stops answering reads; then seq 4 arrives live, after a
	// gap of 2 and 3.
	setDirect(t, plane, false)
	c.onEvent(&nats.Msg{Subject: ts.subj, Data: ts.token(4)})
	waitUntil(t, func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return slices.Contains(log.msgs, "stream gap repair failed; retrying")
	})
	setDirect(t, plane, true)

	if got := sink.tokens(t, conn, 3); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("tokens %v, want 2, 3 and 4", got)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if slices.Contains(log.msgs, "stream gap skipped") {
		t.Fatalf("the gap was skipped: %q", log.msgs)
	}
}
