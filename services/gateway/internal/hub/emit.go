package hub

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// EmitRequest is an emit on the caller's own live stream by a transport
// that holds no connection to it (HTTP emit, spec 5.3). The stream may be
// held by any gateway; the request travels to its holder.
type EmitRequest struct {
	Conversation *admission.Conversation
	AccountID    string
	StreamName   string
	// Tokens to emit in order; or, with SetMetadata, the new metadata.
	Tokens      []string
	SetMetadata bool
	Metadata    string
	// Tag makes the emit idempotent: a retry with the same tag within the
	// dedupe window is stored and delivered once.
	Tag string
}

// EmitResult is the outcome of an emit.
type EmitResult struct {
	StreamID string `json:"stream_id"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// TS is the server time of the (last) event.
	TS time.Time `json:"ts"`
}

// emitWire is an emit forwarded to the holding gateway.
type emitWire struct {
	Conversation string   `json:"conv"`
	Stream       string   `json:"stream"`
	Tokens       []string `json:"tokens,omitempty"`
	SetMetadata  bool     `json:"set_metadata,omitempty"`
	Metadata     string   `json:"metadata,omitempty"`
	Tag          string   `json:"tag,omitempty"`
}

type emitReply struct {
	EmitResult
	Error string `json:"error,omitempty"`
}

// Emit emits on the caller's live stream of that name in the conversation:
// 409 stream_name_owner_conflict when the name is live under another
// account, 409 stream_not_live when the caller has no live stream of it.
func (h *Hub) Emit(ctx context.Context, req EmitRequest) (EmitResult, error) {
	conv := req.Conversation
	sid := h.deriver.StreamID(conv.ID, req.AccountID, req.StreamName)
	live, err := h.LiveStreams(ctx, conv.ID)
	if err != nil {
		return EmitResult{}, wireerr.New(wireerr.Internal, "list live streams")
	}
	for _, s := range live {
		if s.Name == req.StreamName && s.Owner != req.AccountID {
			return EmitResult{}, wireerr.New(wireerr.StreamNameOwnerConflict, "another account streams under this name")
		}
	}
	key, _ := subject.PresenceKey(conv.ID, sid)
	w := emitWire{Conversation: conv.ID, Stream: sid, Tokens: req.Tokens, SetMetadata: req.SetMetadata, Metadata: req.Metadata, Tag: req.Tag}
	for attempt := 0; attempt < 3; attempt++ {
		rec, _, ok, err := presence.Get(ctx, h.plane.Presence, key)
		if err != nil {
			return EmitResult{}, wireerr.New(wireerr.Internal, "read stream record")
		}
		if !ok || rec.State != presence.Live || !h.withinGrace(rec.Gateway) {
			return EmitResult{}, wireerr.New(wireerr.StreamNotLive, "no live stream of that name for this account")
		}
		var res EmitResult
		if rec.Gateway == h.cfg.Gateway {
			res, err = h.emitLocal(ctx, w)
		} else {
			res, err = h.forwardEmit(ctx, rec.Gateway, w)
		}
		if errors.Is(err, errNotHeld) {
			continue // it moved between the read and the emit: read again
		}
		return res, err
	}
	return EmitResult{}, wireerr.New(wireerr.StreamNotLive, "the stream kept moving between gateways")
}

// emitLocal emits on a stream this gateway holds.
func (h *Hub) emitLocal(ctx context.Context, w emitWire) (EmitResult, error) {
	h.mu.Lock()
	c := h.convs[w.Conversation]
	h.mu.Unlock()
	if c == nil {
		return EmitResult{}, errNotHeld
	}
	c.mu.Lock()
	s := c.streams[w.Stream]
	c.mu.Unlock()
	if s == nil {
		return EmitResult{}, errNotHeld
	}
	res := EmitResult{StreamID: w.Stream}
	var err error
	if w.SetMetadata {
		h.metrics.frameIn("set_metadata")
		res.FirstSeq, res.TS, err = s.setMetadata(ctx, nil, w.Metadata)
		res.LastSeq = res.FirstSeq
	} else {
		h.metrics.framesIn("token", len(w.Tokens))
		res.FirstSeq, res.LastSeq, res.TS, err = s.emitTokens(ctx, nil, w.Tokens, w.Tag)
	}
	return res, err
}

// forwardEmit sends the emit to the gateway holding the stream.
func (h *Hub) forwardEmit(ctx context.Context, gw string, w emitWire) (EmitResult, error) {
	subj, err := subject.Emit(gw)
	if err != nil {
		return EmitResult{}, errNotHeld
	}
	b, _ := json.Marshal(w)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := h.plane.Conn().RequestWithContext(ctx, subj, b)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return EmitResult{}, errNotHeld
		}
		return EmitResult{}, wireerr.New(wireerr.Internal, "the holding gateway did not answer")
	}
	var r emitReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return EmitResult{}, wireerr.New(wireerr.Internal, "bad emit reply")
	}
	switch r.Error {
	case "":
		return r.EmitResult, nil
	case errNotHeld.Code.Name:
		return EmitResult{}, errNotHeld
	default:
		code, ok := wireerr.Lookup(r.Error)
		if !ok {
			code = wireerr.Internal
		}
		return EmitResult{}, wireerr.New(code, "emit failed at the holding gateway")
	}
}

// onEmit serves emits forwarded by other gateways.
func (h *Hub) onEmit(m *nats.Msg) {
	var w emitWire
	var reply emitReply
	if err := json.Unmarshal(m.Data, &w); err != nil {
		reply.Error = wireerr.Internal.Name
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := h.emitLocal(ctx, w)
		cancel()
		reply.EmitResult = res
		if err != nil {
			reply.Error = wireerr.Internal.Name
			if we, ok := wireerr.As(err); ok {
				reply.Error = we.Code.Name
			}
		}
	}
	b, _ := json.Marshal(reply)
	_ = m.Respond(b)
}
