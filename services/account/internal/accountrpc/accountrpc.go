// Package accountrpc implements ams.account.v1.AccountService: account
// creation, authentication of bearer credentials and credential rotation.
//
// Handlers return *wireerr.Error values with catalogue codes; the grpcx
// interceptors turn them into statuses with an ErrorInfo reason. A plain
// credential exists only in the answers to CreateAccount and
// RotateCredential and in Authenticate's request: it is hashed at once,
// never stored, logged or put into an error.
package accountrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	"github.com/amsrouter/ams/services/account/internal/store"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Server is the AccountService implementation.
type Server struct {
	accountv1.UnimplementedAccountServiceServer

	store  store.Store
	hasher *ids.CredentialHasher
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Server over st that hashes credentials with hasher.
func New(st store.Store, hasher *ids.CredentialHasher, log *slog.Logger) *Server {
	return &Server{store: st, hasher: hasher, log: log, now: time.Now}
}

// CreateAccount implements AccountService.CreateAccount.
func (s *Server) CreateAccount(ctx context.Context, req *accountv1.CreateAccountRequest) (*accountv1.CreateAccountResponse, error) {
	ns := req.GetNamespace()
	if !ids.ValidNamespace(ns) {
		return nil, wireerr.New(wireerr.InvalidNamespace, "namespace must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	now := store.Time(s.now())
	credential := ids.NewCredential()
	a := store.Account{
		ID:             ids.NewAccountID(now),
		Namespace:      ns,
		CredentialHash: s.hasher.Hash(credential),
		CreatedAt:      now,
	}
	if err := s.store.CreateAccount(ctx, a); err != nil {
		if errors.Is(err, store.ErrNamespaceTaken) {
			return nil, wireerr.New(wireerr.NamespaceTaken, "namespace is taken")
		}
		return nil, fmt.Errorf("create account: %w", err)
	}
	s.log.InfoContext(ctx, "account created", "account_id", a.ID, "namespace", a.Namespace)
	return &accountv1.CreateAccountResponse{Account: toProto(a), Credential: credential}, nil
}

// Authenticate implements AccountService.Authenticate.
func (s *Server) Authenticate(ctx context.Context, req *accountv1.AuthenticateRequest) (*accountv1.AuthenticateResponse, error) {
	credential := req.GetCredential()
	if !ids.ValidCredentialShape(credential) {
		s.log.DebugContext(ctx, "authentication refused", "reason", "malformed")
		return nil, invalidCredential()
	}
	hash := s.hasher.Hash(credential)
	a, err := s.store.AccountByCredentialHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		s.log.DebugContext(ctx, "authentication refused", "reason", "unknown")
		return nil, invalidCredential()
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	// The lookup matched on the hash already; compare again in constant
	// time so a store that matched loosely cannot let a wrong one in.
	if !ids.Equal(a.CredentialHash, hash) {
		return nil, invalidCredential()
	}
	s.log.DebugContext(ctx, "authenticated", "account_id", a.ID)
	return &accountv1.AuthenticateResponse{Account: toProto(a)}, nil
}

// RotateCredential implements AccountService.RotateCredential.
func (s *Server) RotateCredential(ctx context.Context, req *accountv1.RotateCredentialRequest) (*accountv1.RotateCredentialResponse, error) {
	id := req.GetAccountId()
	if !ids.AccountIDRe.MatchString(id) {
		return nil, wireerr.New(wireerr.NotFound, "account not found")
	}
	credential := ids.NewCredential()
	a, err := s.store.RotateCredential(ctx, id, s.hasher.Hash(credential), store.Time(s.now()))
	if errors.Is(err, store.ErrNotFound) {
		return nil, wireerr.New(wireerr.NotFound, "account not found")
	}
	if err != nil {
		return nil, fmt.Errorf("rotate credential: %w", err)
	}
	s.log.InfoContext(ctx, "credential rotated", "account_id", a.ID)
	return &accountv1.RotateCredentialResponse{Account: toProto(a), Credential: credential}, nil
}

func invalidCredential() error {
	return wireerr.New(wireerr.InvalidCredential, "credential is unknown or was rotated out")
}

func toProto(a store.Account) *accountv1.Account {
	p := &accountv1.Account{
		AccountId: a.ID,
		Namespace: a.Namespace,
		CreatedAt: timestamppb.New(a.CreatedAt),
	}
	if !a.RotatedAt.IsZero() {
		p.RotatedAt = timestamppb.New(a.RotatedAt)
	}
	return p
}
