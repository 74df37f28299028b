// Package linkd is the link service as a value: Config, New, Run. The link
// binary (cmd/link) and the all-in-one runner (`ams dev`) both build it.
//
// New opens the store (applying migrations) and binds the gRPC and admin
// listeners at once, so ":0" works and the addresses are known before Run.
// Run serves until its context ends, then shuts down under one deadline:
// readiness turns 503, the admin server and gRPC (GracefulStop, Stop at the
// deadline) stop in parallel, and the store is closed.
package linkd

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/internal/grpcmetrics"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/telemetry"
	"github.com/amsrouter/ams/services/link/internal/keyset"
	"github.com/amsrouter/ams/services/link/internal/linkdb"
	"github.com/amsrouter/ams/services/link/internal/linkrpc"
	"github.com/amsrouter/ams/services/link/internal/store"
)

// DefaultShutdownGrace is used when Config.ShutdownGrace is zero.
const DefaultShutdownGrace = 10 * time.Second

// Config configures the link service.
type Config struct {
	// GRPCAddr is the LinkService listen address (":7002"; ":0" picks a port).
	GRPCAddr string
	// AdminAddr serves /healthz, /readyz and /metrics; empty means no
	// admin server.
	AdminAddr string
	// DatabaseURL is postgres://…, postgresql://… or sqlite:<path>.
	DatabaseURL string
	// SigningKeys are the Ed25519 keys; the first signs new links, the
	// others are retired keys kept while links they signed are live.
	SigningKeys []ed25519.PrivateKey
	// ShutdownGrace bounds graceful shutdown (DefaultShutdownGrace).
	ShutdownGrace time.Duration
	// Now is the clock; nil means time.Now. Tests move it to expire links.
	Now func() time.Time
	// Tracing traces gRPC calls; nil: off. The caller shuts it down.
	Tracing *telemetry.Provider
}

// Service is a running link service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	grpc     *grpcx.Server
	metrics  *grpcmetrics.Service
	admin    *http.Server
	adminLis net.Listener
	draining atomic.Bool
}

// LoadOrCreateKeys reads the signing keys of the PEM file at path,
// creating it with one new key (mode 0600) if it does not exist. For the
// all-in-one runner's data directory; production passes keys as a secret.
func LoadOrCreateKeys(path string) ([]ed25519.PrivateKey, error) { return keyset.LoadOrCreate(path) }

// ParseKeys reads signing keys from PEM text (PKCS#8 "PRIVATE KEY"
// blocks, active key first).
func ParseKeys(pemText []byte) ([]ed25519.PrivateKey, error) { return keyset.Parse(pemText) }

// Migrate applies the link schema's pending migrations to the database at
// databaseURL (for `ams migrate` and migration jobs); New does it too.
func Migrate(ctx context.Context, databaseURL string) error { return linkdb.Migrate(ctx, databaseURL) }

// New validates cfg, opens the store and binds the listeners.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Service, err error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("link: database url is required")
	}
	if len(cfg.SigningKeys) == 0 {
		return nil, errors.New("link: at least one signing key is required")
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, log: log, metrics: grpcmetrics.NewService()}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()

	s.store, err = linkdb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("link: open store: %w", err)
	}
	keys, err := keyset.New(cfg.SigningKeys, s.store.LiveKeyIDs, keyset.Options{Now: cfg.Now, Log: log})
	if err != nil {
		return nil, fmt.Errorf("link: signing keys: %w", err)
	}

	s.grpc, err = grpcx.NewServer(cfg.GRPCAddr, log, append(cfg.Tracing.ServerOptions(), s.metrics.Server.ServerOption())...)
	if err != nil {
		return nil, fmt.Errorf("link: listen grpc: %w", err)
	}
	linkv1.RegisterLinkServiceServer(s.grpc.Server, linkrpc.New(s.store, keys, cfg.Now, log))
	s.grpc.Health.SetServingStatus(linkv1.LinkService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.grpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)

	if cfg.AdminAddr != "" {
		s.adminLis, err = net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			return nil, fmt.Errorf("link: listen admin: %w", err)
		}
		s.admin = &http.Server{
			Handler:           s.adminMux(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	log.InfoContext(ctx, "link service ready", "grpc_addr", s.GRPCAddr(), "admin_addr", s.AdminAddr(),
		"active_kid", keys.Active().ID, "signing_keys", len(cfg.SigningKeys))
	return s, nil
}

// GRPCAddr is the bound gRPC address.
func (s *Service) GRPCAddr() string { return s.grpc.Addr() }

// AdminAddr is the bound admin address, or "" without an admin server.
func (s *Service) AdminAddr() string {
	if s.adminLis == nil {
		return ""
	}
	return s.adminLis.Addr().String()
}

// Run serves until ctx is done, then shuts down gracefully within
// ShutdownGrace and closes the store. It returns the first serving error,
// or nil after a clean shutdown. Call it once.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.grpc.Serve(gctx, s.cfg.ShutdownGrace); err != nil {
			return fmt.Errorf("serve grpc: %w", err)
		}
		return nil
	})
	if s.admin != nil {
		g.Go(func() error {
			if err := s.admin.Serve(s.adminLis); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve admin: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			s.draining.Store(true)
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), s.cfg.ShutdownGrace)
			defer cancel()
			if err := s.admin.Shutdown(sctx); err != nil {
				_ = s.admin.Close()
			}
			return nil
		})
	}
	err := g.Wait()
	s.draining.Store(true)
	if cerr := s.store.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	s.log.Info("link service stopped")
	return err
}

// closeAll releases what New opened, when New fails.
func (s *Service) closeAll() {
	if s.grpc != nil {
		s.grpc.Server.Stop()
	}
	if s.adminLis != nil {
		_ = s.adminLis.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
}

func (s *Service) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			OK bool `json:"ok"`
		}{true})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		checks := map[string]string{"database": "ok"}
		ok := true
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.store.Ping(ctx); err != nil {
			checks["database"] = err.Error()
			ok = false
		}
		if s.draining.Load() {
			checks["draining"] = "shutting down"
			ok = false
		}
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, readiness{OK: ok, Checks: checks})
	})
	return mux
}

// readyTimeout bounds the database check of /readyz.
const readyTimeout = 2 * time.Second

type readiness struct {
	OK     bool              `json:"ok"`
	Checks map[string]string `json:"checks"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
