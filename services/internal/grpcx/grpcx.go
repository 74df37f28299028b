// Package grpcx holds what every AMS gRPC server and client shares: the
// mapping of catalogue errors to gRPC statuses and back, panic recovery,
// health checking, and a server that owns its listener.
package grpcx

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Domain is the ErrorInfo domain of AMS errors.
const Domain = "ams"

// Status converts err to a gRPC status. A *wireerr.Error keeps its code as
// the ErrorInfo reason; context errors keep their meaning; anything else
// becomes a bare INTERNAL whose text reveals nothing.
func Status(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	if we, ok := wireerr.As(err); ok {
		st := status.New(we.Code.GRPC(), we.Message)
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: we.Code.Name, Domain: Domain}); derr == nil {
			return d
		}
		return st
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "canceled")
	case Unreachable(err):
		st := status.New(codes.Unavailable, "a backing store is unavailable")
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: wireerr.Unavailable.Name, Domain: Domain}); derr == nil {
			return d
		}
		return st
	}
	return status.New(codes.Internal, "internal error")
}

// Unreachable reports an error of a backing store or service that could
// not be reached or whose connection broke: refused, reset or timed-out
// connections, and the SQLSTATEs of a database that is down or shutting
// down (class 08, 57P01–57P03). Such a request may succeed later, so it is
// `unavailable` (503), not an internal error.
func Unreachable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch code := pg.SQLState(); {
		case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03":
			return true
		}
	}
	return false
}

// FromStatus converts an error returned by a gRPC call back into a catalogue
// error. A status with an AMS ErrorInfo gives its code; an unreachable or
// overloaded peer gives `unavailable`; anything else `internal_error`.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := wireerr.As(err); ok {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			if c, ok := wireerr.Lookup(info.GetReason()); ok {
				return wireerr.New(c, st.Message())
			}
		}
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return wireerr.New(wireerr.Unavailable, "a backing service is unavailable")
	case codes.Canceled:
		return context.Canceled
	}
	return wireerr.New(wireerr.Internal, "internal error")
}

func unaryErrors(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err == nil {
			return resp, nil
		}
		st := Status(err)
		switch st.Code() {
		case codes.Internal:
			log.ErrorContext(ctx, "rpc failed", "method", info.FullMethod, "err", err)
		case codes.Unavailable:
			log.WarnContext(ctx, "rpc unavailable", "method", info.FullMethod, "err", err)
		}
		return nil, st.Err()
	}
}

func streamErrors(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		err := h(srv, ss)
		if err == nil {
			return nil
		}
		st := Status(err)
		if st.Code() == codes.Internal {
			log.Error("rpc failed", "method", info.FullMethod, "err", err)
		}
		return st.Err()
	}
}

// Server is a gRPC server bound to its listener from construction, so that
// an address of ":0" works in tests, with health checking registered.
type Server struct {
	*grpc.Server
	Health *health.Server
	lis    net.Listener
	log    *slog.Logger
}

// NewServer listens on addr and returns a server with panic recovery and
// error mapping installed. Extra options are appended.
func NewServer(addr string, log *slog.Logger, opts ...grpc.ServerOption) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "rpc panic", "panic", p)
		return status.Error(codes.Internal, "internal error")
	})
	base := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(recovery.UnaryServerInterceptor(rec), unaryErrors(log)),
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(rec), streamErrors(log)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(4 << 20),
	}
	s := &Server{Server: grpc.NewServer(append(base, opts...)...), Health: health.NewServer(), lis: lis, log: log}
	healthpb.RegisterHealthServer(s.Server, s.Health)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Serve serves until ctx is done, then stops gracefully, forcing a stop
// after the grace period.
func (s *Server) Serve(ctx context.Context, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(s.lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() { s.Server.GracefulStop(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.Server.Stop()
		<-done
	}
	<-errc
	return nil
}

// Dial opens a client connection to an AMS service on a plain-text
// connection (services talk inside a trusted network or a mesh that adds
// mTLS). The connection is lazy: it does not fail when the peer is down.
func Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultServiceConfig(`{"loadBalancingPolicy":"round_robin"}`),
	}
	return grpc.NewClient(target, append(base, opts...)...)
}
