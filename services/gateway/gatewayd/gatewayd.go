// Package gatewayd is one gateway replica as a value: configuration, the
// wiring of its clients and servers, and its run and shutdown sequence. The
// gateway binary and the all-in-one binary both run it.
package gatewayd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/authcache"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/grpcapi"
	"github.com/amsrouter/ams/services/gateway/internal/httpapi"
	"github.com/amsrouter/ams/services/gateway/internal/httpstream"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/gateway/internal/mcpserver"
	"github.com/amsrouter/ams/services/gateway/internal/metrics"
	"github.com/amsrouter/ams/services/gateway/internal/netpoll"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/gateway/internal/viewer"
	"github.com/amsrouter/ams/services/gateway/internal/wsconn"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/telemetry"
)

// NATS subjects of the control broadcasts between gateways.
const (
	SubjectRevoked = "ams.ctl.revoked"
	SubjectRotated = "ams.ctl.rotated"
)

// Config configures a gateway.
type Config struct {
	// HTTPAddr is the public HTTP listener (control plane, stream plane,
	// MCP, viewer, health and metrics).
	HTTPAddr string
	// GRPCAddr is the public gRPC listener (ams.v1, spec 5.4); empty
	// serves no gRPC.
	GRPCAddr string
	// PublicURL is the base of magic links; empty derives it per request.
	PublicURL string
	// AccountAddr and LinkAddr are the gRPC targets of the services.
	AccountAddr, LinkAddr string
	// NATSURL is the NATS server; NATSOptions are added to the connection
	// (the all-in-one binary connects in-process this way).
	NATSURL     string
	NATSOptions []nats.Option
	// DerivationPepper is the deployment secret of derived ids.
	DerivationPepper []byte
	// AuthCacheTTL bounds how long an authentication is reused (≤ 5 s).
	AuthCacheTTL time.Duration
	// RevocationPoll is how often revocations are pulled from the link
	// service, besides the broadcast.
	RevocationPoll time.Duration
	// ShutdownGrace bounds the shutdown sequence.
	ShutdownGrace time.Duration
	// Name identifies this replica (presence, logs); empty picks one.
	Name string
	// Data configures the JetStream data plane: retention, replicas,
	// publish mode.
	Data dataplane.Config
	// Hub configures the stream plane: queue bounds, grace, liveness.
	Hub hub.Config
	// SendBuffer fixes the kernel send buffer of each client connection
	// (bytes); 0 lets the kernel size it.
	SendBuffer int
	// WSBlockingReads reads each WebSocket in a goroutine of its own
	// instead of waiting for input in the gateway's epoll set (Linux):
	// an idle connection then holds a goroutine and its stack.
	WSBlockingReads bool
	// WSReadLinger is how long a reader that took a data message waits
	// for the next before it parks in the epoll set: 0 is
	// wsconn.DefaultReadLinger, negative parks at once.
	WSReadLinger time.Duration
	// SSEKeepAlive overrides the 15 s SSE keepalive (tests).
	SSEKeepAlive time.Duration
	// Tracing traces HTTP requests, gRPC calls and events across
	// gateways; nil: off. The caller shuts it down after Run.
	Tracing *telemetry.Provider

	// Limits are the abuse controls: rate limits per connection, account
	// and control-plane client, and the per-account connection quota
	// (package limits; zero values take its defaults, negative ones turn
	// a limit off). All of them count on this gateway only.
	Limits limits.Config
	// ReadHeaderTimeout bounds reading a request line and headers: a
	// client that connects and sends nothing, or trickles its headers, is
	// disconnected (default 10 s).
	ReadHeaderTimeout time.Duration
	// HTTPIdleTimeout closes keep-alive connections idle this long
	// (default 120 s).
	HTTPIdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line (query included) and headers;
	// larger gets 431 (default 64 KiB).
	MaxHeaderBytes int
	// WSPingEvery and WSIdleTimeout are the WebSocket keepalive (spec
	// 4.5: a ping every 30 s, a connection silent 90 s is dropped).
	WSPingEvery, WSIdleTimeout time.Duration
	// GRPCKeepalive configures gRPC pings and their enforcement (zero:
	// 30 s, 60 s, clients may ping every 10 s).
	GRPCKeepalive grpcapi.Keepalive
}

