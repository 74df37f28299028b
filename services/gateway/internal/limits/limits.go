// Package limits holds a gateway's abuse controls: token-bucket rate
// limits (golang.org/x/time/rate) per stream-plane connection, per account
// and per control-plane client, and the quota of live connections per
// account.
//
// Every limit is local to one gateway: an account connected to N gateways
// may emit N times its per-account rate, and a client spreading requests
// over N gateways gets N control-plane budgets. They bound what one client
// can make one replica do; they are not a global quota.
//
// What each limit counts, and what happens over it:
//
//   - ConnFrames: client messages of one connection (a WebSocket data
//     message or ping, a gRPC ClientFrame, an MCP request). Over it the
//     connection is closed 4429 rate_limited (MCP: HTTP 429).
//   - AccountTokens: events (tokens and metadata changes) one account
//     emits through every transport of this gateway. Over it a connection
//     is closed 4429 rate_limited; HTTP emit answers 429 rate_limited with
//     Retry-After; an MCP tool returns the rate_limited domain error.
//   - AccountConns: live connections of one persistent account on this
//     gateway: streams, observers holding its credential, MCP wires.
//     Over it a connect is refused 4003 connection_limit_exceeded (HTTP
//     429 on SSE). Anonymous accounts are exempt (they are bounded by the
//     conversation's caps, spec 4.2 check 10).
//   - ControlIP, ControlCredential: control-plane requests (HTTP /v1/*,
//     gRPC AccountService and ConversationService) per client IP (per /64
//     for IPv6) and per Bearer credential. Over either the request is
//     answered 429 rate_limited with Retry-After (gRPC RESOURCE_EXHAUSTED).
//     Behind trusted proxies the client IP is the one they forward
//     (ClientAddr).
//
// A nil *Limits, and a nil *Conn or *Account, limit nothing, so handlers
// built without limits work unchanged.
package limits

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Rate is a token bucket: PerSecond events per second on average, at most
// Burst at once. PerSecond 0 takes the default; a negative PerSecond turns
// the limit off. Burst 0 takes the default.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Off reports whether the limit is turned off.
func (r Rate) Off() bool { return r.PerSecond < 0 }

func (r Rate) orDefault(def Rate) Rate {
	if r.PerSecond == 0 {
		r.PerSecond = def.PerSecond
	}
	if r.Burst <= 0 {
		r.Burst = def.Burst
	}
	return r
}

func (r Rate) limiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
}

// Defaults. They are generous: ordinary clients, the examples and the
// test suites never reach them; they stop one client from monopolising a
// replica.
var (
	DefaultConnFrames        = Rate{PerSecond: 5000, Burst: 20000}
	DefaultAccountTokens     = Rate{PerSecond: 20000, Burst: 40000}
	DefaultControlIP         = Rate{PerSecond: 50, Burst: 200}
	DefaultControlCredential = Rate{PerSecond: 50, Burst: 200}
)

// DefaultAccountConns is the default quota of live connections per account
// on one gateway.
const DefaultAccountConns = 100

// MinAccountBurst is the least per-account burst: one HTTP emit of 256
// tokens must fit in the bucket.
const MinAccountBurst = 256

// Config configures the limits of one gateway.
type Config struct {
	ConnFrames    Rate
	AccountTokens Rate
	// AccountConns: 0 takes the default, negative is no quota.
	AccountConns      int
	ControlIP         Rate
	ControlCredential Rate
	// TrustedProxies are the reverse proxies in front of the gateway
	// (ingress controllers, layer-7 load balancers). A control-plane
	// request whose TCP peer is one of them counts against the client
	// address the proxies name in X-Forwarded-For (ClientAddr). Empty: the
	// header is never read.
	TrustedProxies []netip.Prefix
}

// Unlimited turns every limit off (benchmarks, load tests).
var Unlimited = Config{
	ConnFrames: Rate{PerSecond: -1}, AccountTokens: Rate{PerSecond: -1}, AccountConns: -1,
	ControlIP: Rate{PerSecond: -1}, ControlCredential: Rate{PerSecond: -1},
}

