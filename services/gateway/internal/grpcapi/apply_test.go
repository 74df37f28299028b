package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// recorder is a hub connection that records what a call asks of it.
type recorder struct {
	ops     []string
	emitErr error
}

func (r *recorder) EmitTokens(tokens []string) error {
	r.ops = append(r.ops, fmt.Sprintf("emit %s..%s (%d)", tokens[0], tokens[len(tokens)-1], len(tokens)))
	return r.emitErr
}
func (r *recorder) SetMetadata(context.Context, string) (uint64, time.Time, error) {
	r.ops = append(r.ops, "metadata")
	return 0, time.Time{}, nil
}
func (r *recorder) Ping()                                  { r.ops = append(r.ops, "ping") }
func (r *recorder) Subscribe(bool, []string)               { r.ops = append(r.ops, "subscribe") }
func (r *recorder) Take(dst []hub.Item) ([]hub.Item, bool) { return dst, false }
func (r *recorder) Delivered([]hub.Item)                   {}
func (r *recorder) Close(code int, _ bool)                 { r.ops = append(r.ops, "close "+strconv.Itoa(code)) }
func (r *recorder) Fail(code wireerr.Code)                 { r.ops = append(r.ops, "fail "+code.Name) }

func clientFrame(t *testing.T, f *amsv1.ClientFrame) received {
	t.Helper()
	b, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return received{b: b}
}

func tokenFrame(t *testing.T, data string) received {
	return clientFrame(t, &amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Token{Token: &amsv1.Token{Data: data}}})
}

// fill queues ms in a new inbox as the receive goroutine would, and
// returns the inbox and its first message.
func fill(t *testing.T, ms ...received) (*inbox, received) {
	t.Helper()
	in := &inbox{ch: make(chan received, len(ms)), drained: make(chan struct{}, 1)}
	for _, m := range ms {
		in.bytes.Add(int64(len(m.b)))
		in.ch <- m
	}
	return in, <-in.ch
}

// Tokens that wait in the inbox are published together, in order, at
// most frame.MaxEmitTokens at a time; a frame of another kind goes after
// the tokens before it, and the end of the call after the last ones.
func TestApplyBatchesQueuedTokens(t *testing.T) {
	t.Parallel()
	var ms []received
	for i := 1; i <= 300; i++ {
		ms = append(ms, tokenFrame(t, "t"+strconv.Itoa(i)))
	}
	ms = append(ms, clientFrame(t, &amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Ping{Ping: &amsv1.Ping{}}}),
		tokenFrame(t, "t301"), tokenFrame(t, "t302"), received{err: io.EOF})
	in, first := fill(t, ms...)
	rec := &recorder{}
	c := &call{hc: rec}
	if got := c.apply(context.Background(), first, in); got != recvHalfClose {
		t.Fatalf("apply ended %d, want recvHalfClose", got)
	}
	want := []string{"emit t1..t256 (256)", "emit t257..t300 (44)", "ping", "emit t301..t302 (2)"}
	if !slices.Equal(rec.ops, want) {
		t.Fatalf("got %q\nwant %q", rec.ops, want)
	}
	if in.bytes.Load() != 0 {
		t.Fatalf("the inbox still counts %d bytes", in.bytes.Load())
	}

	// With nothing more queued, a token goes out at once.
	in, first = fill(t, tokenFrame(t, "alone"))
	rec = &recorder{}
	c = &call{hc: rec}
	if got := c.apply(context.Background(), first, in); got != recvMore || !slices.Equal(rec.ops, []string{"emit alone..alone (1)"}) {
		t.Fatalf("a lone token: %d, %q", got, rec.ops)
	}

	// A refused frame ends the call after the tokens received before it.
	in, first = fill(t, tokenFrame(t, "a"), tokenFrame(t, "b"), received{b: []byte{0xff, 0xff}}, tokenFrame(t, "c"))
	rec = &recorder{}
	c = &call{hc: rec}
	if got := c.apply(context.Background(), first, in); got != recvFailed {
		t.Fatalf("a malformed frame: %d", got)
	}
	if want := []string{"emit a..b (2)", "fail " + wireerr.MalformedFrame.Name}; !slices.Equal(rec.ops, want) {
		t.Fatalf("got %q, want %q", rec.ops, want)
	}
}

// A batch is also cut at maxBatchData bytes of token data.
func TestApplyBatchBytes(t *testing.T) {
	t.Parallel()
	big := string(make([]byte, maxBatchData/4))
	var ms []received
	for range 6 {
		ms = append(ms, tokenFrame(t, big))
	}
	in, first := fill(t, ms...)
	rec := &recorder{}
	c := &call{hc: rec}
	c.apply(context.Background(), first, in)
	if len(rec.ops) != 2 || rec.ops[0][len(rec.ops[0])-3:] != "(4)" || rec.ops[1][len(rec.ops[1])-3:] != "(2)" {
		t.Fatalf("six tokens of a quarter of the bound: %d batches %q", len(rec.ops), rec.ops)
	}
}

// A publish that fails for another reason than displacement ends the call
// as internal_error; a displaced connection's tokens are dropped quietly
// (the hub is closing it).
func TestApplyEmitErrors(t *testing.T) {
	t.Parallel()
	in, first := fill(t, tokenFrame(t, "a"))
	rec := &recorder{emitErr: errors.New("nats: connection closed")}
	if got := (&call{hc: rec}).apply(context.Background(), first, in); got != recvFailed || rec.ops[len(rec.ops)-1] != "fail "+wireerr.Internal.Name {
		t.Fatalf("a failed publish: %d, %q", got, rec.ops)
	}
	in, first = fill(t, tokenFrame(t, "a"))
	rec = &recorder{emitErr: wireerr.New(wireerr.StreamDisplaced, "")}
	if got := (&call{hc: rec}).apply(context.Background(), first, in); got != recvMore {
		t.Fatalf("a displaced publish: %d, %q", got, rec.ops)
	}
}
