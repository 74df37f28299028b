package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/gateway/internal/httpapi"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/timefmt"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

func formatTS(t time.Time) string { return timefmt.Format(t) }

// checkCreate applies the checks of spec 3.4 to the tool's arguments, in
// order, and returns the alias ("" for a random one), stream name,
// metadata, stream metadata and expiry.
func checkCreate(m map[string]json.RawMessage) (alias, streamName, metadata, streamMetadata string, expiresIn int64, hasExpiry bool, err error) {
	alias, _, ok := argString(m, "alias")
	if !ok || (alias != "" && !ids.ValidAlias(alias)) {
		return "", "", "", "", 0, false, domainErr(wireerr.InvalidAlias.Name, "alias must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	streamName, _, ok = argString(m, "stream_name")
	if !ok || (streamName != "" && !ids.ValidStreamName(streamName)) {
		return "", "", "", "", 0, false, domainErr(wireerr.InvalidStreamName.Name, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
	}
	if streamName == "" {
		streamName = ids.NewDefaultStreamName()
	}
	if v, present := m["id_kind"]; present && string(bytes.TrimSpace(v)) != `"uuid"` {
		return "", "", "", "", 0, false, domainErr(wireerr.UnsupportedIDKind.Name, `id_kind accepts only "uuid"`)
	}
	metadata, present, ok := argObject(m, "metadata")
	if !ok || len(metadata) > httpapi.MaxMetadata {
		return "", "", "", "", 0, false, domainErr(wireerr.InvalidMetadata.Name, "metadata must be a JSON object of at most 64 KiB")
	}
	if !present {
		metadata = "{}"
	}
	streamMetadata, present, ok = argObject(m, "stream_metadata")
	if !ok || len(streamMetadata) > httpapi.MaxStreamMetadata {
		return "", "", "", "", 0, false, domainErr(wireerr.InvalidStreamMeta.Name, "stream_metadata must be a JSON object of at most 16 KiB")
	}
	if !present {
		streamMetadata = "{}"
	}
	n, hasExpiry, ok := argInt(m, "link_expires_in", httpapi.MinLinkExpiry, httpapi.MaxLinkExpiry)
	if !ok {
		return "", "", "", "", 0, false, domainErr(wireerr.InvalidLinkExpiry.Name, "link_expires_in must be an integer from 60 to 31536000")
	}
	return alias, streamName, metadata, streamMetadata, int64(n), hasExpiry, nil
}

// CreateConversation mints a conversation owned by the session's
// persistent account (spec 3.4 body).
func (h *callHost) CreateConversation(ctx context.Context, a *createArgs) ([]byte, error) {
	rec, _, err := h.srv.store.get(ctx, h.id)
	if err != nil {
		return nil, err
	}
	if rec.BadCredential || rec.Namespace == "" {
		return nil, domainErr(wireerr.InvalidCredential.Name, "creating a conversation needs a persistent account (Bearer credential)")
	}
	alias, streamName, metadata, streamMetadata, expiresIn, hasExpiry, err := checkCreate(a.Body)
	if err != nil {
		return nil, err
	}
	req := &linkv1.CreateConversationRequest{
		Namespace:      rec.Namespace,
		OwnerAccountId: rec.Account,
		Alias:          alias,
		MetadataJson:   metadata,
		Issuer:         h.base,
	}
	if hasExpiry {
		req.LinkExpiresInSeconds = &expiresIn
	}
	resp, err := h.srv.cfg.Links.CreateConversation(ctx, req)
	if err != nil {
		return nil, grpcx.FromStatus(err)
	}
	conv := resp.GetConversation()
	o := jsonw.Begin(make([]byte, 0, 512+len(metadata)+len(streamMetadata)))
	o.Str("conversation_id", conv.GetConversationId())
	o.Str("alias", conv.GetAlias())
	o.Str("magic_link", httpapi.MagicLink(h.base, conv.GetNamespace(), conv.GetAlias(), resp.GetToken()))
	o.Str("stream_id", h.srv.cfg.Deriver.StreamID(conv.GetConversationId(), rec.Account, streamName))
	o.Str("stream_name", streamName)
	o.RawString("metadata", conv.GetMetadataJson())
	o.RawString("stream_metadata", streamMetadata)
	o.Str("created_at", timefmt.Format(conv.GetCreatedAt().AsTime()))
	o.Str("link_id", resp.GetLink().GetLinkId())
	if e := resp.GetLink().GetExpiresAt(); e != nil {
		o.Str("expires_at", timefmt.Format(e.AsTime()))
	} else {
		o.Null("expires_at")
	}
	return o.End(), nil
}

// known returns the session's conversation with that id, if it knows it
// (its pre-bound or last joined one), and its own stream id there.
func (h *callHost) known(ctx context.Context, id string) (*convRef, string, error) {
	rec, _, err := h.srv.store.get(ctx, h.id)
	if err != nil {
		return nil, "", err
	}
	own := ""
	if rec.Conv != nil && rec.Conv.ID == id {
		if rec.State == stateJoined {
			own = h.srv.cfg.Deriver.StreamID(id, rec.Account, rec.Name)
		}
		return rec.Conv, own, nil
	}
	if rec.Pre != nil && rec.Pre.ID == id {
		return rec.Pre, own, nil
	}
	return nil, "", nil
}

// Conversation is the ams://conversations/{id} resource.
func (h *callHost) Conversation(ctx context.Context, id string) ([]byte, bool, error) {
	ref, _, err := h.known(ctx, id)
	if err != nil || ref == nil {
		return nil, false, err
	}
	conv, err := h.srv.cfg.Admission.Conversation(ctx, ref.NS, ref.Alias)
	if err != nil {
		return nil, false, err
	}
	streams, err := h.liveStreams(ctx, id, "")
	if err != nil {
		return nil, false, err
	}
	o := jsonw.Begin(make([]byte, 0, 512+len(conv.Metadata)))
	o.Str("conversation_id", conv.ID)
	o.Str("alias", conv.Alias)
	o.Str("namespace", conv.Namespace)
	o.Str("created_at", timefmt.Format(conv.CreatedAt))
	o.RawString("metadata", conv.Metadata)
	o.Key("streams")
	o.B = httpapi.AppendStreams(o.B, streams)
	return o.End(), true, nil
}

// Peers is the ams://conversations/{id}/peers resource: the live streams
// but the session's own.
func (h *callHost) Peers(ctx context.Context, id string) ([]byte, bool, error) {
	ref, own, err := h.known(ctx, id)
	if err != nil || ref == nil {
		return nil, false, err
	}
	streams, err := h.liveStreams(ctx, id, own)
	if err != nil {
		return nil, false, err
	}
	o := jsonw.Begin(nil)
	o.Key("peers")
	o.B = httpapi.AppendStreams(o.B, streams)
	return o.End(), true, nil
}

func (h *callHost) liveStreams(ctx context.Context, id, except string) ([]httpapi.StreamInfo, error) {
	list, err := h.srv.cfg.Hub.LiveStreams(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.StreamInfo, 0, len(list))
	for _, s := range list {
		if s.ID == except {
			continue
		}
		out = append(out, httpapi.StreamInfo{StreamID: s.ID, StreamName: s.Name, OwnerAccountID: s.Owner,
			Metadata: s.Metadata, PeerIdentity: s.PeerIdentity, LastSeq: s.LastSeq})
	}
	return out, nil
}