func (c *Config) defaults() {
	if c.AuthCacheTTL == 0 {
		c.AuthCacheTTL = 3 * time.Second
	}
	if c.RevocationPoll == 0 {
		c.RevocationPoll = time.Second
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.Name == "" {
		c.Name = "gw-" + ids.TR20(time.Now())[10:]
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.HTTPIdleTimeout == 0 {
		c.HTTPIdleTimeout = 120 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	c.Limits = c.Limits.WithDefaults()
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch {
	case c.HTTPAddr == "":
		return errors.New("http address is required")
	case c.AccountAddr == "":
		return errors.New("account service address is required")
	case c.LinkAddr == "":
		return errors.New("link service address is required")
	case c.NATSURL == "" && len(c.NATSOptions) == 0:
		return errors.New("NATS URL is required")
	case len(c.DerivationPepper) < 16:
		return errors.New("derivation pepper is required (at least 16 bytes)")
	case c.AuthCacheTTL > authcache.MaxTTL:
		return fmt.Errorf("auth cache TTL is at most %s", authcache.MaxTTL)
	case !subject.ValidGatewayName(c.Name):
		return fmt.Errorf("gateway name %q: 1 to 64 of letters, digits, - and _", c.Name)
	}
	return nil
}

// Gateway is a running gateway replica.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	readNC  *nats.Conn // replays' reads (dataplane.Config.ReadConn)
	conns   []*grpc.ClientConn
	health  []healthpb.HealthClient
	auth    *authcache.Cache
	adm     *admission.Checker
	metrics *metrics.Metrics
	api     *httpapi.API
	plane   *dataplane.Plane
	hub     *hub.Hub
	httpLis net.Listener
	httpSrv *http.Server
	grpcSrv *grpcapi.Server

	draining atomic.Bool
	// reconnected is signalled by each NATS reconnect (recreateLoop).
	reconnected chan struct{}
	subs        []*nats.Subscription
	closeMu     sync.Mutex
}

// New wires a gateway and binds its listeners (so ":0" works in tests).
// It does not wait for the services: readiness reports them.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Gateway, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: log, metrics: metrics.New(), reconnected: make(chan struct{}, 1)}
	ok := false
	defer func() {
		if !ok {
			g.closeClients()
		}
	}()

	// Clients: account and link services over gRPC, NATS.
	dialOpts := append(cfg.Tracing.DialOptions(), g.metrics.GRPCClient.DialOption())
	accConn, err := grpcx.Dial(cfg.AccountAddr, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial account service: %w", err)
	}
	g.conns = append(g.conns, accConn)
	linkConn, err := grpcx.Dial(cfg.LinkAddr, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial link service: %w", err)
	}
	g.conns = append(g.conns, linkConn)
	g.health = []healthpb.HealthClient{healthpb.NewHealthClient(accConn), healthpb.NewHealthClient(linkConn)}

	// Events are published without acknowledgement (core mode) and a
	// reconnect loses what was in flight: the hub keeps what it published
	// until it comes back, and sends it again, in order, on the new
	// connection. The dialer tells it a reconnect happened; nats.go's
	// reconnect buffer is off so that nothing written while NATS is away
	// overtakes that resend (the hub holds such events itself).
	dialer := &dataplane.Dialer{}
	// Both connections of the gateway reconnect forever, every 250 ms.
	reconnect := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
	}
	opts := append([]nats.Option{
		nats.Name("ams-gateway " + cfg.Name),
		nats.SetCustomDialer(dialer),
		nats.ReconnectBufSize(-1),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			log.Info("nats reconnected")
			select {
			case g.reconnected <- struct{}{}:
			default:
			}
		}),
	}, slices.Concat(reconnect, cfg.NATSOptions)...)
	g.nc, err = nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	// With the reconnect buffer off nothing can be sent before the first
	// connection: wait for it.
	if err := waitConnected(ctx, g.nc, natsStartWait, log); err != nil {
		g.nc.Close()
		return nil, err
	}

	// Replays read retained events on a connection of their own: the
	// server reads one connection's requests in order, and a storm of
	// resumes would hold up heartbeats and record writes behind it.
	g.readNC, err = nats.Connect(cfg.NATSURL, append([]nats.Option{
		nats.Name("ams-gateway " + cfg.Name + " reads"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats async error (reads)", "err", err)
		}),
	}, slices.Concat(reconnect, cfg.NATSOptions)...)...)
	if err != nil {
		return nil, fmt.Errorf("connect nats (reads): %w", err)
	}
	if err := waitConnected(ctx, g.readNC, natsStartWait, log); err != nil {
		return nil, err
	}

	// Data plane and stream plane.
	dcfg := cfg.Data
	dcfg.Observer = g.metrics
	dcfg.Dialer = dialer
	dcfg.ReadConn = g.readNC
	g.plane, err = dataplane.Open(ctx, g.nc, dcfg)
	if err != nil {
		return nil, fmt.Errorf("open data plane: %w", err)
	}
	hcfg := cfg.Hub
	hcfg.Gateway = cfg.Name
	hcfg.Tracing = cfg.Tracing
	lim := limits.New(cfg.Limits)
	hcfg.Quota = lim
	deriver := ids.NewDeriver(cfg.DerivationPepper)
	g.hub, err = hub.New(hcfg, g.plane, deriver, g.metrics, log)
	if err != nil {
		return nil, err
	}

	accounts := accountv1.NewAccountServiceClient(accConn)
	links := linkv1.NewLinkServiceClient(linkConn)
	g.auth = authcache.New(accounts, cfg.AuthCacheTTL)
	g.auth.OnLookup = func(hit bool) {
		if hit {
			g.metrics.AuthCacheLookup.WithLabelValues("hit").Inc()
		} else {
			g.metrics.AuthCacheLookup.WithLabelValues("miss").Inc()
		}
	}
	g.adm = admission.New(links)
	g.adm.Revoked.Subscribe(func(linkID, _ string) { g.hub.CloseLink(linkID) })

	// Control broadcasts between replicas.
	sub, err := g.nc.Subscribe(SubjectRevoked, func(*nats.Msg) { g.adm.Revoked.Kick() })
	if err != nil {
		return nil, fmt.Errorf("subscribe revocations: %w", err)
	}
	g.subs = append(g.subs, sub)
	sub, err = g.nc.Subscribe(SubjectRotated, func(m *nats.Msg) { g.auth.Forget(string(m.Data)) })
	if err != nil {
		return nil, fmt.Errorf("subscribe rotations: %w", err)
	}
	g.subs = append(g.subs, sub)

	// First sync, best effort: readiness stays false until it succeeds.
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_ = g.adm.Revoked.Sync(sctx)
	_ = g.adm.Keys.Refresh(sctx)
	cancel()

	admitter := &wsconn.Admitter{Auth: g.auth, Admission: g.adm, Log: log}
	mcpSrv, err := mcpserver.New(ctx, mcpserver.Config{
		Log: log, Gateway: cfg.Name, Hub: g.hub, Auth: g.auth, Admission: g.adm, Deriver: deriver,
		Links: links, NATS: g.nc, Replicas: cfg.Data.Replicas, Memory: cfg.Data.Memory,
		PublicURL: cfg.PublicURL, Keepalive: cfg.SSEKeepAlive,
		Viewer: &viewer.Handler{Log: log, Admitter: admitter},
		Limits: lim,
	})
	if err != nil {
		return nil, fmt.Errorf("open mcp sessions: %w", err)
	}
	g.api = httpapi.New(httpapi.Deps{
		Log:       log,
		Metrics:   g.metrics,
		Accounts:  accounts,
		Links:     links,
		Auth:      g.auth,
		Admission: g.adm,
		Deriver:   deriver,
		Presence:  presenceAdapter{g.hub},
		PublicURL: cfg.PublicURL,
		Ready:     g.ready,
		Limits:    lim,
		AnnounceRevocation: func(linkID string) {
			_ = g.nc.Publish(SubjectRevoked, []byte(linkID))
		},
		AnnounceRotation: func(accountID string) {
			_ = g.nc.Publish(SubjectRotated, []byte(accountID))
		},
		Handlers: httpapi.Handlers{
			Connect: &wsconn.Handler{
				Poller:      wsPoller(log, cfg.WSBlockingReads),
				ReadLinger:  cfg.WSReadLinger,
				Log:         log,
				Admitter:    admitter,
				Hub:         g.hub,
				SendBuffer:  cfg.SendBuffer,
				SSE:         &httpstream.SSE{Log: log, Admitter: admitter, Hub: g.hub, KeepAlive: cfg.SSEKeepAlive},
				PingEvery:   cfg.WSPingEvery,
				IdleTimeout: cfg.WSIdleTimeout,
				Limits:      lim,
			},
			Tokens:    &httpstream.Emit{Log: log, Admitter: admitter, Hub: g.hub, Limits: lim},
			Metadata:  &httpstream.Emit{Log: log, Admitter: admitter, Hub: g.hub, Metadata: true, Limits: lim},
			MCP:       mcpSrv.MCP(),
			MagicLink: mcpSrv.MagicLink(),
		},
	})

	// Servers: bind now.
	g.httpLis, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen http: %w", err)
	}
	g.httpSrv = &http.Server{
		Handler:           cfg.Tracing.HTTPHandler(g.api, "gateway"),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.GRPCAddr != "" {
		g.grpcSrv, err = grpcapi.NewServer(cfg.GRPCAddr, grpcapi.Deps{Log: log, Control: g.api.Control(),
			Admitter: admitter, Hub: g.hub, PublicURL: cfg.PublicURL, Reflection: true,
			Limits: lim, Keepalive: cfg.GRPCKeepalive,
			ServerOptions: append(cfg.Tracing.ServerOptions(), g.metrics.GRPCServer.ServerOption())})
		if err != nil {
			_ = g.httpLis.Close()
			return nil, fmt.Errorf("listen grpc: %w", err)
		}
	}
	ok = true
	return g, nil
}

