// Command account runs the AMS account service: namespaces, bearer
// credentials (stored only as peppered hashes), authentication and
// rotation, over gRPC for the gateways. main only wires; the service lives
// in accountd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/amsrouter/ams/services/account/accountd"
	"github.com/amsrouter/ams/services/internal/config"
	"github.com/amsrouter/ams/services/internal/logging"
	"github.com/amsrouter/ams/services/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "account:", err)
		os.Exit(1)
	}
}

// run: config → logger → service (store + migrations, listeners) → serve
// until ctx is done → shutdown.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	// Config.
	var (
		cfg       accountd.Config
		pepper    config.Secret
		logFormat string
		logLevel  string
	)
	fs := config.New("account", "ACCOUNT", getenv, stderr)
	fs.String(&cfg.GRPCAddr, "grpc-addr", ":7001", "gRPC listen address of AccountService")
	fs.String(&cfg.AdminAddr, "admin-addr", ":7101", "admin HTTP listen address (/healthz, /readyz, /metrics); empty for none")
	fs.String(&cfg.DatabaseURL, "database-url", "", "database: postgres://… , postgresql://… or sqlite:<path> (required)")
	fs.Secret(&pepper, "credential-pepper", true, fmt.Sprintf("HMAC key of stored credential hashes, at least %d bytes", accountd.MinPepperLen))
	fs.String(&logFormat, "log-format", "json", "log format: json or text")
	fs.String(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Duration(&cfg.ShutdownGrace, "shutdown-grace", 10*time.Second, "graceful shutdown deadline")
	var tracing telemetry.Config
	telemetry.RegisterFlags(fs, &tracing)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("database-url is required: set -database-url or %s", fs.Env("database-url"))
	}
	cfg.CredentialPepper = pepper

	// Logger.
	log, err := logging.New(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	attrs := fs.LogAttrs()
	for i, a := range attrs {
		if a, ok := a.(slog.Attr); ok && a.Key == "database_url" {
			attrs[i] = slog.String(a.Key, redactURL(cfg.DatabaseURL))
		}
	}
	log.Info("account service starting", append(attrs, slog.Any("credential_pepper", pepper))...)

	// Tracing: off unless an OTLP endpoint is set.
	cfg.Tracing, err = telemetry.New(ctx, tracing, "ams-account", "")
	if err != nil {
		return err
	}
	defer shutdownTracing(cfg.Tracing)

	// Store, migrations and listeners.
	svc, err := accountd.New(ctx, cfg, log)
	if err != nil {
		return err
	}

	// Serve until ctx is done, then shut down.
	return svc.Run(ctx)
}

// redactURL hides a password in a database URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable]"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// shutdownTracing flushes the spans not yet exported, within a deadline.
func shutdownTracing(t *telemetry.Provider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.Shutdown(ctx)
}
