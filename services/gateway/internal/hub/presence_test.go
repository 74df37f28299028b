package hub

import (
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
)

// A gateway keeps one consumer on the presence bucket however many
// conversations it serves: each conversation reads a snapshot of its
// records when it starts (a stream live before the join) and takes the
// changes after it from the gateway's watch (a stream live after).
func TestOneWatchForEveryConversation(t *testing.T) {
	h, plane := startHub(t)
	var before, after []*testStream
	for range 3 {
		ts := newTestStream(t, h, plane)
		ts.live(0)
		ts.observe(-1)
		before = append(before, ts)
		ts = newTestStream(t, h, plane)
		ts.observe(-1)
		ts.live(0)
		after = append(after, ts)
	}
	for _, ts := range before {
		ts.announced()
	}
	for _, ts := range after {
		ts.announced()
	}
	js, err := plane.Conn().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.StreamInfo("KV_" + dataplane.PresenceBucket)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 1 {
		t.Fatalf("%d consumers on the presence bucket while 6 conversations are served, want 1", info.State.Consumers)
	}
}
