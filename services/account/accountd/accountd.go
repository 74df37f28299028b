// Package accountd is the account service as a value: Config, New and Run.
// cmd/account wires it from flags; the all-in-one binary (cmd/ams) builds
// the same Service from a Config literal, so both run the same code.
//
// A Service owns a store (Postgres or SQLite, migrated at New), a gRPC
// server for ams.account.v1.AccountService with gRPC health, and an
// optional admin HTTP listener with /healthz, /readyz and /metrics.
// Listeners are bound in New, so ":0" addresses work and
// GRPCAddr/AdminAddr report the real ones.
package accountd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	"github.com/amsrouter/ams/services/account/internal/accountrpc"
	"github.com/amsrouter/ams/services/account/internal/store"
	"github.com/amsrouter/ams/services/account/internal/storeopen"
	"github.com/amsrouter/ams/services/internal/grpcmetrics"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/telemetry"
)

// MinPepperLen is the shortest credential pepper Config accepts, in bytes.
const MinPepperLen = 16

// DefaultShutdownGrace is used when Config.ShutdownGrace is zero.
const DefaultShutdownGrace = 10 * time.Second

// readyTimeout bounds the database check of /readyz.
const readyTimeout = 2 * time.Second

// Config configures a Service. Tests and cmd/ams fill it directly.
type Config struct {
	// GRPCAddr is the gRPC listen address (":7001"; ":0" picks a port).
	GRPCAddr string
	// AdminAddr is the admin HTTP listen address; empty means none.
	AdminAddr string
	// DatabaseURL names the store: postgres://…, postgresql://… or
	// sqlite:<path> (sqlite::memory: for a private in-memory database).
	DatabaseURL string
	// CredentialPepper is the HMAC key of stored credential hashes, at
	// least MinPepperLen bytes. Changing it invalidates every credential.
	CredentialPepper []byte
	// ShutdownGrace bounds graceful shutdown; zero means
	// DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// Tracing traces gRPC calls; nil: off. The caller shuts it down.
	Tracing *telemetry.Provider
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.GRPCAddr == "":
		return errors.New("grpc address is required")
	case c.DatabaseURL == "":
		return errors.New("database url is required")
	case len(c.CredentialPepper) == 0:
		return errors.New("credential pepper is required")
	case len(c.CredentialPepper) < MinPepperLen:
		return fmt.Errorf("credential pepper is %d bytes, want at least %d", len(c.CredentialPepper), MinPepperLen)
	case c.ShutdownGrace < 0:
		return errors.New("shutdown grace must not be negative")
	}
	return nil
}

// Migrate applies the account schema's pending migrations to the database
// named by databaseURL and returns (for `ams migrate` and migration jobs).
// New migrates too; calling Migrate first is never required.
func Migrate(ctx context.Context, databaseURL string) error {
	return storeopen.Migrate(ctx, databaseURL)
}

// Service is a running-to-be account service.
type Service struct {
	log      *slog.Logger
	grace    time.Duration
	store    store.Store
	grpc     *grpcx.Server
	metrics  *grpcmetrics.Service
	admin    *http.Server
	adminLis net.Listener
	draining atomic.Bool
	ran      atomic.Bool
	close    sync.Once
}

// New validates cfg, opens and migrates the store, and binds the gRPC and
// admin listeners. Nothing is served until Run. A Service that will never
// Run must be released with Close.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("account config: %w", err)
	}
	grace := cfg.ShutdownGrace
	if grace == 0 {
		grace = DefaultShutdownGrace
	}
	st, err := storeopen.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("open account store: %w", err)
	}
	s := &Service{log: log, grace: grace, store: st, metrics: grpcmetrics.NewService()}

	s.grpc, err = grpcx.NewServer(cfg.GRPCAddr, log, append(cfg.Tracing.ServerOptions(), s.metrics.Server.ServerOption())...)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen grpc: %w", err)
	}
	accountv1.RegisterAccountServiceServer(s.grpc.Server,
		accountrpc.New(st, ids.NewCredentialHasher(cfg.CredentialPepper), log))
	s.grpc.Health.SetServingStatus(accountv1.AccountService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.grpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)

	if cfg.AdminAddr != "" {
		s.adminLis, err = net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			s.releaseGRPC()
			st.Close()
			return nil, fmt.Errorf("listen admin: %w", err)
		}
		s.admin = &http.Server{
			Handler:           s.adminHandler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	return s, nil
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Service) GRPCAddr() string { return s.grpc.Addr() }

// AdminAddr is the address of the admin listener, or "" if there is none.
func (s *Service) AdminAddr() string {
	if s.adminLis == nil {
		return ""
	}
	return s.adminLis.Addr().String()
}

// Run serves until ctx is done, then shuts down: readiness turns false, the
// gRPC server stops gracefully and the admin server shuts down, in parallel
// under the shutdown grace; finally the store closes. Run returns nil after
// a shutdown caused by ctx, or the error that stopped a server early. Run
// may be called once.
func (s *Service) Run(ctx context.Context) error {
	if s.ran.Swap(true) {
		return errors.New("account service: Run called twice")
	}
	s.log.InfoContext(ctx, "account service serving", "grpc_addr", s.GRPCAddr(), "admin_addr", s.AdminAddr())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-gctx.Done()
		s.draining.Store(true)
		return nil
	})
	g.Go(func() error {
		if err := s.grpc.Serve(gctx, s.grace); err != nil {
			return fmt.Errorf("serve grpc: %w", err)
		}
		return nil
	})
	if s.admin != nil {
		g.Go(func() error {
			errc := make(chan error, 1)
			go func() { errc <- s.admin.Serve(s.adminLis) }()
			select {
			case err := <-errc:
				return fmt.Errorf("serve admin: %w", err)
			case <-gctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), s.grace)
			defer cancel()
			if err := s.admin.Shutdown(sctx); err != nil {
				s.admin.Close()
			}
			<-errc
			return nil
		})
	}
	err := g.Wait()
	if cerr := s.closeStore(); cerr != nil && err == nil {
		err = cerr
	}
	s.log.InfoContext(context.WithoutCancel(ctx), "account service stopped")
	return err
}

// Close releases a Service that was never Run: its listeners and store.
// After Run it does nothing.
func (s *Service) Close() error {
	if s.ran.Swap(true) {
		return nil
	}
	s.releaseGRPC()
	if s.adminLis != nil {
		s.adminLis.Close()
	}
	return s.closeStore()
}

// releaseGRPC closes the unserved gRPC listener: serving with a done
// context stops at once, and grpc closes the listener.
func (s *Service) releaseGRPC() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.grpc.Serve(ctx, 0)
}

func (s *Service) closeStore() error {
	var err error
	s.close.Do(func() {
		if cerr := s.store.Close(); cerr != nil {
			err = fmt.Errorf("close account store: %w", cerr)
		}
	})
	return err
}

func (s *Service) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		type body struct {
			OK     bool              `json:"ok"`
			Checks map[string]string `json:"checks"`
		}
		b := body{OK: true, Checks: map[string]string{"database": "ok"}}
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.store.Ping(ctx); err != nil {
			b.OK = false
			b.Checks["database"] = err.Error()
		}
		if s.draining.Load() {
			b.OK = false
			b.Checks["draining"] = "shutting down"
		}
		status := http.StatusOK
		if !b.OK {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, b)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
