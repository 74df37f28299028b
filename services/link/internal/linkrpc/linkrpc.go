// Package linkrpc implements linkv1.LinkService: request validation,
// conversation and link creation with minting of the admission token,
// revocation, the published key set and the revocation feed.
//
// Every error a handler returns is a *wireerr.Error with a catalogue code
// (grpcx's interceptor turns it into a status), except store failures,
// which leave as the generic internal error. Handlers never log tokens,
// key material or metadata.
package linkrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/linktoken"
	"github.com/amsrouter/ams/services/internal/wireerr"
	"github.com/amsrouter/ams/services/link/internal/keyset"
	"github.com/amsrouter/ams/services/link/internal/store"
)

// Limits of spec 3.4 and 3.6.
const (
	// MaxMetadataBytes is the largest metadata_json accepted (64 KiB).
	MaxMetadataBytes = 65536
	// MinLinkExpiry and MaxLinkExpiry bound a link's lifetime in seconds.
	MinLinkExpiry = 60
	MaxLinkExpiry = 31536000
	// MaxLabelChars is the longest label, in characters.
	MaxLabelChars = 64
	// AliasDraws is how many random aliases are tried (the first and 8
	// redraws) before alias_taken.
	AliasDraws = 9
	// MaxRevocations is the default and largest ListRevocations page.
	MaxRevocations = 1000
)

// Server is the LinkService implementation.
type Server struct {
	linkv1.UnimplementedLinkServiceServer
	store store.Store
	keys  *keyset.Set
	now   func() time.Time
	log   *slog.Logger
}

// New returns a server over the store, signing with keys. now is the clock
// (nil: time.Now).
func New(st store.Store, keys *keyset.Set, now func() time.Time, log *slog.Logger) *Server {
	if now == nil {
		now = time.Now
	}
	return &Server{store: st, keys: keys, now: now, log: log}
}

// ValidateMetadata returns the metadata to store: the submitted bytes
// unchanged, or `{}` when empty. It must be UTF-8 JSON whose first
// non-space byte is `{`, at most MaxMetadataBytes long.
func ValidateMetadata(md string) (string, error) {
	if md == "" {
		return "{}", nil
	}
	if len(md) > MaxMetadataBytes {
		return "", wireerr.Newf(wireerr.InvalidMetadata, "metadata is larger than %d bytes", MaxMetadataBytes)
	}
	i := 0
	for i < len(md) && (md[i] == ' ' || md[i] == '\t' || md[i] == '\n' || md[i] == '\r') {
		i++
	}
	if i == len(md) || md[i] != '{' || !utf8.ValidString(md) || !json.Valid([]byte(md)) {
		return "", wireerr.New(wireerr.InvalidMetadata, "metadata must be a JSON object")
	}
	return md, nil
}

// ValidateExpiry returns a link's lifetime: zero (never expires) when
// absent, else seconds in MinLinkExpiry..MaxLinkExpiry.
func ValidateExpiry(seconds *int64) (time.Duration, error) {
	if seconds == nil {
		return 0, nil
	}
	if *seconds < MinLinkExpiry || *seconds > MaxLinkExpiry {
		return 0, wireerr.Newf(wireerr.InvalidLinkExpiry, "link expiry must be %d..%d seconds", MinLinkExpiry, MaxLinkExpiry)
	}
	return time.Duration(*seconds) * time.Second, nil
}

// ValidateLabel accepts an absent label or one of 1..MaxLabelChars
// characters of UTF-8 without NUL (which Postgres text cannot hold).
func ValidateLabel(label *string) error {
	if label == nil {
		return nil
	}
	if !utf8.ValidString(*label) || strings.IndexByte(*label, 0) >= 0 {
		return wireerr.New(wireerr.InvalidLabel, "label must be UTF-8 text without NUL")
	}
	if n := utf8.RuneCountInString(*label); n < 1 || n > MaxLabelChars {
		return wireerr.Newf(wireerr.InvalidLabel, "label must be 1..%d characters", MaxLabelChars)
	}
	return nil
}

func validOwner(id string) bool {
	return ids.AccountIDRe.MatchString(id) || ids.AnonAccountIDRe.MatchString(id)
}

// badRequest is a caller's (gateway's) bug, not a client's mistake: it
// surfaces as internal_error and is logged by the interceptor.
func badRequest(msg string) error {
	return wireerr.New(wireerr.Internal, "bad link service request: "+msg)
}