// HTTPAddr is the bound public HTTP address.
func (g *Gateway) HTTPAddr() string { return g.httpLis.Addr().String() }

// GRPCAddr is the bound public gRPC address, "" without one.
func (g *Gateway) GRPCAddr() string {
	if g.grpcSrv == nil {
		return ""
	}
	return g.grpcSrv.Addr()
}

// URL is http://HTTPAddr, for tests and the dev banner.
func (g *Gateway) URL() string { return "http://" + g.HTTPAddr() }

// Name is the replica's name.
func (g *Gateway) Name() string { return g.cfg.Name }

func (g *Gateway) ready(ctx context.Context) []httpapi.Check {
	checks := make([]httpapi.Check, 0, 4)
	if g.nc.IsConnected() {
		checks = append(checks, httpapi.Check{Name: "nats", Result: "ok"})
	} else {
		checks = append(checks, httpapi.Check{Name: "nats", Result: "not connected: " + g.nc.Status().String()})
	}
	for i, name := range []string{"account_service", "link_service"} {
		resp, err := g.health[i].Check(ctx, &healthpb.HealthCheckRequest{})
		switch {
		case err != nil:
			checks = append(checks, httpapi.Check{Name: name, Result: "unreachable"})
		case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			checks = append(checks, httpapi.Check{Name: name, Result: resp.GetStatus().String()})
		case name == "link_service" && !g.adm.Revoked.Synced():
			checks = append(checks, httpapi.Check{Name: name, Result: "revocations not loaded"})
		default:
			checks = append(checks, httpapi.Check{Name: name, Result: "ok"})
		}
	}
	if g.draining.Load() {
		checks = append(checks, httpapi.Check{Name: "draining", Result: "shutting down"})
	}
	return checks
}

