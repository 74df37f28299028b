package main

import (
	"time"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/internal/config"
)

// registerLimitFlags declares the abuse controls and slow-client timeouts
// (docs/operations.md). A negative rate or quota turns that limit off.
// proxies receives -trusted-proxies, for limits.ParseProxies.
func registerLimitFlags(fs *config.FlagSet, cfg *gatewayd.Config, proxies *string) {
	l := &cfg.Limits
	fs.Float64(&l.ConnFrames.PerSecond, "rate-conn-frames", limits.DefaultConnFrames.PerSecond, "client frames per second per stream-plane connection (over: close 4429 rate_limited; <0: off)")
	fs.Int(&l.ConnFrames.Burst, "rate-conn-burst", limits.DefaultConnFrames.Burst, "burst of client frames per connection")
	fs.Float64(&l.AccountTokens.PerSecond, "rate-account-tokens", limits.DefaultAccountTokens.PerSecond, "tokens per second one account may emit through this gateway (over: 4429, HTTP 429; <0: off)")
	fs.Int(&l.AccountTokens.Burst, "rate-account-burst", limits.DefaultAccountTokens.Burst, "burst of tokens per account (at least 256)")
	fs.Int(&l.AccountConns, "max-conns-per-account", limits.DefaultAccountConns, "live connections one account may hold on this gateway (over: 4003 connection_limit_exceeded; <0: off)")
	fs.Float64(&l.ControlIP.PerSecond, "rate-control-ip", limits.DefaultControlIP.PerSecond, "control-plane requests per second per client IP (over: 429 rate_limited; <0: off)")
	fs.Int(&l.ControlIP.Burst, "rate-control-ip-burst", limits.DefaultControlIP.Burst, "burst of control-plane requests per client IP")
	fs.Float64(&l.ControlCredential.PerSecond, "rate-control-credential", limits.DefaultControlCredential.PerSecond, "control-plane requests per second per credential (over: 429 rate_limited; <0: off)")
	fs.Int(&l.ControlCredential.Burst, "rate-control-credential-burst", limits.DefaultControlCredential.Burst, "burst of control-plane requests per credential")
	fs.String(proxies, "trusted-proxies", "", "comma-separated CIDR prefixes or addresses of reverse proxies in front of the gateway: a request from one is limited per the client address it names in X-Forwarded-For (empty: the header is ignored)")

	fs.Duration(&cfg.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send a request's headers")
	fs.Duration(&cfg.HTTPIdleTimeout, "http-idle-timeout", 120*time.Second, "idle keep-alive HTTP connections are closed after this")
	fs.Int(&cfg.MaxHeaderBytes, "max-header-bytes", 64<<10, "largest request line and headers in bytes (over: 431)")
	fs.Duration(&cfg.WSPingEvery, "ws-ping-every", 30*time.Second, "WebSocket ping interval")
	fs.Duration(&cfg.WSIdleTimeout, "ws-idle-timeout", 90*time.Second, "a WebSocket silent this long is dropped")
	fs.Duration(&cfg.GRPCKeepalive.Time, "grpc-keepalive-time", 30*time.Second, "gRPC ping of a connection idle this long")
	fs.Duration(&cfg.GRPCKeepalive.Timeout, "grpc-keepalive-timeout", 60*time.Second, "gRPC connection dropped when a ping is unanswered this long")
	fs.Duration(&cfg.GRPCKeepalive.MinPing, "grpc-min-ping", 10*time.Second, "clients pinging more often get GOAWAY ENHANCE_YOUR_CALM")
}