// CreateConversation creates a conversation and its first link.
func (s *Server) CreateConversation(ctx context.Context, req *linkv1.CreateConversationRequest) (*linkv1.CreateConversationResponse, error) {
	if !ids.ValidNamespace(req.GetNamespace()) {
		return nil, wireerr.New(wireerr.InvalidNamespace, "namespace is not valid")
	}
	if !validOwner(req.GetOwnerAccountId()) {
		return nil, badRequest("owner_account_id is not an account id")
	}
	if req.GetIssuer() == "" {
		return nil, badRequest("issuer is empty")
	}
	explicit := req.GetAlias() != ""
	if explicit && !ids.ValidAlias(req.GetAlias()) {
		return nil, wireerr.New(wireerr.InvalidAlias, "alias must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	md, err := ValidateMetadata(req.GetMetadataJson())
	if err != nil {
		return nil, err
	}
	ttl, err := ValidateExpiry(req.LinkExpiresInSeconds)
	if err != nil {
		return nil, err
	}

	now := store.Millis(s.now())
	key := s.keys.Active()
	c := store.Conversation{
		ID:             ids.NewConversationID(now),
		Namespace:      req.GetNamespace(),
		OwnerAccountID: req.GetOwnerAccountId(),
		MetadataJSON:   md,
		CreatedAt:      now,
	}
	l := store.Link{ID: ids.NewLinkID(now), ConversationID: c.ID, KeyID: key.ID, CreatedAt: now}
	if ttl > 0 {
		l.ExpiresAt = now.Add(ttl)
	}
	for draw := 1; ; draw++ {
		c.Alias = req.GetAlias()
		if !explicit {
			c.Alias = ids.NewRandomAlias()
		}
		// Minted before storing: a conversation is never stored without
		// the token its caller gets.
		tok, err := linktoken.Mint(key, req.GetIssuer(), c.ID, c.Namespace, c.Alias, l.ID, now, l.ExpiresAt)
		if err != nil {
			return nil, err
		}
		err = s.store.CreateConversation(ctx, c, l)
		switch {
		case err == nil:
			s.log.DebugContext(ctx, "conversation created", "conversation_id", c.ID, "namespace", c.Namespace,
				"alias", c.Alias, "link_id", l.ID, "kid", l.KeyID, "alias_draws", draw)
			return &linkv1.CreateConversationResponse{Conversation: conversationPB(c), Link: linkPB(l), Token: tok}, nil
		case errors.Is(err, store.ErrAliasTaken):
			if explicit || draw >= AliasDraws {
				return nil, wireerr.New(wireerr.AliasTaken, "alias is taken in this namespace")
			}
		default:
			return nil, fmt.Errorf("create conversation: %w", err)
		}
	}
}

// GetConversation looks a conversation up by namespace and alias.
func (s *Server) GetConversation(ctx context.Context, req *linkv1.GetConversationRequest) (*linkv1.Conversation, error) {
	if !ids.ValidNamespace(req.GetNamespace()) || !ids.ValidAlias(req.GetAlias()) {
		return nil, wireerr.New(wireerr.NotFound, "no such conversation")
	}
	c, err := s.store.ConversationByAlias(ctx, req.GetNamespace(), req.GetAlias())
	if err != nil {
		return nil, convErr(err)
	}
	return conversationPB(c), nil
}

func convErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return wireerr.New(wireerr.NotFound, "no such conversation")
	}
	return fmt.Errorf("look up conversation: %w", err)
}

func (s *Server) conversation(ctx context.Context, id string) (store.Conversation, error) {
	if !ids.ConversationIDRe.MatchString(id) {
		return store.Conversation{}, wireerr.New(wireerr.NotFound, "no such conversation")
	}
	c, err := s.store.ConversationByID(ctx, id)
	if err != nil {
		return store.Conversation{}, convErr(err)
	}
	return c, nil
}

