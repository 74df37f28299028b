package hub

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
)

// warnings records the messages logged at warning level and above.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	w.msgs = append(w.msgs, r.Message)
	w.mu.Unlock()
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// A stream that left rejoins on a gateway that does not serve its
// conversation (its last participant had gone, spec 4.5 C45): the gateway
// loads the left record with the conversation, so the join does not wait
// for a revision its presence watch will never send again (it used to wait
// 2 s and log "presence watch behind").
func TestRejoinOfLeftStreamDoesNotWait(t *testing.T) {
	log := &warnings{}
	h, plane := startHubLog(t, log)
	ctx := t.Context()
	info, key, _ := putLeft(t, h, plane, 3)
	conn, err := h.Join(ctx, JoinRequest{Conversation: info, AccountID: testAccount, StreamName: "w", Transport: "test"}, newTestSink())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(1000, false)
	got, _, ok, err := presence.Get(ctx, plane.Presence, key)
	if err != nil || !ok {
		t.Fatalf("record after the join: %v %v", ok, err)
	}
	if got.State != presence.Live || got.Epoch != 4 || got.LastSeq != 7 {
		t.Fatalf("record %+v, want live, epoch 4, last seq 7", got)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.msgs) != 0 {
		t.Fatalf("warnings: %q", log.msgs)
	}
}

// testAccount is the account of the streams putLeft writes.
const testAccount = "acc_01J00000000000000000"

// putLeft writes the record of testAccount's stream "w" in a new
// conversation, left by another gateway at epoch, last seq 7; it returns
// the conversation, the record's key and its revision.
func putLeft(t *testing.T, h *Hub, plane *dataplane.Plane, epoch uint64) (*admission.Conversation, string, uint64) {
	t.Helper()
	info := newConversation()
	streamID := h.deriver.StreamID(info.ID, testAccount, "w")
	key, err := subject.PresenceKey(info.ID, streamID)
	if err != nil {
		t.Fatal(err)
	}
	rec := presence.Record{StreamID: streamID, Name: "w", Owner: testAccount, Metadata: "{}",
		Gateway: "gw-other", Epoch: epoch, State: presence.Left, LastSeq: 7}
	rev, err := presence.Put(t.Context(), plane.Presence, key, &rec, 0)
	if err != nil {
		t.Fatal(err)
	}
	return info, key, rev
}
