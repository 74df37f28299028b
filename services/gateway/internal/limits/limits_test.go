package limits

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/internal/wireerr"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newAt(cfg Config) (*Limits, *clock) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := New(cfg)
	l.now = c.now
	return l, c
}

func wantCode(t *testing.T, err error, code wireerr.Code) {
	t.Helper()
	we, ok := wireerr.As(err)
	if !ok || we.Code != code {
		t.Fatalf("error %v, want %s", err, code.Name)
	}
}

func TestDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.ConnFrames != DefaultConnFrames || c.AccountTokens != DefaultAccountTokens || c.AccountConns != DefaultAccountConns ||
		c.ControlIP != DefaultControlIP || c.ControlCredential != DefaultControlCredential {
		t.Fatalf("defaults %+v", c)
	}
	off := Config{ConnFrames: Rate{PerSecond: -1}, AccountConns: -1, AccountTokens: Rate{PerSecond: 10, Burst: 1}}.WithDefaults()
	if !off.ConnFrames.Off() || off.AccountConns != -1 {
		t.Fatalf("off %+v", off)
	}
	if off.AccountTokens.Burst != MinAccountBurst {
		t.Fatalf("account burst %d, want at least %d", off.AccountTokens.Burst, MinAccountBurst)
	}
}

// A connection gets its burst at once, then its rate; over it, 4429
// rate_limited.
func TestConnFrames(t *testing.T) {
	l := New(Config{ConnFrames: Rate{PerSecond: 1, Burst: 3}})
	c := l.Conn()
	for i := 0; i < 3; i++ {
		if err := c.Frame(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	err := c.Frame()
	wantCode(t, err, wireerr.RateLimited)
	if we, _ := wireerr.As(err); we.Code.Close != 4429 {
		t.Fatalf("close code %d", we.Code.Close)
	}
	// Each connection has its own bucket.
	if err := l.Conn().Frame(); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	// Off: nil, and nil limits nothing.
	if New(Config{ConnFrames: Rate{PerSecond: -1}}).Conn() != nil {
		t.Fatal("limiter when off")
	}
	var none *Conn
	if none.Frame() != nil {
		t.Fatal("nil conn limited")
	}
}

// Tokens of one account share a bucket across handles and handle-less
// emits; over it the error says when to retry; other accounts are not
// affected; the bucket refills.
func TestAccountTokens(t *testing.T) {
	l, clk := newAt(Config{AccountTokens: Rate{PerSecond: 100, Burst: 300}})
	h1, h2 := l.Account("acc_A"), l.Account("acc_A")
	defer h1.Release()
	defer h2.Release()
	if err := h1.Tokens(200); err != nil {
		t.Fatal(err)
	}
	if err := h2.Tokens(100); err != nil {
		t.Fatal(err)
	}
	err := l.Tokens("acc_A", 50)
	wantCode(t, err, wireerr.RateLimited)
	var re *Error
	if !errors.As(err, &re) || re.RetryAfter() != 500*time.Millisecond {
		t.Fatalf("retry after %v", err)
	}
	if RetryAfterSeconds(re.RetryAfter()) != "1" {
		t.Fatalf("Retry-After %s", RetryAfterSeconds(re.RetryAfter()))
	}
	// A refused emit took nothing: after 0.5 s the 50 pass.
	clk.advance(500 * time.Millisecond)
	if err := l.Tokens("acc_A", 50); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if err := l.Tokens("acc_B", 300); err != nil {
		t.Fatalf("other account: %v", err)
	}
	// More than the burst at once never passes.
	if err := l.Tokens("acc_C", 301); err == nil {
		t.Fatal("over the burst passed")
	}
	if l.Tokens("", 10_000) != nil || (*Limits)(nil).Tokens("acc_A", 1) != nil {
		t.Fatal("no account or no limits limited")
	}
}

// The quota counts live connections per account; anonymous accounts and
// connections without an account are exempt; release frees a slot.
func TestAccountConns(t *testing.T) {
	l := New(Config{AccountConns: 2})
	for i := 0; i < 2; i++ {
		if err := l.AcquireConn("acc_A"); err != nil {
			t.Fatal(err)
		}
	}
	err := l.AcquireConn("acc_A")
	wantCode(t, err, wireerr.ConnectionLimitExceeded)
	if we, _ := wireerr.As(err); we.Code.Close != 4003 || we.Code.HTTP != 429 {
		t.Fatalf("code %+v", we.Code)
	}
	if err := l.AcquireConn("acc_B"); err != nil {
		t.Fatalf("other account: %v", err)
	}
	l.ReleaseConn("acc_A")
	if err := l.AcquireConn("acc_A"); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if got := l.Conns("acc_A"); got != 2 {
		t.Fatalf("conns %d", got)
	}
	anon := "acc_anon_0123456789abcdef0123456789"
	for i := 0; i < 5; i++ {
		if err := l.AcquireConn(anon); err != nil {
			t.Fatalf("anonymous: %v", err)
		}
		if err := l.AcquireConn(""); err != nil {
			t.Fatalf("no account: %v", err)
		}
	}
	// Releasing more than acquired does not go negative.
	for i := 0; i < 5; i++ {
		l.ReleaseConn("acc_B")
	}
	if got := l.Conns("acc_B"); got != 0 {
		t.Fatalf("conns %d", got)
	}
	if New(Config{AccountConns: -1}).AcquireConn("acc_A") != nil {
		t.Fatal("quota off but refused")
	}
}

// Control-plane requests: per IP (IPv6 per /64) and per credential.
func TestControl(t *testing.T) {
	l, clk := newAt(Config{ControlIP: Rate{PerSecond: 1, Burst: 2}, ControlCredential: Rate{PerSecond: 1, Burst: 3}})
	for i := 0; i < 2; i++ {
		if err := l.Control("192.0.2.1:1234", ""); err != nil {
			t.Fatal(err)
		}
	}
	err := l.Control("192.0.2.1:999", "")
	wantCode(t, err, wireerr.RateLimited)
	var re *Error
	if !errors.As(err, &re) || re.RetryAfter() != time.Second {
		t.Fatalf("retry after: %v", err)
	}
	if err := l.Control("192.0.2.2:1", ""); err != nil {
		t.Fatalf("other address: %v", err)
	}
	// One /64 is one client.
	if err := l.Control("[2001:db8::1]:1", ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Control("[2001:db8::2]:1", ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Control("[2001:db8::3]:1", ""); err == nil {
		t.Fatal("third request of one /64 passed")
	}
	// A credential has its own budget across addresses.
	for i := 0; i < 3; i++ {
		if err := l.Control(fmt.Sprintf("198.51.100.%d:1", i), "ams_sk_x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Control("198.51.100.9:1", "ams_sk_x"); err == nil {
		t.Fatal("fourth request of one credential passed")
	}
	clk.advance(time.Second)
	if err := l.Control("198.51.100.9:1", "ams_sk_x"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:80":            "192.0.2.1",
		"192.0.2.1":               "192.0.2.1",
		"[2001:db8:1:2:3::4]:443": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1":    "192.0.2.7",
		"not an address":          "not an address",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// Idle buckets are dropped at a sweep; busy ones and counted accounts stay.
func TestSweep(t *testing.T) {
	l, clk := newAt(Config{AccountTokens: Rate{PerSecond: 1000, Burst: 1000}, ControlIP: Rate{PerSecond: 1, Burst: 1}})
	_ = l.Tokens("acc_idle", 1)
	_ = l.AcquireConn("acc_conn")
	h := l.Account("acc_held")
	_ = l.Control("192.0.2.1:1", "")
	clk.advance(2 * sweepEvery)
	_ = l.Tokens("acc_new", 1)
	_ = l.Control("192.0.2.2:1", "")
	l.mu.Lock()
	_, idle := l.accounts["acc_idle"]
	_, conn := l.accounts["acc_conn"]
	_, held := l.accounts["acc_held"]
	l.mu.Unlock()
	if idle || !conn || !held {
		t.Fatalf("after sweep: idle %v conn %v held %v", idle, conn, held)
	}
	h.Release()
	l.ip.mu.Lock()
	_, old := l.ip.m["192.0.2.1"]
	l.ip.mu.Unlock()
	if old {
		t.Fatal("idle address bucket kept")
	}
}