// CreateLink mints another link for a conversation.
func (s *Server) CreateLink(ctx context.Context, req *linkv1.CreateLinkRequest) (*linkv1.CreateLinkResponse, error) {
	if req.GetIssuer() == "" {
		return nil, badRequest("issuer is empty")
	}
	c, err := s.conversation(ctx, req.GetConversationId())
	if err != nil {
		return nil, err
	}
	ttl, err := ValidateExpiry(req.ExpiresInSeconds)
	if err != nil {
		return nil, err
	}
	if err := ValidateLabel(req.Label); err != nil {
		return nil, err
	}
	now := store.Millis(s.now())
	key := s.keys.Active()
	l := store.Link{ID: ids.NewLinkID(now), ConversationID: c.ID, KeyID: key.ID, CreatedAt: now, Label: req.Label}
	if ttl > 0 {
		l.ExpiresAt = now.Add(ttl)
	}
	tok, err := linktoken.Mint(key, req.GetIssuer(), c.ID, c.Namespace, c.Alias, l.ID, now, l.ExpiresAt)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateLink(ctx, l); err != nil {
		return nil, convErr(err)
	}
	s.log.DebugContext(ctx, "link created", "conversation_id", c.ID, "link_id", l.ID, "kid", l.KeyID)
	return &linkv1.CreateLinkResponse{Link: linkPB(l), Token: tok}, nil
}

// ListLinks lists a conversation's links, oldest first.
func (s *Server) ListLinks(ctx context.Context, req *linkv1.ListLinksRequest) (*linkv1.ListLinksResponse, error) {
	c, err := s.conversation(ctx, req.GetConversationId())
	if err != nil {
		return nil, err
	}
	links, err := s.store.ListLinks(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := &linkv1.ListLinksResponse{Links: make([]*linkv1.Link, 0, len(links))}
	for _, l := range links {
		out.Links = append(out.Links, linkPB(l))
	}
	return out, nil
}

// RevokeLink revokes a link; revoking again returns the first revoked_at.
func (s *Server) RevokeLink(ctx context.Context, req *linkv1.RevokeLinkRequest) (*linkv1.RevokeLinkResponse, error) {
	if !ids.ConversationIDRe.MatchString(req.GetConversationId()) || !ids.LinkIDRe.MatchString(req.GetLinkId()) {
		return nil, wireerr.New(wireerr.LinkNotFound, "no such link")
	}
	l, err := s.store.RevokeLink(ctx, req.GetConversationId(), req.GetLinkId(), store.Millis(s.now()))
	if errors.Is(err, store.ErrLinkNotFound) {
		return nil, wireerr.New(wireerr.LinkNotFound, "no such link")
	}
	if err != nil {
		return nil, fmt.Errorf("revoke link: %w", err)
	}
	s.log.DebugContext(ctx, "link revoked", "conversation_id", l.ConversationID, "link_id", l.ID, "kid", l.KeyID)
	return &linkv1.RevokeLinkResponse{Link: linkPB(l)}, nil
}

// GetKeySet returns the published verification keys.
func (s *Server) GetKeySet(ctx context.Context, _ *linkv1.GetKeySetRequest) (*linkv1.GetKeySetResponse, error) {
	keys := s.keys.Published(ctx)
	out := &linkv1.GetKeySetResponse{Keys: make([]*linkv1.PublicKey, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, &linkv1.PublicKey{Kid: k.ID, Ed25519: k.Key, Active: k.Active})
	}
	return out, nil
}

// ListRevocations returns revocations after a cursor.
func (s *Server) ListRevocations(ctx context.Context, req *linkv1.ListRevocationsRequest) (*linkv1.ListRevocationsResponse, error) {
	limit := int(req.GetLimit())
	if limit <= 0 || limit > MaxRevocations {
		limit = MaxRevocations
	}
	after := max(req.GetAfter(), 0)
	revs, next, err := s.store.ListRevocations(ctx, after, limit, s.now())
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	out := &linkv1.ListRevocationsResponse{Revocations: make([]*linkv1.Revocation, 0, len(revs)), Next: next}
	for _, r := range revs {
		out.Revocations = append(out.Revocations, &linkv1.Revocation{
			LinkId:         r.LinkID,
			ConversationId: r.ConversationID,
			RevokedAt:      ts(r.RevokedAt),
			LinkExpiresAt:  ts(r.LinkExpiresAt),
		})
	}
	return out, nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func conversationPB(c store.Conversation) *linkv1.Conversation {
	return &linkv1.Conversation{
		ConversationId: c.ID,
		Namespace:      c.Namespace,
		Alias:          c.Alias,
		OwnerAccountId: c.OwnerAccountID,
		MetadataJson:   c.MetadataJSON,
		CreatedAt:      ts(c.CreatedAt),
	}
}

func linkPB(l store.Link) *linkv1.Link {
	return &linkv1.Link{
		LinkId:         l.ID,
		ConversationId: l.ConversationID,
		CreatedAt:      ts(l.CreatedAt),
		ExpiresAt:      ts(l.ExpiresAt),
		RevokedAt:      ts(l.RevokedAt),
		Label:          l.Label,
	}
}
