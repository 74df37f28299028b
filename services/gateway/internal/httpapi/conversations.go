package httpapi

import (
	"errors"
	"net/http"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/timefmt"
	"github.com/amsrouter/ams/services/internal/wireerr"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Bounds of spec 3.4 and 3.6.
const (
	MaxMetadata       = 64 << 10
	MaxStreamMetadata = 16 << 10
	MinLinkExpiry     = 60
	MaxLinkExpiry     = 31536000
	MaxLabelRunes     = 64
)

func tsPtr(t *timestamppb.Timestamp) *string {
	if t == nil {
		return nil
	}
	s := timefmt.Format(t.AsTime())
	return &s
}

// mint serves POST /v1/{ns}/conversations (spec 3.4), checking in the
// spec's order.
func (a *API) mint(w http.ResponseWriter, r *http.Request, p Params) error {
	acc, err := a.authenticateOwner(r, p.NS)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	m, err := object(body, true)
	if err != nil {
		return err
	}
	alias, ok := optString(m, "alias")
	if !ok || (alias != "" && !ids.ValidAlias(alias)) {
		return wireerr.New(wireerr.InvalidAlias, "alias must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	streamName, ok := optString(m, "stream_name")
	if !ok || (streamName != "" && !ids.ValidStreamName(streamName)) {
		return wireerr.New(wireerr.InvalidStreamName, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
	}
	if streamName == "" {
		streamName = ids.NewDefaultStreamName()
	}
	if v, present := m["id_kind"]; present && string(v) != `"uuid"` {
		return wireerr.New(wireerr.UnsupportedIDKind, `id_kind accepts only "uuid"`)
	}
	metadata, ok := optObject(m, "metadata", MaxMetadata, "{}")
	if !ok {
		return wireerr.New(wireerr.InvalidMetadata, "metadata must be a JSON object of at most 64 KiB")
	}
	streamMetadata, ok := optObject(m, "stream_metadata", MaxStreamMetadata, "{}")
	if !ok {
		return wireerr.New(wireerr.InvalidStreamMeta, "stream_metadata must be a JSON object of at most 16 KiB")
	}
	expiresIn, hasExpiry, ok := optInt(m, "link_expires_in", MinLinkExpiry, MaxLinkExpiry)
	if !ok {
		return wireerr.New(wireerr.InvalidLinkExpiry, "link_expires_in must be an integer from 60 to 31536000")
	}
	req := &linkv1.CreateConversationRequest{
		Namespace:      p.NS,
		OwnerAccountId: acc.ID,
		Alias:          alias,
		MetadataJson:   metadata,
		Issuer:         a.publicBase(r),
	}
	if hasExpiry {
		req.LinkExpiresInSeconds = &expiresIn
	}
	resp, err := a.d.Links.CreateConversation(r.Context(), req)
	if err != nil {
		return grpcx.FromStatus(err)
	}
	conv := resp.GetConversation()
	o := jsonw.Begin(make([]byte, 0, 512+len(metadata)+len(streamMetadata)))
	o.Str("conversation_id", conv.GetConversationId())
	o.Str("alias", conv.GetAlias())
	o.Str("magic_link", MagicLink(req.Issuer, conv.GetNamespace(), conv.GetAlias(), resp.GetToken()))
	o.Str("stream_id", a.d.Deriver.StreamID(conv.GetConversationId(), acc.ID, streamName))
	o.Str("stream_name", streamName)
	o.RawString("metadata", conv.GetMetadataJson())
	o.RawString("stream_metadata", streamMetadata)
	o.Str("created_at", timefmt.Format(conv.GetCreatedAt().AsTime()))
	o.Str("link_id", resp.GetLink().GetLinkId())
	o.StrOrNull("expires_at", tsPtr(resp.GetLink().GetExpiresAt()))
	return writeJSON(w, http.StatusCreated, o.End())
}

// inspect serves GET /v1/{ns}/conversations/{alias} (spec 3.5): admitted by
// a valid `t`, or without `t` by the owner's Bearer.
func (a *API) inspect(w http.ResponseWriter, r *http.Request, p Params) error {
	token := r.URL.Query().Get("t")
	_, hasBearer := BearerCredential(r)
	if token == "" {
		if !hasBearer {
			return wireerr.New(wireerr.MissingToken, "a link token t or the owner's Bearer credential is required")
		}
		if _, err := a.authenticateOwner(r, p.NS); err != nil {
			return err
		}
	}
	conv, err := a.conversation(r, p)
	if err != nil {
		return err
	}
	if token != "" {
		if _, err := a.d.Admission.Verify(conv, token); err != nil {
			switch {
			case errors.Is(err, admission.ErrExpired):
				return wireerr.New(wireerr.LinkExpired.WithHTTP(http.StatusForbidden), "the link has expired")
			case errors.Is(err, admission.ErrRevoked):
				return wireerr.New(wireerr.LinkRevoked.WithHTTP(http.StatusForbidden), "the link was revoked")
			default:
				return wireerr.New(wireerr.InvalidToken, "the link token is not valid for this conversation")
			}
		}
	}
	var streams []StreamInfo
	if a.d.Presence != nil {
		if streams, err = a.d.Presence.LiveStreams(r.Context(), conv.ID); err != nil {
			return err
		}
	}
	o := jsonw.Begin(make([]byte, 0, 512+len(conv.Metadata)))
	o.Str("conversation_id", conv.ID)
	o.Str("namespace", conv.Namespace)
	o.Str("alias", conv.Alias)
	o.RawString("metadata", conv.Metadata)
	o.Str("created_at", timefmt.Format(conv.CreatedAt))
	o.Str("id_kind", "uuid")
	o.Key("streams")
	o.B = AppendStreams(o.B, streams)
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

// conversation looks the path's conversation up: 404 not_found when absent.
func (a *API) conversation(r *http.Request, p Params) (*admission.Conversation, error) {
	if !ids.ValidNamespace(p.NS) || !ids.ValidAlias(p.Alias) {
		return nil, wireerr.New(wireerr.NotFound, "no such conversation")
	}
	conv, err := a.d.Admission.Conversation(r.Context(), p.NS, p.Alias)
	if errors.Is(err, admission.ErrNoConversation) {
		return nil, wireerr.New(wireerr.NotFound, "no such conversation")
	}
	return conv, err
}

// createLink serves POST …/links (spec 3.6).
func (a *API) createLink(w http.ResponseWriter, r *http.Request, p Params) error {
	if _, err := a.authenticateOwner(r, p.NS); err != nil {
		return err
	}
	conv, err := a.conversation(r, p)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	m, err := object(body, true)
	if err != nil {
		return err
	}
	expiresIn, hasExpiry, ok := optInt(m, "expires_in", MinLinkExpiry, MaxLinkExpiry)
	if !ok {
		return wireerr.New(wireerr.InvalidLinkExpiry, "expires_in must be an integer from 60 to 31536000")
	}
	req := &linkv1.CreateLinkRequest{ConversationId: conv.ID, Issuer: a.publicBase(r)}
	if hasExpiry {
		req.ExpiresInSeconds = &expiresIn
	}
	if v, present := m["label"]; present && !isNull(v) {
		label, ok := optString(m, "label")
		if !ok || label == "" || len([]rune(label)) > MaxLabelRunes {
			return wireerr.New(wireerr.InvalidLabel, "label must be a string of 1 to 64 characters")
		}
		req.Label = &label
	}
	resp, err := a.d.Links.CreateLink(r.Context(), req)
	if err != nil {
		return grpcx.FromStatus(err)
	}
	l := resp.GetLink()
	o := jsonw.Begin(make([]byte, 0, 640))
	o.Str("link_id", l.GetLinkId())
	o.Str("magic_link", MagicLink(req.Issuer, conv.Namespace, conv.Alias, resp.GetToken()))
	o.Str("created_at", timefmt.Format(l.GetCreatedAt().AsTime()))
	o.StrOrNull("expires_at", tsPtr(l.GetExpiresAt()))
	o.StrOrNull("label", l.Label)
	return writeJSON(w, http.StatusCreated, o.End())
}

// listLinks serves GET …/links (spec 3.6).
func (a *API) listLinks(w http.ResponseWriter, r *http.Request, p Params) error {
	if _, err := a.authenticateOwner(r, p.NS); err != nil {
		return err
	}
	conv, err := a.conversation(r, p)
	if err != nil {
		return err
	}
	resp, err := a.d.Links.ListLinks(r.Context(), &linkv1.ListLinksRequest{ConversationId: conv.ID})
	if err != nil {
		return grpcx.FromStatus(err)
	}
	o := jsonw.Begin(make([]byte, 0, 64+160*len(resp.GetLinks())))
	o.Key("links")
	o.B = append(o.B, '[')
	for i, l := range resp.GetLinks() {
		if i > 0 {
			o.B = append(o.B, ',')
		}
		lo := jsonw.Begin(o.B)
		lo.Str("link_id", l.GetLinkId())
		lo.Str("created_at", timefmt.Format(l.GetCreatedAt().AsTime()))
		lo.StrOrNull("expires_at", tsPtr(l.GetExpiresAt()))
		lo.StrOrNull("revoked_at", tsPtr(l.GetRevokedAt()))
		lo.StrOrNull("label", l.Label)
		o.B = lo.End()
	}
	o.B = append(o.B, ']')
	return writeJSON(w, http.StatusOK, o.End())
}

// revokeLink serves DELETE …/links/{link_id} (spec 3.6).
func (a *API) revokeLink(w http.ResponseWriter, r *http.Request, p Params) error {
	if _, err := a.authenticateOwner(r, p.NS); err != nil {
		return err
	}
	conv, err := a.conversation(r, p)
	if err != nil {
		return err
	}
	if !ids.LinkIDRe.MatchString(p.LinkID) {
		return wireerr.New(wireerr.LinkNotFound, "no such link")
	}
	resp, err := a.d.Links.RevokeLink(r.Context(), &linkv1.RevokeLinkRequest{ConversationId: conv.ID, LinkId: p.LinkID})
	if err != nil {
		return grpcx.FromStatus(err)
	}
	if a.d.AnnounceRevocation != nil {
		a.d.AnnounceRevocation(p.LinkID)
	}
	// This gateway refuses the link as soon as the caller hears it is
	// revoked; the others follow the announcement (within 5 s).
	if err := a.d.Admission.Revoked.Sync(r.Context()); err != nil {
		a.d.Admission.Revoked.Kick()
	}
	o := jsonw.Begin(make([]byte, 0, 96))
	o.Str("link_id", resp.GetLink().GetLinkId())
	o.StrOrNull("revoked_at", tsPtr(resp.GetLink().GetRevokedAt()))
	return writeJSON(w, http.StatusOK, o.End())
}
