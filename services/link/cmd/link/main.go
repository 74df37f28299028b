// Command link runs the AMS link service: conversations, magic links and
// their signing keys, over gRPC for the gateways.
//
// Every flag can also be set by AMS_LINK_<FLAG>; the signing keys are a
// secret read from -signing-keys-file or AMS_LINK_SIGNING_KEYS, never from
// the command line. `link -generate-key` prints a new key and exits.
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

	"github.com/amsrouter/ams/services/internal/config"
	"github.com/amsrouter/ams/services/internal/logging"
	"github.com/amsrouter/ams/services/internal/telemetry"
	"github.com/amsrouter/ams/services/link/internal/keyset"
	"github.com/amsrouter/ams/services/link/linkd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "link:", err)
		os.Exit(1)
	}
}

// run: config → logger → service (store + migrations, listeners) → serve
// until ctx is done → shutdown.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// Config.
	fs := config.New("link", "LINK", getenv, stderr)
	var (
		cfg                 linkd.Config
		keysPEM             config.Secret
		logFormat, logLevel string
		generateKey         bool
	)
	fs.String(&cfg.GRPCAddr, "grpc-addr", ":7002", "LinkService gRPC listen address")
	fs.String(&cfg.AdminAddr, "admin-addr", ":7102", "admin HTTP address for /healthz, /readyz and /metrics (empty: none)")
	fs.String(&cfg.DatabaseURL, "database-url", "", "database: postgres://… or sqlite:<path> (required)")
	fs.Secret(&keysPEM, "signing-keys", false,
		"Ed25519 signing keys as PEM (PKCS#8) blocks, active key first, retired keys after it (required)")
	fs.String(&logFormat, "log-format", "json", "log format: json or text")
	fs.String(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Duration(&cfg.ShutdownGrace, "shutdown-grace", 10*time.Second, "graceful shutdown deadline")
	fs.FlagSet.BoolVar(&generateKey, "generate-key", false,
		"print a new Ed25519 signing key (PEM) to stdout and exit; to rotate keys, put the new key first in the signing keys and keep the old ones after it until their links end")
	var tracing telemetry.Config
	telemetry.RegisterFlags(fs, &tracing)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if generateKey {
		k, err := keyset.Generate()
		if err != nil {
			return err
		}
		text, err := keyset.Encode(k)
		if err != nil {
			return err
		}
		_, err = stdout.Write(text)
		return err
	}
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("database-url is required: set -database-url or %s", fs.Env("database-url"))
	}
	if !keysPEM.Set() {
		return fmt.Errorf("signing-keys is required: set -signing-keys-file or %s (make one with -generate-key)", fs.Env("signing-keys"))
	}
	keys, err := keyset.Parse(keysPEM)
	if err != nil {
		return err
	}
	cfg.SigningKeys = keys

	// Logger.
	log, err := logging.New(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	log.Info("link starting", redactURL(fs.LogAttrs(), "database_url")...)

	// Tracing: off unless an OTLP endpoint is set.
	cfg.Tracing, err = telemetry.New(ctx, tracing, "ams-link", "")
	if err != nil {
		return err
	}
	defer shutdownTracing(cfg.Tracing)

	// Service: store, migrations, listeners.
	svc, err := linkd.New(ctx, cfg, log)
	if err != nil {
		return err
	}

	// Serve until a signal, then shut down.
	return svc.Run(ctx)
}

// redactURL hides the password of the URL attribute named key.
func redactURL(attrs []any, key string) []any {
	for i, a := range attrs {
		if at, ok := a.(slog.Attr); ok && at.Key == key {
			if u, err := url.Parse(at.Value.String()); err == nil && u.User != nil {
				attrs[i] = slog.String(key, u.Redacted())
			} else if err != nil {
				attrs[i] = slog.String(key, "[unparsable]")
			}
		}
	}
	return attrs
}

// shutdownTracing flushes the spans not yet exported, within a deadline.
func shutdownTracing(t *telemetry.Provider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.Shutdown(ctx)
}
