// Package grpcapi serves the public gRPC API of AMS (package ams.v1, spec
// 5.4) on a gateway: AccountService and ConversationService, the control
// plane of spec 3 as unary calls, and StreamService.Connect, a
// bidirectional stream that is one stream-plane connection, like a
// WebSocket.
//
// Nothing here decides anything the other transports decide too: control
// calls run the operations of package controlplane (the HTTP routes' code,
// checks in the same order), Connect is admitted by the WebSocket's
// wsconn.Admitter from call metadata and joins the hub like any
// connection. What is gRPC's own is the mapping: request fields to the
// members the operations read, results and frames to ams.v1 messages
// (objects as `*_json` strings holding their exact bytes), and errors to
// statuses with trailers (`ams-error` for control calls; `ams-close-code`
// and `ams-close-reason` for Connect).
//
// # Goroutines
//
// A Connect call runs on its handler goroutine, which admits, joins and
// then only waits for the end; one send goroutine drains the hub's queue
// (hub.Conn.Take) into Send, and one receive goroutine applies the
// client's frames. The handler decides how the call ends and returns its
// status; it waits for the send goroutine unless a Send is stuck on a
// client that stopped reading, which returning the status unblocks.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/controlplane"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/gateway/internal/wsconn"
	"github.com/amsrouter/ams/services/internal/grpcx"
)

// Trailer keys (spec 5.4).
const (
	// TrailerError carries the catalogue code of a failed control call.
	TrailerError = "ams-error"
	// TrailerCloseCode and TrailerCloseReason carry how a Connect call
	// ended: the close code and reason a WebSocket would have got.
	TrailerCloseCode   = "ams-close-code"
	TrailerCloseReason = "ams-close-reason"
)

// Keepalive of long-lived Connect calls: like the WebSocket's pings (spec
// 4.5), the server pings a connection idle for 30 s and drops one that
// stays silent 60 s more.
const (
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 60 * time.Second
)

// Deps are what the API needs.
type Deps struct {
	Log *slog.Logger
	// Control runs the control-plane operations (the HTTP API's).
	Control *controlplane.Service
	// Admitter and Hub admit and attach Connect calls.
	Admitter *wsconn.Admitter
	Hub      *hub.Hub
	// PublicURL is the base of magic links; empty derives it from each
	// call's :authority (spec 2.3).
	PublicURL string
	// Reflection registers the gRPC reflection service (grpcurl and the
	// like list and call ams.v1 without the .proto files).
	Reflection bool
	// ServerOptions are added to the server's (metrics and tracing stats
	// handlers).
	ServerOptions []grpc.ServerOption
	// Limits rate-limits Connect frames and tokens (4429 rate_limited)
	// and control calls per client and credential (RESOURCE_EXHAUSTED);
	// nil: none.
	Limits *limits.Limits
	// Keepalive configures pings and their enforcement (zero: defaults).
	Keepalive Keepalive
}

func (d *Deps) defaults() {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
}

// Register registers the three ams.v1 services on s.
func Register(s grpc.ServiceRegistrar, d Deps) {
	d.defaults()
	amsv1.RegisterAccountServiceServer(s, &accounts{d: &d})
	amsv1.RegisterConversationServiceServer(s, &conversations{d: &d})
	amsv1.RegisterStreamServiceServer(s, &streams{d: &d})
}

// Server is the gateway's public gRPC server: ams.v1, health (and
// reflection when asked), on a listener bound at construction.
type Server struct {
	srv     *grpcx.Server
	log     *slog.Logger
	serving atomic.Bool
	served  chan struct{}
}

// NewServer listens on addr (":0" works) and returns the server, not yet
// serving.
func NewServer(addr string, d Deps) (*Server, error) {
	d.defaults()
	opts := append([]grpc.ServerOption{grpc.ForceServerCodecV2(newCodec())}, d.Keepalive.options()...)
	if d.Limits != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(controlLimit(d.Limits)))
	}
	srv, err := grpcx.NewServer(addr, d.Log, append(opts, d.ServerOptions...)...)
	if err != nil {
		return nil, err
	}
	Register(srv.Server, d)
	if d.Reflection {
		reflection.Register(srv.Server)
	}
	for _, name := range []string{amsv1.AccountService_ServiceDesc.ServiceName,
		amsv1.ConversationService_ServiceDesc.ServiceName, amsv1.StreamService_ServiceDesc.ServiceName} {
		srv.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return &Server{srv: srv, log: d.Log, served: make(chan struct{})}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.srv.Addr() }

// Start serves in the background until Shutdown. A failure of the
// listener is logged. Call it at most once.
func (s *Server) Start() {
	s.serving.Store(true)
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(context.Background(), 0); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("grpc server failed", "addr", s.Addr(), "err", err)
		}
	}()
}

// Shutdown stops the server: health reports NOT_SERVING, new calls are
// refused and running calls finish (the hub's drain ends Connect calls);
// at ctx's end the rest are cut. It returns once the server has stopped.
func (s *Server) Shutdown(ctx context.Context) {
	s.srv.Health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.srv.Stop()
		<-done
	}
	if s.serving.Load() {
		<-s.served
	}
}
