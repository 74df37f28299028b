package httpstream

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/httpapi"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/gateway/internal/wsconn"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/timefmt"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// MaxTagLen bounds an Idempotency-Key.
const MaxTagLen = 128

// Emit serves POST …/streams/{stream_name}/tokens and PUT
// …/streams/{stream_name}/metadata (spec 5.3).
type Emit struct {
	Log      *slog.Logger
	Admitter *wsconn.Admitter
	Hub      *hub.Hub
	// Metadata selects the set-metadata route.
	Metadata bool
	// Limits rate-limits the events an account emits (429 rate_limited
	// with Retry-After); nil: none.
	Limits *limits.Limits
}

func (h *Emit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.serve(w, r); err != nil {
		httpapi.WriteError(w, h.Log, err)
	}
}

func (h *Emit) serve(w http.ResponseWriter, r *http.Request) error {
	p := httpapi.PathParams(r)
	raw := connreq.FromHTTP(r)
	raw.BearerWithoutProtocol = false
	auth, err := h.Admitter.Authorize(r.Context(), p.NS, p.Alias, &raw, false)
	if err != nil {
		return streamError(err, &raw, false)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	req := hub.EmitRequest{Conversation: auth.Conversation, AccountID: auth.AccountID, StreamName: p.StreamName}
	if !ids.ValidStreamName(p.StreamName) {
		return wireerr.New(wireerr.StreamNotLive, "no live stream of that name for this account")
	}
	if h.Metadata {
		md, err := decodeMetadataBody(body)
		if err != nil {
			return err
		}
		req.SetMetadata, req.Metadata = true, md
	} else {
		tokens, err := frame.DecodeEmitBody(body)
		if err != nil {
			return err
		}
		req.Tokens = tokens
		if tag := r.Header.Get("Idempotency-Key"); tag != "" {
			if len(tag) > MaxTagLen {
				return wireerr.New(wireerr.InvalidTokenData, "Idempotency-Key is at most 128 bytes")
			}
			req.Tag = tag
		}
	}
	if err := h.Limits.Tokens(auth.AccountID, max(1, len(req.Tokens))); err != nil {
		return err
	}
	res, err := h.Hub.Emit(r.Context(), req)
	if err != nil {
		return err
	}
	o := jsonw.Begin(make([]byte, 0, 128))
	o.Str("stream_id", res.StreamID)
	if h.Metadata {
		o.Uint("seq", res.FirstSeq)
		o.Str("ts", timefmt.Format(res.TS))
		return writeJSON(w, http.StatusOK, o.End())
	}
	o.Uint("first_seq", res.FirstSeq)
	o.Uint("last_seq", res.LastSeq)
	o.Str("ts", timefmt.Format(res.TS))
	return writeJSON(w, http.StatusAccepted, o.End())
}

var errMetadataBody = wireerr.New(wireerr.InvalidMetadata, "the body must be a JSON object of at most 16 KiB, nested at most 255 deep")

// decodeMetadataBody reads a set-metadata body (spec 5.3): 400
// invalid_metadata unless metadataObject accepts it.
func decodeMetadataBody(body []byte) (string, error) {
	md, ok := metadataObject(body)
	if !ok {
		return "", errMetadataBody
	}
	return md, nil
}

// metadataObject checks a set-metadata body: a JSON object of at most
// 16 KiB that a WebSocket set_metadata frame would accept as its metadata
// (valid UTF-8, within the frame decoder's nesting bound), kept as its
// exact text (surrounding whitespace trimmed).
func metadataObject(body []byte) (string, bool) {
	raw := body
	for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t' || raw[0] == '\n' || raw[0] == '\r') {
		raw = raw[1:]
	}
	for len(raw) > 0 && (raw[len(raw)-1] == ' ' || raw[len(raw)-1] == '\t' || raw[len(raw)-1] == '\n' || raw[len(raw)-1] == '\r') {
		raw = raw[:len(raw)-1]
	}
	if len(raw) > frame.MaxMetadata || !frame.ValidMetadata(raw) {
		return "", false
	}
	return string(raw), true
}

func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(append(body, '\n'))
	return err
}
