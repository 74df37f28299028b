package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/amsrouter/ams/services/account/accountd"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/internal/config"
	"github.com/amsrouter/ams/services/internal/logging"
	"github.com/amsrouter/ams/services/internal/natsserver"
	"github.com/amsrouter/ams/services/internal/telemetry"
	"github.com/amsrouter/ams/services/link/linkd"
)

// devShutdownGrace bounds each stage of the dev shutdown.
const devShutdownGrace = 5 * time.Second

// Files of the dev data directory.
const (
	credentialPepperFile = "credential-pepper"
	derivationPepperFile = "derivation-pepper"
	signingKeysFile      = "signing-keys.pem"
	accountDBFile        = "account.db"
	linkDBFile           = "link.db"
	natsDir              = "nats"
)

// runDev runs the whole system in one process: config → logger → data
// directory and secrets → embedded NATS → account and link services
// (SQLite, real gRPC on loopback) → gateway → serve until ctx is done →
// shut down the gateway first, then the services, then NATS.
func runDev(ctx context.Context, e env, args []string) error {
	// Config.
	var dataDir, httpAddr, grpcAddr, publicURL, logFormat, logLevel string
	fs := config.New("ams dev", "DEV", e.getenv, e.stderr)
	fs.String(&dataDir, "data-dir", "data", "directory of the databases, the NATS store, the peppers and the signing key (created if missing)")
	fs.String(&httpAddr, "http-addr", ":8080", "public HTTP listen address of the gateway")
	fs.String(&grpcAddr, "grpc-addr", ":9090", "public gRPC listen address of the gateway (ams.v1); empty: no gRPC")
	fs.String(&publicURL, "public-url", "", "base URL of magic links (default: from each request's Host)")
	fs.String(&logFormat, "log-format", "text", "log format: text or json")
	fs.String(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	var tracingCfg telemetry.Config
	telemetry.RegisterFlags(fs, &tracingCfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	// Logger.
	log, err := logging.New(e.stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	log.Info("ams dev starting", fs.LogAttrs()...)

	// Data directory and secrets, generated on first start.
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	credentialPepper, err := loadOrCreateSecret(filepath.Join(dataDir, credentialPepperFile))
	if err != nil {
		return err
	}
	derivationPepper, err := loadOrCreateSecret(filepath.Join(dataDir, derivationPepperFile))
	if err != nil {
		return err
	}
	signingKeys, err := linkd.LoadOrCreateKeys(filepath.Join(dataDir, signingKeysFile))
	if err != nil {
		return err
	}

	// Tracing, one provider per service: off unless an OTLP endpoint is
	// set.
	tracing := map[string]*telemetry.Provider{}
	for _, svc := range []string{"ams-account", "ams-link", "ams-gateway"} {
		if tracing[svc], err = telemetry.New(ctx, tracingCfg, svc, "dev"); err != nil {
			return err
		}
		defer func(p *telemetry.Provider) {
			sctx, cancel := context.WithTimeout(context.Background(), devShutdownGrace)
			defer cancel()
			_ = p.Shutdown(sctx)
		}(tracing[svc])
	}

	// NATS with JetStream, in-process only: it listens on no port.
	ns, err := natsserver.Start(natsserver.Options{StoreDir: filepath.Join(dataDir, natsDir)})
	if err != nil {
		return err
	}
	defer ns.Stop()

	// Services: stores (migrated on open) and gRPC listeners on loopback.
	acc, err := accountd.New(ctx, accountd.Config{
		GRPCAddr:         "127.0.0.1:0",
		DatabaseURL:      "sqlite:" + filepath.Join(dataDir, accountDBFile),
		CredentialPepper: credentialPepper,
		ShutdownGrace:    devShutdownGrace,
		Tracing:          tracing["ams-account"],
	}, log.With("service", "account"))
	if err != nil {
		return err
	}
	lnk, err := linkd.New(ctx, linkd.Config{
		GRPCAddr:      "127.0.0.1:0",
		DatabaseURL:   "sqlite:" + filepath.Join(dataDir, linkDBFile),
		SigningKeys:   signingKeys,
		ShutdownGrace: devShutdownGrace,
		Tracing:       tracing["ams-link"],
	}, log.With("service", "link"))
	if err != nil {
		_ = acc.Close()
		return err
	}

	// Serve the services before the gateway dials them. A service that
	// stops early stops the gateway; a signal stops the gateway first, then
	// the services, then (deferred) NATS.
	svcCtx, stopServices := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServices()
	gwCtx, stopGateway := context.WithCancel(ctx)
	defer stopGateway()
	var services errgroup.Group
	services.Go(func() error { defer stopGateway(); return acc.Run(svcCtx) })
	services.Go(func() error { defer stopGateway(); return lnk.Run(svcCtx) })

	// Gateway.
	gw, err := gatewayd.New(ctx, gatewayd.Config{
		HTTPAddr:         httpAddr,
		GRPCAddr:         grpcAddr,
		PublicURL:        publicURL,
		AccountAddr:      acc.GRPCAddr(),
		LinkAddr:         lnk.GRPCAddr(),
		NATSOptions:      []nats.Option{ns.ConnectOption()},
		DerivationPepper: derivationPepper,
		ShutdownGrace:    devShutdownGrace,
		Name:             "dev",
		Tracing:          tracing["ams-gateway"],
	}, log.With("service", "gateway"))
	if err != nil {
		stopServices()
		return errors.Join(err, services.Wait())
	}

	base := publicURL
	if base == "" {
		base = localURL(gw.HTTPAddr())
	}
	abs, _ := filepath.Abs(dataDir)
	fmt.Fprint(e.stdout, banner(base, abs))

	gwErr := gw.Run(gwCtx)
	stopServices()
	err = errors.Join(gwErr, services.Wait())
	log.Info("ams dev stopped")
	return err
}

// localURL is the URL a local client reaches the listener addr at:
// unspecified hosts (":8080", "[::]:8080") become localhost.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// loadOrCreateSecret reads the secret in the file at path, creating it
// (mode 0600) with 32 random bytes in hex when it does not exist. Of
// concurrent creators one file wins and all read it.
func loadOrCreateSecret(path string) (config.Secret, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < accountd.MinPepperLen {
			return nil, fmt.Errorf("secret %s is shorter than %d bytes", filepath.Base(path), accountd.MinPepperLen)
		}
		return config.Secret(b), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	text := []byte(hex.EncodeToString(raw))
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("write secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(text)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		return nil, fmt.Errorf("write secret: %w", err)
	}
	// Link fails if path exists: never overwrite a secret written since.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateSecret(path)
		}
		return nil, fmt.Errorf("write secret: %w", err)
	}
	return config.Secret(text), nil
}
