// Package wsconn is the WebSocket transport of the stream plane (spec 4):
// the upgrade, the connect checks reported as close codes, one reader loop
// per connection, and a writer that coalesces queued frames into one
// socket write.
//
// It is built on gobwas/ws, which does the handshake and framing but
// leaves buffering to us: the writer puts every queued frame into one
// buffer and flushes once, where a message-at-a-time API costs a syscall
// per token.
package wsconn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/authcache"
	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Admitter runs the connect checks of spec 4.2 shared by the WebSocket,
// SSE and gRPC transports.
type Admitter struct {
	Auth      *authcache.Cache
	Admission *admission.Checker
	// Log records the causes of internal errors; nil: not logged.
	Log *slog.Logger
}

// Authorized is the outcome of checks 1–4: the conversation, the link that
// admitted the caller and the caller's account ("" for an observer
// without a credential).
type Authorized struct {
	Conversation *admission.Conversation
	Admission    admission.Admission
	AccountID    string
}

// Authorize applies checks 1–4 of spec 4.2 in order: the token, the
// conversation (before the token is checked), the token, the credential
// (optional for an observer when optionalCredential is set).
func (a *Admitter) Authorize(ctx context.Context, ns, alias string, raw *connreq.Raw, optionalCredential bool) (Authorized, error) {
	var out Authorized
	// 1. A token.
	if raw.Token == "" {
		return out, wireerr.New(wireerr.InvalidMagicLink, "the link token t is missing")
	}
	// 2. The conversation, before the token is checked.
	if !ids.ValidNamespace(ns) || !ids.ValidAlias(alias) {
		return out, wireerr.New(wireerr.ConversationNotFound, "no such conversation")
	}
	conv, err := a.Admission.Conversation(ctx, ns, alias)
	if errors.Is(err, admission.ErrNoConversation) {
		return out, wireerr.New(wireerr.ConversationNotFound, "no such conversation")
	}
	if err != nil {
		return out, a.internal(err)
	}
	out.Conversation = conv
	// 3. The token.
	out.Admission, err = a.Admission.Verify(conv, raw.Token)
	switch {
	case err == nil:
	case errors.Is(err, admission.ErrExpired):
		return out, wireerr.New(wireerr.LinkExpired, "the link has expired")
	case errors.Is(err, admission.ErrRevoked):
		return out, wireerr.New(wireerr.LinkRevoked, "the link was revoked")
	case errors.Is(err, admission.ErrInvalid):
		return out, wireerr.New(wireerr.InvalidMagicLink, "the link token is not valid for this conversation")
	default:
		return out, a.internal(err)
	}
	// 4. The credential.
	if raw.BearerWithoutProtocol {
		return out, wireerr.New(wireerr.InvalidCredential, "ams.bearer.* requires the ams.v1 subprotocol")
	}
	switch {
	case raw.HasCredential:
		acc, err := a.Auth.Authenticate(ctx, raw.Credential)
		if err != nil {
			if we, ok := wireerr.As(err); ok && we.Code.Name == wireerr.InvalidCredential.Name {
				return out, we
			}
			return out, a.internal(err)
		}
		out.AccountID = acc.ID
	case !optionalCredential:
		return out, wireerr.New(wireerr.InvalidCredential, "a Bearer credential is required")
	}
	return out, nil
}

// Admit applies checks 1–7 of spec 4.2 in order and returns the join
// request for the hub, or the first failing check's error.
func (a *Admitter) Admit(ctx context.Context, ns, alias string, raw *connreq.Raw, transport string) (hub.JoinRequest, connreq.Request, error) {
	var jr hub.JoinRequest
	auth, err := a.Authorize(ctx, ns, alias, raw, connreq.Flag(raw.Observe))
	if err != nil {
		return jr, connreq.Request{}, err
	}
	// 5–7. Headers.
	req, err := raw.Parse()
	if err != nil {
		return jr, req, err
	}
	jr = hub.JoinRequest{
		Conversation:  auth.Conversation,
		LinkID:        auth.Admission.LinkID,
		AccountID:     auth.AccountID,
		Observer:      req.Observe,
		StreamName:    req.StreamName,
		Metadata:      req.Metadata,
		MetadataSet:   req.MetadataSet,
		PeerIdentity:  req.PeerIdentity,
		SelfSubscribe: req.SelfSubscribe,
		Filter:        req.Filter,
		FilterSet:     req.FilterSet,
		Cursor:        req.Cursor,
		Batch:         req.Batch,
		Transport:     transport,
	}
	return jr, req, nil
}

// internal maps an unexpected admission failure: a backing service that
// cannot answer is an internal error for this connection.
func (a *Admitter) internal(err error) error {
	if we, ok := wireerr.As(err); ok && we.Code.Close != 0 {
		return we
	}
	if a.Log != nil {
		a.Log.Error("admission failed", "err", err)
	}
	return wireerr.New(wireerr.Internal, "admission failed")
}

// IsWebSocket reports a WebSocket upgrade request (Upgrade value
// case-insensitive).
func IsWebSocket(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "websocket") {
				return true
			}
		}
	}
	return false
}

// AcceptsSSE reports an `Accept` that contains text/event-stream.
func AcceptsSSE(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/event-stream") {
			return true
		}
	}
	return false
}
