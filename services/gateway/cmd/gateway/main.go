// Command gateway runs one stateless AMS gateway replica: the public HTTP
// surface (control plane, stream plane, MCP, viewer), backed by the account
// and link services over gRPC and by NATS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/gateway/internal/wsconn"
	"github.com/amsrouter/ams/services/internal/config"
	"github.com/amsrouter/ams/services/internal/gcfloor"
	"github.com/amsrouter/ams/services/internal/logging"
	"github.com/amsrouter/ams/services/internal/pprofserve"
	"github.com/amsrouter/ams/services/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	// Config.
	var (
		cfg               gatewayd.Config
		pepper            config.Secret
		logFormat, logLvl string
	)
	fs := config.New("gateway", "GATEWAY", getenv, stderr)
	fs.String(&cfg.HTTPAddr, "http-addr", ":8080", "public HTTP listen address")
	fs.String(&cfg.GRPCAddr, "grpc-addr", ":9090", "public gRPC listen address (ams.v1); empty: no gRPC")
	fs.String(&cfg.PublicURL, "public-url", "", "base URL of magic links (default: from each request's Host)")
	fs.String(&cfg.AccountAddr, "account-addr", "127.0.0.1:7001", "account service gRPC address")
	fs.String(&cfg.LinkAddr, "link-addr", "127.0.0.1:7002", "link service gRPC address")
	fs.String(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL")
	fs.Duration(&cfg.AuthCacheTTL, "auth-cache-ttl", 0, "how long an authenticated credential is reused (at most 5s; default 3s)")
	fs.Duration(&cfg.RevocationPoll, "revocation-poll", 0, "how often link revocations are pulled (default 1s)")
	fs.Duration(&cfg.ShutdownGrace, "shutdown-grace", 0, "how long shutdown may take (default 10s)")
	fs.String(&cfg.Name, "name", "", "replica name: letters, digits, - and _ (default: generated)")
	var publishMode string
	fs.Duration(&cfg.Data.MaxAge, "retention-max-age", dataplane.DefaultMaxAge, "how long stream events are kept for resume")
	fs.Int64(&cfg.Data.MaxEvents, "retention-max-events", dataplane.DefaultMaxEvents, "events kept per stream for resume")
	fs.Int64(&cfg.Data.MaxBytes, "retention-max-bytes", dataplane.DefaultMaxBytes, "total bytes of retained events (-1: no cap)")
	fs.Duration(&cfg.Data.RecordMaxAge, "stream-record-max-age", dataplane.DefaultRecordMaxAge, "how long a stream's record outlives its last change (seq continuity across rejoins)")
	fs.Int(&cfg.Data.Replicas, "jetstream-replicas", 1, "replicas of the JetStream stream and buckets (3 in production)")
	fs.String(&publishMode, "publish-mode", string(dataplane.PublishCore), "event publish mode: core or jetstream")
	fs.Duration(&cfg.Hub.Grace, "grace", 10*time.Second, "how long a stream whose connection was lost stays present")
	fs.Duration(&cfg.Hub.DeadAfter, "gateway-dead-after", 10*time.Second, "silence after which another gateway is considered gone")
	fs.Int(&cfg.Hub.MaxJoining, "max-joining", 4096, "joins whose NATS work runs at once (more wait their turn)")
	fs.Int(&cfg.Hub.MaxReplaying, "max-replaying", 64, "resume replays and gap repairs reading JetStream at once (more wait their turn)")
	fs.Int(&cfg.Hub.TailEvents, "resume-tail", 256, "newest events of each stream kept in memory, so that resumes that missed only those do not read JetStream (negative: none)")
	fs.Int(&cfg.Hub.TailBytes, "resume-tail-bytes", 256<<10, "bytes of frames each stream's in-memory tail keeps at most")
	fs.Int64(&cfg.Hub.TailTotalBytes, "resume-tail-total", 64<<20, "bytes of frames all streams' in-memory tails keep at most together (a stream that finds them full keeps none)")
	fs.Int(&cfg.Hub.QueueFrames, "queue-frames", 1024, "outbound queue bound per connection, in frames")
	fs.Int(&cfg.Hub.QueueBytes, "queue-bytes", 8<<20, "outbound queue bound per connection, in bytes")
	fs.Int(&cfg.SendBuffer, "send-buffer", 0, "kernel send buffer per client connection in bytes (0: the kernel sizes it)")
	fs.Bool(&cfg.WSBlockingReads, "ws-blocking-reads", false, "read each WebSocket in a goroutine of its own instead of the epoll set (idle connections cost a goroutine each)")
	fs.Duration(&cfg.WSReadLinger, "ws-read-linger", wsconn.DefaultReadLinger, "how long a WebSocket reader that took a data message waits for the next before it parks in the epoll set (negative: park at once)")
	var proxies string
	registerLimitFlags(fs, &cfg, &proxies)
	fs.Secret(&pepper, "derivation-pepper", true, "secret pepper of derived ids, shared by every gateway")
	fs.String(&logFormat, "log-format", "json", "log format: json or text")
	fs.String(&logLvl, "log-level", "info", "log level: debug, info, warn, error")
	var gcFloor int64
	fs.Int64(&gcFloor, "gc-heap-floor", 32<<20, "bytes the heap may grow to before the garbage collector runs, however small the live heap (0: GOGC alone); above it GOGC paces collections")
	var pprofAddr string
	fs.String(&pprofAddr, "pprof-addr", "", "admin listener of /debug/pprof/ (e.g. 127.0.0.1:6060); empty: off; never expose it publicly")
	var tracing telemetry.Config
	telemetry.RegisterFlags(fs, &tracing)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.DerivationPepper = pepper
	trusted, err := limits.ParseProxies(proxies)
	if err != nil {
		return err
	}
	cfg.Limits.TrustedProxies = trusted
	switch dataplane.PublishMode(publishMode) {
	case dataplane.PublishCore, dataplane.PublishJetStream:
		cfg.Data.Mode = dataplane.PublishMode(publishMode)
	default:
		return fmt.Errorf("publish mode %q: want core or jetstream", publishMode)
	}

	// Logger.
	log, err := logging.New(stderr, logFormat, logLvl)
	if err != nil {
		return err
	}
	log.Info("gateway starting", fs.LogAttrs()...)

	// Collections: a floor under the heap goal, so that a small live heap
	// with a busy token path is not collected ten times a second.
	if gcFloor < 0 {
		return fmt.Errorf("gc heap floor %d: want 0 or more bytes", gcFloor)
	}
	defer gcfloor.Start(uint64(gcFloor)).Stop()

	// Tracing: off unless an OTLP endpoint is set.
	cfg.Tracing, err = telemetry.New(ctx, tracing, "ams-gateway", cfg.Name)
	if err != nil {
		return err
	}
	defer shutdownTracing(cfg.Tracing)

	// Profiles, opt-in, on their own admin listener.
	if pprofAddr != "" {
		pctx, stopPprof := context.WithCancel(ctx)
		_, wait, err := pprofserve.Serve(pctx, pprofAddr, log)
		if err != nil {
			stopPprof()
			return err
		}
		defer wait()
		defer stopPprof()
	}

	// Servers.
	g, err := gatewayd.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return g.Run(ctx)
}

// shutdownTracing flushes the spans not yet exported, within a deadline.
func shutdownTracing(t *telemetry.Provider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.Shutdown(ctx)
}
