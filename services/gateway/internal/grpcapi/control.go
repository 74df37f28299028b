package grpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/controlplane"
	"github.com/amsrouter/ams/services/internal/timefmt"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// first returns the first value of a metadata key, "" if absent.
func first(md metadata.MD, key string) string {
	if vs := md.Get(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// authorization is the call's `authorization` metadata, "" if absent.
func authorization(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return first(md, "authorization")
}

// issuer is the base of the magic links a call mints (spec 2.3): the
// configured public URL, else the call's :authority, https when the call
// came over TLS or through a proxy that says so.
func (d *Deps) issuer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	secure := strings.EqualFold(first(md, "x-forwarded-proto"), "https")
	if p, ok := peer.FromContext(ctx); ok && p.AuthInfo != nil {
		if _, tls := p.AuthInfo.(credentials.TLSInfo); tls {
			secure = true
		}
	}
	return controlplane.PublicBase(d.PublicURL, secure, first(md, ":authority"))
}

// fail turns an operation's error into the call's: the catalogue code in
// the `ams-error` trailer and the error itself, which the server's error
// interceptor maps to the status of its HTTP status (spec 5.4) with an
// ErrorInfo. Errors outside the catalogue are logged once by that
// interceptor and answered as internal_error.
func fail(ctx context.Context, err error) error {
	we, ok := wireerr.As(err)
	switch {
	case ok:
	case errors.Is(err, context.Canceled):
		return err // the caller left; nobody reads an answer
	case errors.Is(err, context.DeadlineExceeded):
		we = wireerr.New(wireerr.Unavailable, "timed out")
	default:
		_ = grpc.SetTrailer(ctx, metadata.Pairs(TrailerError, wireerr.Internal.Name))
		return err
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs(TrailerError, we.Code.Name))
	return we
}

// checkSize refuses a request larger than an HTTP body may be (spec 3.1).
func checkSize(req proto.Message) error {
	if proto.Size(req) > controlplane.MaxBody {
		return wireerr.New(wireerr.PayloadTooLarge, "request too large")
	}
	return nil
}

// Members of a request body written from gRPC fields: a string field is
// present when not empty (the JSON's absent, null and "" all mean the
// default), an optional field when set, an object field when not empty,
// with its text as given.

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func setString(m controlplane.Members, k, v string) {
	if v != "" {
		m[k] = jsonString(v)
	}
}

func setOptString(m controlplane.Members, k string, v *string) {
	if v != nil {
		m[k] = jsonString(*v)
	}
}

func setObject(m controlplane.Members, k, text string) {
	if text != "" {
		m[k] = json.RawMessage(text)
	}
}

func setOptInt(m controlplane.Members, k string, v *int64) {
	if v != nil {
		m[k] = strconv.AppendInt(nil, *v, 10)
	}
}

func formatPtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := timefmt.Format(*t)
	return &s
}

// accounts serves ams.v1.AccountService (spec 3.2, 3.3).
type accounts struct {
	amsv1.UnimplementedAccountServiceServer
	d *Deps
}

func (s *accounts) CreateAccount(ctx context.Context, req *amsv1.CreateAccountRequest) (*amsv1.Account, error) {
	if err := checkSize(req); err != nil {
		return nil, fail(ctx, err)
	}
	acc, err := s.d.Control.CreateAccount(ctx, req.GetNamespace())
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &amsv1.Account{
		AccountId:  acc.AccountID,
		Namespace:  acc.Namespace,
		Credential: acc.Credential,
		CreatedAt:  timefmt.Format(acc.CreatedAt),
	}, nil
}

func (s *accounts) RotateCredential(ctx context.Context, req *amsv1.RotateCredentialRequest) (*amsv1.Account, error) {
	acc, err := s.d.Control.RotateCredential(ctx, authorization(ctx), req.GetNamespace())
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &amsv1.Account{
		AccountId:  acc.AccountID,
		Namespace:  acc.Namespace,
		Credential: acc.Credential,
		RotatedAt:  formatPtr(&acc.RotatedAt),
	}, nil
}

// conversations serves ams.v1.ConversationService (spec 3.4 to 3.6).
type conversations struct {
	amsv1.UnimplementedConversationServiceServer
	d *Deps
}

