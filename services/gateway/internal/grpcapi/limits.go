package grpcapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/controlplane"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// MaxHeaderList bounds the metadata of a call, as MaxHeaderBytes bounds an
// HTTP request's headers.
const MaxHeaderList = 64 << 10

// Keepalive configures the server's connection keepalive and its
// enforcement against clients that ping too often.
type Keepalive struct {
	// Time: ping a connection idle this long (default 30 s, at least 1 s).
	Time time.Duration
	// Timeout: drop a connection that does not answer a ping within this
	// (default 60 s).
	Timeout time.Duration
	// MinPing: a client pinging more often than this is sent GOAWAY
	// ENHANCE_YOUR_CALM and disconnected (default 10 s).
	MinPing time.Duration
}

func (k Keepalive) options() []grpc.ServerOption {
	if k.Time == 0 {
		k.Time = keepaliveTime
	}
	if k.Timeout == 0 {
		k.Timeout = keepaliveTimeout
	}
	if k.MinPing == 0 {
		k.MinPing = 10 * time.Second
	}
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: k.Time, Timeout: k.Timeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: k.MinPing, PermitWithoutStream: true}),
		grpc.MaxHeaderListSize(MaxHeaderList),
	}
}

// controlLimit rate-limits the control-plane services (AccountService,
// ConversationService) per client address and per credential, as the
// HTTP routes are: RESOURCE_EXHAUSTED with ErrorInfo rate_limited, a
// RetryInfo and the `ams-error` trailer.
func controlLimit(l *limits.Limits) grpc.UnaryServerInterceptor {
	acc := "/" + amsv1.AccountService_ServiceDesc.ServiceName + "/"
	conv := "/" + amsv1.ConversationService_ServiceDesc.ServiceName + "/"
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, acc) && !strings.HasPrefix(info.FullMethod, conv) {
			return h(ctx, req)
		}
		remote := ""
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			remote = p.Addr.String()
		}
		// A proxy in front (ingress-nginx with GRPC backends, Envoy)
		// forwards X-Forwarded-For as metadata.
		md, _ := metadata.FromIncomingContext(ctx)
		cred, _ := controlplane.BearerCredential(authorization(ctx))
		if err := l.Control(l.ClientAddr(remote, md.Get("x-forwarded-for")), cred); err != nil {
			_ = grpc.SetTrailer(ctx, metadata.Pairs(TrailerError, wireerr.RateLimited.Name))
			return nil, rateStatus(err)
		}
		return h(ctx, req)
	}
}

// rateStatus is the status of a rate_limited error, with the wait in a
// RetryInfo.
func rateStatus(err error) error {
	st := status.New(codes.ResourceExhausted, err.Error())
	info := &errdetails.ErrorInfo{Reason: wireerr.RateLimited.Name, Domain: grpcx.Domain}
	var with *status.Status
	var derr error
	var le *limits.Error
	if errors.As(err, &le) {
		with, derr = st.WithDetails(info, &errdetails.RetryInfo{RetryDelay: durationpb.New(le.RetryAfter())})
	} else {
		with, derr = st.WithDetails(info)
	}
	if derr == nil {
		st = with
	}
	return st.Err()
}