// WithDefaults returns the config with its zero values defaulted.
func (c Config) WithDefaults() Config {
	c.ConnFrames = c.ConnFrames.orDefault(DefaultConnFrames)
	c.AccountTokens = c.AccountTokens.orDefault(DefaultAccountTokens)
	if c.AccountTokens.Burst < MinAccountBurst {
		c.AccountTokens.Burst = MinAccountBurst
	}
	if c.AccountConns == 0 {
		c.AccountConns = DefaultAccountConns
	}
	c.ControlIP = c.ControlIP.orDefault(DefaultControlIP)
	c.ControlCredential = c.ControlCredential.orDefault(DefaultControlCredential)
	return c
}

// Error is a rate_limited error with the time after which a retry can
// succeed (HTTP Retry-After, gRPC RetryInfo).
type Error struct {
	Err   *wireerr.Error
	After time.Duration
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap gives the catalogue error.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long to wait before retrying.
func (e *Error) RetryAfter() time.Duration { return e.After }

// RetryAfterSeconds renders a wait as whole seconds for Retry-After: at
// least 1.
func RetryAfterSeconds(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

func rateErr(msg string, after time.Duration) *Error {
	return &Error{Err: wireerr.New(wireerr.RateLimited, msg), After: after}
}

// sweepEvery is how often idle buckets are dropped; maxKeys bounds the
// keyed maps between sweeps (a sweep runs early when one is reached).
const (
	sweepEvery = time.Minute
	maxKeys    = 100_000
)

// Limits are the abuse controls of one gateway. It is safe for concurrent
// use.
type Limits struct {
	cfg Config
	now func() time.Time

	mu        sync.Mutex
	accounts  map[string]*account
	lastSweep time.Time

	ip   *keyed
	cred *keyed
}

// New returns the limits of cfg (zero values defaulted).
func New(cfg Config) *Limits {
	cfg = cfg.WithDefaults()
	l := &Limits{cfg: cfg, now: time.Now, accounts: map[string]*account{}}
	if !cfg.ControlIP.Off() {
		l.ip = newKeyed(cfg.ControlIP)
	}
	if !cfg.ControlCredential.Off() {
		l.cred = newKeyed(cfg.ControlCredential)
	}
	return l
}

// Config is the effective configuration.
func (l *Limits) Config() Config {
	if l == nil {
		return Config{}
	}
	return l.cfg
}

// Conn is the frame limiter of one connection (or MCP session). It is
// safe for concurrent use.
type Conn struct {
	lim *rate.Limiter
}

// Conn returns a new connection's frame limiter (nil when off).
func (l *Limits) Conn() *Conn {
	if l == nil || l.cfg.ConnFrames.Off() {
		return nil
	}
	return &Conn{lim: l.cfg.ConnFrames.limiter()}
}

var errConnRate = wireerr.New(wireerr.RateLimited, "the connection sends frames faster than its limit")

// Frame counts one client message: nil, or rate_limited over the rate.
func (c *Conn) Frame() error {
	if c == nil || c.lim.Allow() {
		return nil
	}
	return errConnRate
}

// account is the state of one account on this gateway; guarded by
// Limits.mu except the limiter, which has its own lock.
type account struct {
	tokens *rate.Limiter // nil when the token limit is off
	conns  int           // live connections (quota)
	refs   int           // Account handles held by connections
}

// idle reports an account whose state is worth nothing: no connection,
// no handle, a full bucket.
func (a *account) idle(now time.Time, burst int) bool {
	return a.conns == 0 && a.refs == 0 && (a.tokens == nil || a.tokens.TokensAt(now) >= float64(burst))
}

// get returns the account's state, creating it; l.mu is held.
func (l *Limits) get(id string, now time.Time) *account {
	a := l.accounts[id]
	if a == nil {
		if now.Sub(l.lastSweep) > sweepEvery || len(l.accounts) >= maxKeys {
			l.lastSweep = now
			for k, v := range l.accounts {
				if v.idle(now, l.cfg.AccountTokens.Burst) {
					delete(l.accounts, k)
				}
			}
		}
		a = &account{}
		if !l.cfg.AccountTokens.Off() {
			a.tokens = l.cfg.AccountTokens.limiter()
		}
		l.accounts[id] = a
	}
	return a
}

// Account is a connection's handle on its account's token bucket, held
// from join to close so the hot path takes no map lock.
type Account struct {
	l  *Limits
	id string
	a  *account
}

// Account returns a handle on the account's token limit (nil when off or
// without an account). Release it when the connection ends.
func (l *Limits) Account(id string) *Account {
	if l == nil || id == "" || l.cfg.AccountTokens.Off() {
		return nil
	}
	l.mu.Lock()
	a := l.get(id, l.now())
	a.refs++
	l.mu.Unlock()
	return &Account{l: l, id: id, a: a}
}

// Release gives the handle back.
func (h *Account) Release() {
	if h == nil {
		return
	}
	h.l.mu.Lock()
	h.a.refs--
	h.l.mu.Unlock()
}

const errAccountRate = "the account emits faster than its limit on this gateway"

// Tokens counts n events: nil, or rate_limited with the wait after which
// n would pass.
func (h *Account) Tokens(n int) error {
	if h == nil {
		return nil
	}
	return take(h.a.tokens, n, h.l.now(), errAccountRate)
}

// Tokens counts n events of an account without a handle (HTTP emit, MCP
// tools).
func (l *Limits) Tokens(id string, n int) error {
	if l == nil || id == "" || l.cfg.AccountTokens.Off() {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	lim := l.get(id, now).tokens
	l.mu.Unlock()
	return take(lim, n, now, errAccountRate)
}

// take takes n tokens from lim now, or takes none and reports the wait
// until n would pass. It allocates nothing when n passes.
func take(lim *rate.Limiter, n int, now time.Time, msg string) error {
	if lim == nil || lim.AllowN(now, n) {
		return nil
	}
	missing := float64(n) - lim.TokensAt(now)
	if n > lim.Burst() {
		missing = float64(n) // more than the burst never passes at once
	}
	return rateErr(msg, time.Duration(missing/float64(lim.Limit())*float64(time.Second)))
}

// AcquireConn counts a new live connection of the account: nil, or 4003
// connection_limit_exceeded at the quota. Anonymous accounts and
// connections without an account are not counted.
func (l *Limits) AcquireConn(id string) error {
	if l == nil || l.cfg.AccountConns < 0 || id == "" || ids.AnonAccountIDRe.MatchString(id) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.get(id, l.now())
	if a.conns >= l.cfg.AccountConns {
		return wireerr.Newf(wireerr.ConnectionLimitExceeded, "the account has %d live connections on this gateway", a.conns)
	}
	a.conns++
	return nil
}

// ReleaseConn uncounts a connection AcquireConn counted.
func (l *Limits) ReleaseConn(id string) {
	if l == nil || l.cfg.AccountConns < 0 || id == "" || ids.AnonAccountIDRe.MatchString(id) {
		return
	}
	l.mu.Lock()
	if a := l.accounts[id]; a != nil && a.conns > 0 {
		a.conns--
	}
	l.mu.Unlock()
}

// Conns returns the account's live connections counted here (tests,
// diagnostics).
func (l *Limits) Conns(id string) int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[id]; a != nil {
		return a.conns
	}
	return 0
}

// Control counts one control-plane request from the client at remote (an
// address "host:port" or a bare host) with the Bearer credential cred (""
// without one): nil, or rate_limited with Retry-After.
func (l *Limits) Control(remote, cred string) error {
	if l == nil {
		return nil
	}
	now := l.now()
	if l.ip != nil {
		if err := l.ip.take(ClientKey(remote), now, "too many control-plane requests from this address"); err != nil {
			return err
		}
	}
	if l.cred != nil && cred != "" {
		sum := sha256.Sum256([]byte(cred))
		if err := l.cred.take(hex.EncodeToString(sum[:16]), now, "too many control-plane requests with this credential"); err != nil {
			return err
		}
	}
	return nil
}

// ClientKey is the rate-limit key of a remote address: its IP, or for
// IPv6 its /64 (one host usually holds a whole /64).
func ClientKey(remote string) string {
	host := hostOf(remote)
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// keyed is a set of token buckets by key, idle ones dropped.
type keyed struct {
	r         Rate
	mu        sync.Mutex
	m         map[string]*rate.Limiter
	lastSweep time.Time
}

func newKeyed(r Rate) *keyed { return &keyed{r: r, m: map[string]*rate.Limiter{}} }

func (k *keyed) take(key string, now time.Time, msg string) error {
	k.mu.Lock()
	lim := k.m[key]
	if lim == nil {
		if now.Sub(k.lastSweep) > sweepEvery || len(k.m) >= maxKeys {
			k.lastSweep = now
			for key, v := range k.m {
				if v.TokensAt(now) >= float64(k.r.Burst) {
					delete(k.m, key)
				}
			}
		}
		lim = k.r.limiter()
		k.m[key] = lim
	}
	k.mu.Unlock()
	return take(lim, 1, now, msg)
}
