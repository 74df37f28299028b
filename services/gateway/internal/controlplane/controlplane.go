// Package controlplane implements the operations of the control plane
// (spec 3.2 to 3.6) once, for every transport that offers them: the HTTP
// routes (package httpapi) and the public gRPC API (package grpcapi).
//
// An operation takes the caller's Authorization value, its path inputs and,
// where the HTTP route has a body, the body's members (Members: each value
// as its exact JSON text). It applies the spec's checks in the spec's
// order, calls the account and link services and returns a
// transport-neutral result. Errors are *wireerr.Error (or errors of the
// backing calls, which transports render as internal errors); each
// transport renders results and errors its own way.
package controlplane

import (
	"context"
	"errors"
	"strings"
	"time"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/authcache"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Bounds of spec 3.1, 3.4 and 3.6.
const (
	MaxBody           = 1 << 20
	MaxMetadata       = 64 << 10
	MaxStreamMetadata = 16 << 10
	MinLinkExpiry     = 60
	MaxLinkExpiry     = 31536000
	MaxLabelRunes     = 64
)

// StreamInfo is one live stream of a conversation, as inspect lists it.
type StreamInfo struct {
	StreamID       string
	StreamName     string
	OwnerAccountID string
	Metadata       string // JSON object text
	PeerIdentity   string // JSON object text, "" if none
	LastSeq        uint64
}

// Presence lists a conversation's live streams in join order.
type Presence interface {
	LiveStreams(ctx context.Context, conversationID string) ([]StreamInfo, error)
}

// Deps are what the operations need.
type Deps struct {
	Accounts  accountv1.AccountServiceClient
	Links     linkv1.LinkServiceClient
	Auth      *authcache.Cache
	Admission *admission.Checker
	Deriver   *ids.Deriver
	Presence  Presence // nil: no live streams known
	// Announce tells every gateway about a revocation or a rotation.
	AnnounceRevocation func(linkID string)
	AnnounceRotation   func(accountID string)
}

// Service runs control-plane operations. It is safe for concurrent use.
type Service struct {
	d Deps
}

// New returns the service.
func New(d Deps) *Service { return &Service{d: d} }

// Body returns the members of a request body. It is called only once the
// checks that precede reading the body passed, so a transport reads (and
// rejects: invalid_json, payload_too_large) the body at the spec's point.
type Body func() (Members, error)

// BearerCredential extracts the credential of an Authorization value
// `Bearer …` (scheme case-insensitive). ok is false when the value is
// empty, of another scheme, or has no credential.
func BearerCredential(authorization string) (string, bool) {
	if len(authorization) < 7 || !strings.EqualFold(authorization[:7], "bearer ") {
		return "", false
	}
	c := strings.TrimSpace(authorization[7:])
	return c, c != ""
}

// Authenticate resolves the Bearer credential of authorization: 401
// missing_credential without one, 401 invalid_credential for an unknown
// one.
func (s *Service) Authenticate(ctx context.Context, authorization string) (authcache.Account, error) {
	cred, ok := BearerCredential(authorization)
	if !ok {
		return authcache.Account{}, wireerr.New(wireerr.MissingCredential, "an Authorization: Bearer credential is required")
	}
	return s.d.Auth.Authenticate(ctx, cred)
}

// AuthenticateOwner authenticates and checks that the account owns
// namespace ns (403 namespace_mismatch).
func (s *Service) AuthenticateOwner(ctx context.Context, authorization, ns string) (authcache.Account, error) {
	acc, err := s.Authenticate(ctx, authorization)
	if err != nil {
		return acc, err
	}
	if acc.Namespace != ns {
		return acc, wireerr.New(wireerr.NamespaceMismatch, "the credential does not own this namespace")
	}
	return acc, nil
}

// PublicBase is the base of magic links (spec 2.3): the configured public
// URL, else https://host when the request came over TLS or through a proxy
// that says so (secure), else http://host.
func PublicBase(configured string, secure bool, host string) string {
	if configured != "" {
		return strings.TrimRight(configured, "/")
	}
	if secure {
		return "https://" + host
	}
	return "http://" + host
}

// MagicLink builds `{base}/{ns}/conversations/{alias}?t={token}`.
func MagicLink(base, ns, alias, token string) string {
	return base + "/" + ns + "/conversations/" + alias + "?t=" + token
}

// Account is the answer of an account creation or a rotation. The
// credential is shown only here.
type Account struct {
	AccountID  string
	Namespace  string
	Credential string
	CreatedAt  time.Time // creation only
	RotatedAt  time.Time // rotation only
}

// CreateAccount creates an account with namespace ns (spec 3.2). A
// transport passes "" when the request has no namespace string.
func (s *Service) CreateAccount(ctx context.Context, ns string) (Account, error) {
	if !ids.ValidNamespace(ns) {
		return Account{}, wireerr.New(wireerr.InvalidNamespace, "namespace must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	resp, err := s.d.Accounts.CreateAccount(ctx, &accountv1.CreateAccountRequest{Namespace: ns})
	if err != nil {
		return Account{}, grpcx.FromStatus(err)
	}
	return Account{
		AccountID:  resp.GetAccount().GetAccountId(),
		Namespace:  resp.GetAccount().GetNamespace(),
		Credential: resp.GetCredential(),
		CreatedAt:  resp.GetAccount().GetCreatedAt().AsTime(),
	}, nil
}

// RotateCredential rotates the caller's credential (spec 3.3) and tells
// every gateway to forget the old one.
func (s *Service) RotateCredential(ctx context.Context, authorization, ns string) (Account, error) {
	acc, err := s.AuthenticateOwner(ctx, authorization, ns)
	if err != nil {
		return Account{}, err
	}
	resp, err := s.d.Accounts.RotateCredential(ctx, &accountv1.RotateCredentialRequest{AccountId: acc.ID})
	if err != nil {
		return Account{}, grpcx.FromStatus(err)
	}
	s.d.Auth.Forget(acc.ID)
	if s.d.AnnounceRotation != nil {
		s.d.AnnounceRotation(acc.ID)
	}
	return Account{
		AccountID:  resp.GetAccount().GetAccountId(),
		Namespace:  resp.GetAccount().GetNamespace(),
		Credential: resp.GetCredential(),
		RotatedAt:  resp.GetAccount().GetRotatedAt().AsTime(),
	}, nil
}

// Minted is the answer of a mint (spec 3.4).
type Minted struct {
	ConversationID string
	Alias          string
	MagicLink      string
	StreamID       string
	StreamName     string
	Metadata       string // JSON object text, exactly as given
	StreamMetadata string // JSON object text, exactly as given
	CreatedAt      time.Time
	LinkID         string
	ExpiresAt      *time.Time
}

// Mint creates a conversation in ns with its first link (spec 3.4), checking
// in the spec's order: credential, namespace, then the body's members.
// issuer is the base of the magic link (PublicBase).
func (s *Service) Mint(ctx context.Context, authorization, ns, issuer string, body Body) (Minted, error) {
	acc, err := s.AuthenticateOwner(ctx, authorization, ns)
	if err != nil {
		return Minted{}, err
	}
	m, err := body()
	if err != nil {
		return Minted{}, err
	}
	alias, ok := m.String("alias")
	if !ok || (alias != "" && !ids.ValidAlias(alias)) {
		return Minted{}, wireerr.New(wireerr.InvalidAlias, "alias must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	streamName, ok := m.String("stream_name")
	if !ok || (streamName != "" && !ids.ValidStreamName(streamName)) {
		return Minted{}, wireerr.New(wireerr.InvalidStreamName, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
	}
	if streamName == "" {
		streamName = ids.NewDefaultStreamName()
	}
	if v, present := m["id_kind"]; present && string(v) != `"uuid"` {
		return Minted{}, wireerr.New(wireerr.UnsupportedIDKind, `id_kind accepts only "uuid"`)
	}
	metadata, ok := m.Object("metadata", MaxMetadata, "{}")
	if !ok {
		return Minted{}, wireerr.New(wireerr.InvalidMetadata, "metadata must be a JSON object of at most 64 KiB")
	}
	streamMetadata, ok := m.Object("stream_metadata", MaxStreamMetadata, "{}")
	if !ok {
		return Minted{}, wireerr.New(wireerr.InvalidStreamMeta, "stream_metadata must be a JSON object of at most 16 KiB")
	}
	expiresIn, hasExpiry, ok := m.Int("link_expires_in", MinLinkExpiry, MaxLinkExpiry)
	if !ok {
		return Minted{}, wireerr.New(wireerr.InvalidLinkExpiry, "link_expires_in must be an integer from 60 to 31536000")
	}
	req := &linkv1.CreateConversationRequest{
		Namespace:      ns,
		OwnerAccountId: acc.ID,
		Alias:          alias,
		MetadataJson:   metadata,
		Issuer:         issuer,
	}
	if hasExpiry {
		req.LinkExpiresInSeconds = &expiresIn
	}
	resp, err := s.d.Links.CreateConversation(ctx, req)
	if err != nil {
		return Minted{}, grpcx.FromStatus(err)
	}
	conv := resp.GetConversation()
	return Minted{
		ConversationID: conv.GetConversationId(),
		Alias:          conv.GetAlias(),
		MagicLink:      MagicLink(issuer, conv.GetNamespace(), conv.GetAlias(), resp.GetToken()),
		StreamID:       s.d.Deriver.StreamID(conv.GetConversationId(), acc.ID, streamName),
		StreamName:     streamName,
		Metadata:       conv.GetMetadataJson(),
		StreamMetadata: streamMetadata,
		CreatedAt:      conv.GetCreatedAt().AsTime(),
		LinkID:         resp.GetLink().GetLinkId(),
		ExpiresAt:      timePtr(resp.GetLink().GetExpiresAt()),
	}, nil
}

// Inspected is the answer of an inspect (spec 3.5).
type Inspected struct {
	Conversation *admission.Conversation
	// Streams are the live streams in join order.
	Streams []StreamInfo
}

// Inspect describes the conversation (ns, alias) with its live streams
// (spec 3.5). It is admitted by a valid link token, or, without a token,
// by the owner's Bearer credential.
func (s *Service) Inspect(ctx context.Context, authorization, ns, alias, token string) (Inspected, error) {
	if token == "" {
		if _, hasBearer := BearerCredential(authorization); !hasBearer {
			return Inspected{}, wireerr.New(wireerr.MissingToken, "a link token t or the owner's Bearer credential is required")
		}
		if _, err := s.AuthenticateOwner(ctx, authorization, ns); err != nil {
			return Inspected{}, err
		}
	}
	conv, err := s.conversation(ctx, ns, alias)
	if err != nil {
		return Inspected{}, err
	}
	if token != "" {
		if _, err := s.d.Admission.Verify(conv, token); err != nil {
			switch {
			case errors.Is(err, admission.ErrExpired):
				return Inspected{}, wireerr.New(wireerr.LinkExpired.WithHTTP(403), "the link has expired")
			case errors.Is(err, admission.ErrRevoked):
				return Inspected{}, wireerr.New(wireerr.LinkRevoked.WithHTTP(403), "the link was revoked")
			default:
				return Inspected{}, wireerr.New(wireerr.InvalidToken, "the link token is not valid for this conversation")
			}
		}
	}
	var streams []StreamInfo
	if s.d.Presence != nil {
		if streams, err = s.d.Presence.LiveStreams(ctx, conv.ID); err != nil {
			return Inspected{}, err
		}
	}
	return Inspected{Conversation: conv, Streams: streams}, nil
}

// conversation looks (ns, alias) up: 404 not_found when absent.
func (s *Service) conversation(ctx context.Context, ns, alias string) (*admission.Conversation, error) {
	if !ids.ValidNamespace(ns) || !ids.ValidAlias(alias) {
		return nil, wireerr.New(wireerr.NotFound, "no such conversation")
	}
	conv, err := s.d.Admission.Conversation(ctx, ns, alias)
	if errors.Is(err, admission.ErrNoConversation) {
		return nil, wireerr.New(wireerr.NotFound, "no such conversation")
	}
	return conv, err
}

// Link is one link of a conversation (spec 3.6). MagicLink is set only by
// CreateLink.
type Link struct {
	LinkID    string
	MagicLink string
	CreatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
	Label     *string
}

func linkOf(l *linkv1.Link) Link {
	return Link{
		LinkID:    l.GetLinkId(),
		CreatedAt: l.GetCreatedAt().AsTime(),
		ExpiresAt: timePtr(l.GetExpiresAt()),
		RevokedAt: timePtr(l.GetRevokedAt()),
		Label:     l.Label,
	}
}

// CreateLink issues another link for the conversation (ns, alias) (spec
// 3.6), for its owner. issuer is the base of the magic link.
func (s *Service) CreateLink(ctx context.Context, authorization, ns, alias, issuer string, body Body) (Link, error) {
	if _, err := s.AuthenticateOwner(ctx, authorization, ns); err != nil {
		return Link{}, err
	}
	conv, err := s.conversation(ctx, ns, alias)
	if err != nil {
		return Link{}, err
	}
	m, err := body()
	if err != nil {
		return Link{}, err
	}
	expiresIn, hasExpiry, ok := m.Int("expires_in", MinLinkExpiry, MaxLinkExpiry)
	if !ok {
		return Link{}, wireerr.New(wireerr.InvalidLinkExpiry, "expires_in must be an integer from 60 to 31536000")
	}
	req := &linkv1.CreateLinkRequest{ConversationId: conv.ID, Issuer: issuer}
	if hasExpiry {
		req.ExpiresInSeconds = &expiresIn
	}
	if v, present := m["label"]; present && !isNull(v) {
		label, ok := m.String("label")
		if !ok || label == "" || len([]rune(label)) > MaxLabelRunes {
			return Link{}, wireerr.New(wireerr.InvalidLabel, "label must be a string of 1 to 64 characters")
		}
		req.Label = &label
	}
	resp, err := s.d.Links.CreateLink(ctx, req)
	if err != nil {
		return Link{}, grpcx.FromStatus(err)
	}
	l := linkOf(resp.GetLink())
	l.MagicLink = MagicLink(issuer, conv.Namespace, conv.Alias, resp.GetToken())
	return l, nil
}

// ListLinks lists the conversation's links, oldest first, revoked ones
// included (spec 3.6), for its owner.
func (s *Service) ListLinks(ctx context.Context, authorization, ns, alias string) ([]Link, error) {
	if _, err := s.AuthenticateOwner(ctx, authorization, ns); err != nil {
		return nil, err
	}
	conv, err := s.conversation(ctx, ns, alias)
	if err != nil {
		return nil, err
	}
	resp, err := s.d.Links.ListLinks(ctx, &linkv1.ListLinksRequest{ConversationId: conv.ID})
	if err != nil {
		return nil, grpcx.FromStatus(err)
	}
	out := make([]Link, len(resp.GetLinks()))
	for i, l := range resp.GetLinks() {
		out[i] = linkOf(l)
	}
	return out, nil
}

// RevokeLink revokes a link of the conversation (spec 3.6), for its owner;
// a repeat returns the first revocation time. This gateway refuses the
// link at once, the others within 5 s.
func (s *Service) RevokeLink(ctx context.Context, authorization, ns, alias, linkID string) (Link, error) {
	if _, err := s.AuthenticateOwner(ctx, authorization, ns); err != nil {
		return Link{}, err
	}
	conv, err := s.conversation(ctx, ns, alias)
	if err != nil {
		return Link{}, err
	}
	if !ids.LinkIDRe.MatchString(linkID) {
		return Link{}, wireerr.New(wireerr.LinkNotFound, "no such link")
	}
	resp, err := s.d.Links.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: conv.ID, LinkId: linkID})
	if err != nil {
		return Link{}, grpcx.FromStatus(err)
	}
	if s.d.AnnounceRevocation != nil {
		s.d.AnnounceRevocation(linkID)
	}
	// This gateway refuses the link as soon as the caller hears it is
	// revoked; the others follow the announcement (within 5 s).
	if err := s.d.Admission.Revoked.Sync(ctx); err != nil {
		s.d.Admission.Revoked.Kick()
	}
	return linkOf(resp.GetLink()), nil
}

func timePtr(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime()
	return &v
}
