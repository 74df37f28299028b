package httpapi

import (
	"net/http"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/controlplane"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/timefmt"
)

// Bounds of spec 3.4 and 3.6.
const (
	MaxMetadata       = controlplane.MaxMetadata
	MaxStreamMetadata = controlplane.MaxStreamMetadata
	MinLinkExpiry     = controlplane.MinLinkExpiry
	MaxLinkExpiry     = controlplane.MaxLinkExpiry
	MaxLabelRunes     = controlplane.MaxLabelRunes
)

func formatPtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := timefmt.Format(*t)
	return &s
}

// body returns the members of the request's body, read when the operation
// gets to it: an empty or blank body is `{}`.
func body(r *http.Request) controlplane.Body {
	return func() (controlplane.Members, error) {
		b, err := readBody(r)
		if err != nil {
			return nil, err
		}
		return object(b, true)
	}
}

// mint serves POST /v1/{ns}/conversations (spec 3.4).
func (a *API) mint(w http.ResponseWriter, r *http.Request, p Params) error {
	m, err := a.ctl.Mint(r.Context(), authorization(r), p.NS, a.publicBase(r), body(r))
	if err != nil {
		return err
	}
	o := jsonw.Begin(make([]byte, 0, 512+len(m.Metadata)+len(m.StreamMetadata)))
	o.Str("conversation_id", m.ConversationID)
	o.Str("alias", m.Alias)
	o.Str("magic_link", m.MagicLink)
	o.Str("stream_id", m.StreamID)
	o.Str("stream_name", m.StreamName)
	o.RawString("metadata", m.Metadata)
	o.RawString("stream_metadata", m.StreamMetadata)
	o.Str("created_at", timefmt.Format(m.CreatedAt))
	o.Str("link_id", m.LinkID)
	o.StrOrNull("expires_at", formatPtr(m.ExpiresAt))
	return writeJSON(w, http.StatusCreated, o.End())
}

// inspect serves GET /v1/{ns}/conversations/{alias} (spec 3.5): admitted by
// a valid `t`, or without `t` by the owner's Bearer.
func (a *API) inspect(w http.ResponseWriter, r *http.Request, p Params) error {
	in, err := a.ctl.Inspect(r.Context(), authorization(r), p.NS, p.Alias, r.URL.Query().Get("t"))
	if err != nil {
		return err
	}
	conv := in.Conversation
	o := jsonw.Begin(make([]byte, 0, 512+len(conv.Metadata)))
	o.Str("conversation_id", conv.ID)
	o.Str("namespace", conv.Namespace)
	o.Str("alias", conv.Alias)
	o.RawString("metadata", conv.Metadata)
	o.Str("created_at", timefmt.Format(conv.CreatedAt))
	o.Str("id_kind", "uuid")
	o.Key("streams")
	o.B = AppendStreams(o.B, in.Streams)
	return writeJSON(w, http.StatusOK, o.End())
}

// AppendStreams appends a JSON array of stream entries (the shape of
// `peers` and of inspect's `streams`).
func AppendStreams(b []byte, streams []StreamInfo) []byte {
	b = append(b, '[')
	for i, s := range streams {
		if i > 0 {
			b = append(b, ',')
		}
		so := jsonw.Begin(b)
		so.Str("stream_id", s.StreamID)
		so.Str("stream_name", s.StreamName)
		so.Str("owner_account_id", s.OwnerAccountID)
		so.RawString("metadata", s.Metadata)
		if s.PeerIdentity != "" {
			so.RawString("peer_identity", s.PeerIdentity)
		}
		so.Uint("last_seq", s.LastSeq)
		b = so.End()
	}
	return append(b, ']')
}

// createLink serves POST …/links (spec 3.6).
func (a *API) createLink(w http.ResponseWriter, r *http.Request, p Params) error {
	l, err := a.ctl.CreateLink(r.Context(), authorization(r), p.NS, p.Alias, a.publicBase(r), body(r))
	if err != nil {
		return err
	}
	o := jsonw.Begin(make([]byte, 0, 640))
	o.Str("link_id", l.LinkID)
	o.Str("magic_link", l.MagicLink)
	o.Str("created_at", timefmt.Format(l.CreatedAt))
	o.StrOrNull("expires_at", formatPtr(l.ExpiresAt))
	o.StrOrNull("label", l.Label)
	return writeJSON(w, http.StatusCreated, o.End())
}

// listLinks serves GET …/links (spec 3.6).
func (a *API) listLinks(w http.ResponseWriter, r *http.Request, p Params) error {
	links, err := a.ctl.ListLinks(r.Context(), authorization(r), p.NS, p.Alias)
	if err != nil {
		return err
	}
	o := jsonw.Begin(make([]byte, 0, 64+160*len(links)))
	o.Key("links")
	o.B = append(o.B, '[')
	for i, l := range links {
		if i > 0 {
			o.B = append(o.B, ',')
		}
		lo := jsonw.Begin(o.B)
		lo.Str("link_id", l.LinkID)
		lo.Str("created_at", timefmt.Format(l.CreatedAt))
		lo.StrOrNull("expires_at", formatPtr(l.ExpiresAt))
		lo.StrOrNull("revoked_at", formatPtr(l.RevokedAt))
		lo.StrOrNull("label", l.Label)
		o.B = lo.End()
	}
	o.B = append(o.B, ']')
	return writeJSON(w, http.StatusOK, o.End())
}

// revokeLink serves DELETE …/links/{link_id} (spec 3.6).
func (a *API) revokeLink(w http.ResponseWriter, r *http.Request, p Params) error {
	l, err := a.ctl.RevokeLink(r.Context(), authorization(r), p.NS, p.Alias, p.LinkID)
	if err != nil {
		return err
	}
	o := jsonw.Begin(make([]byte, 0, 96))
	o.Str("link_id", l.LinkID)
	o.StrOrNull("revoked_at", formatPtr(l.RevokedAt))
	return writeJSON(w, http.StatusOK, o.End())
}