// Run serves until ctx is done, then shuts down under the grace period:
// not ready, stop accepting, drain NATS, close clients.
func (g *Gateway) Run(ctx context.Context) error {
	bg, bgCancel := context.WithCancel(context.Background())
	var eg errgroup.Group
	eg.Go(func() error { g.adm.Revoked.Run(bg, g.cfg.RevocationPoll); return nil })
	eg.Go(func() error { g.adm.Keys.Run(bg, 30*time.Second); return nil })
	eg.Go(func() error { return g.hub.Run(bg) })
	eg.Go(func() error { g.recreateLoop(bg); return nil })

	errc := make(chan error, 1)
	go func() {
		if err := g.httpSrv.Serve(g.httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	if g.grpcSrv != nil {
		g.grpcSrv.Start()
	}
	g.log.Info("gateway serving", "name", g.cfg.Name, "http", g.HTTPAddr(), "grpc", g.GRPCAddr())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	// Shutdown, under one deadline: not ready, close client connections
	// with 1001 so they resume elsewhere, stop accepting, stop background
	// work, drain NATS.
	g.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownGrace)
	defer cancel()
	g.hub.Drain(sctx)
	if g.grpcSrv != nil {
		g.grpcSrv.Shutdown(sctx)
	}
	if err := g.httpSrv.Shutdown(sctx); err != nil {
		_ = g.httpSrv.Close()
	}
	if serveErr == nil {
		serveErr = <-errc
	}
	bgCancel()
	_ = eg.Wait()
	g.closeClients()
	g.log.Info("gateway stopped", "name", g.cfg.Name)
	return serveErr
}

func (g *Gateway) closeClients() {
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	for _, s := range g.subs {
		_ = s.Unsubscribe()
	}
	g.subs = nil
	if g.nc != nil {
		_ = g.nc.Drain()
		g.nc = nil
	}
	if g.readNC != nil {
		g.readNC.Close()
		g.readNC = nil
	}
	for _, c := range g.conns {
		_ = c.Close()
	}
	g.conns = nil
}

// presenceAdapter answers inspect's live streams from the hub.
type presenceAdapter struct{ h *hub.Hub }

func (p presenceAdapter) LiveStreams(ctx context.Context, conversationID string) ([]httpapi.StreamInfo, error) {
	list, err := p.h.LiveStreams(ctx, conversationID)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.StreamInfo, len(list))
	for i, s := range list {
		out[i] = httpapi.StreamInfo{StreamID: s.ID, StreamName: s.Name, OwnerAccountID: s.Owner,
			Metadata: s.Metadata, PeerIdentity: s.PeerIdentity, LastSeq: s.LastSeq}
	}
	return out, nil
}

// wsPoller is the epoll set WebSockets wait for input in, nil when
// blocking reads are asked for or the system has none.
func wsPoller(log *slog.Logger, blocking bool) *netpoll.Poller {
	if blocking {
		return nil
	}
	p, err := netpoll.Default()
	if err != nil {
		log.Info("websocket reads block in a goroutine per connection", "reason", err.Error())
		return nil
	}
	return p
}