func (s *conversations) CreateConversation(ctx context.Context, req *amsv1.CreateConversationRequest) (*amsv1.CreateConversationResponse, error) {
	body := func() (controlplane.Members, error) {
		if err := checkSize(req); err != nil {
			return nil, err
		}
		m := controlplane.Members{}
		setString(m, "alias", req.GetAlias())
		setString(m, "stream_name", req.GetStreamName())
		setOptString(m, "id_kind", req.IdKind)
		setObject(m, "metadata", req.GetMetadataJson())
		setObject(m, "stream_metadata", req.GetStreamMetadataJson())
		setOptInt(m, "link_expires_in", req.LinkExpiresIn)
		return m, nil
	}
	c, err := s.d.Control.Mint(ctx, authorization(ctx), req.GetNamespace(), s.d.issuer(ctx), body)
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &amsv1.CreateConversationResponse{
		ConversationId:     c.ConversationID,
		Alias:              c.Alias,
		MagicLink:          c.MagicLink,
		StreamId:           c.StreamID,
		StreamName:         c.StreamName,
		MetadataJson:       c.Metadata,
		StreamMetadataJson: c.StreamMetadata,
		CreatedAt:          timefmt.Format(c.CreatedAt),
		LinkId:             c.LinkID,
		ExpiresAt:          formatPtr(c.ExpiresAt),
	}, nil
}

func (s *conversations) GetConversation(ctx context.Context, req *amsv1.GetConversationRequest) (*amsv1.Conversation, error) {
	in, err := s.d.Control.Inspect(ctx, authorization(ctx), req.GetNamespace(), req.GetAlias(), req.GetToken())
	if err != nil {
		return nil, fail(ctx, err)
	}
	conv := in.Conversation
	out := &amsv1.Conversation{
		ConversationId: conv.ID,
		Namespace:      conv.Namespace,
		Alias:          conv.Alias,
		MetadataJson:   conv.Metadata,
		CreatedAt:      timefmt.Format(conv.CreatedAt),
		IdKind:         "uuid",
		Streams:        make([]*amsv1.StreamInfo, len(in.Streams)),
	}
	for i, st := range in.Streams {
		out.Streams[i] = &amsv1.StreamInfo{
			StreamId:       st.StreamID,
			StreamName:     st.StreamName,
			OwnerAccountId: st.OwnerAccountID,
			MetadataJson:   st.Metadata,
			PeerIdentity:   peerIdentity(st.PeerIdentity),
			LastSeq:        st.LastSeq,
		}
	}
	return out, nil
}

func (s *conversations) CreateLink(ctx context.Context, req *amsv1.CreateLinkRequest) (*amsv1.Link, error) {
	body := func() (controlplane.Members, error) {
		if err := checkSize(req); err != nil {
			return nil, err
		}
		m := controlplane.Members{}
		setOptInt(m, "expires_in", req.ExpiresIn)
		setOptString(m, "label", req.Label)
		return m, nil
	}
	l, err := s.d.Control.CreateLink(ctx, authorization(ctx), req.GetNamespace(), req.GetAlias(), s.d.issuer(ctx), body)
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &amsv1.Link{
		LinkId:    l.LinkID,
		MagicLink: &l.MagicLink,
		CreatedAt: timefmt.Format(l.CreatedAt),
		ExpiresAt: formatPtr(l.ExpiresAt),
		Label:     l.Label,
	}, nil
}

func (s *conversations) ListLinks(ctx context.Context, req *amsv1.ListLinksRequest) (*amsv1.ListLinksResponse, error) {
	links, err := s.d.Control.ListLinks(ctx, authorization(ctx), req.GetNamespace(), req.GetAlias())
	if err != nil {
		return nil, fail(ctx, err)
	}
	out := &amsv1.ListLinksResponse{Links: make([]*amsv1.Link, len(links))}
	for i, l := range links {
		out.Links[i] = &amsv1.Link{
			LinkId:    l.LinkID,
			CreatedAt: timefmt.Format(l.CreatedAt),
			ExpiresAt: formatPtr(l.ExpiresAt),
			RevokedAt: formatPtr(l.RevokedAt),
			Label:     l.Label,
		}
	}
	return out, nil
}

func (s *conversations) RevokeLink(ctx context.Context, req *amsv1.RevokeLinkRequest) (*amsv1.Link, error) {
	l, err := s.d.Control.RevokeLink(ctx, authorization(ctx), req.GetNamespace(), req.GetAlias(), req.GetLinkId())
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &amsv1.Link{LinkId: l.LinkID, RevokedAt: formatPtr(l.RevokedAt)}, nil
}
