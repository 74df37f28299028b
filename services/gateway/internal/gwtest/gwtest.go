// Package gwtest starts a whole AMS system for gateway tests, made of real
// parts: an embedded NATS server with JetStream, the account and link
// services behind their real gRPC servers, and any number of gateways, in
// process (gatewayd) or as separate OS processes (cmd/gateway).
//
// A typical test:
//
//	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
//	_, cred := sys.CreateAccount(t, 0, "acme")
//	conv := sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
//	status, body := gwtest.Do(t, "GET", sys.Gateways[1].URL+"/v1/acme/conversations/room?t="+gwtest.LinkToken(t, conv), nil, "")
//
// Everything a System starts is stopped at t.Cleanup, gateways first, and
// waited for. Test binaries that use Postgres (Options.Postgres) or
// StartGatewayProcess should call `os.Exit(gwtest.Main(m))` from TestMain,
// which removes the throwaway databases and the built gateway binary.
//
// Nothing here sleeps to synchronise: start-up waits poll /readyz with a
// deadline, and stops wait for the components to return.
package gwtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/account/accountd"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/internal/linktoken"
	"github.com/amsrouter/ams/services/internal/natsserver"
	"github.com/amsrouter/ams/services/internal/pgtest"
	"github.com/amsrouter/ams/services/link/linkd"
)

// StartTimeout bounds how long a component may take to become ready.
const StartTimeout = 60 * time.Second

// stopTimeout bounds how long a component may take to stop.
const stopTimeout = 20 * time.Second

// Options configures a System. The zero value is one in-process gateway
// on SQLite, with logs discarded.
type Options struct {
	// Gateways is the number of in-process gateways: 0 means 1, a
	// negative number none (for tests that only run gateway processes).
	Gateways int
	// Postgres stores accounts and links in fresh Postgres databases
	// (pgtest) instead of SQLite files in t.TempDir(). The test binary
	// must call gwtest.Main (or pgtest.Main) from TestMain.
	Postgres bool
	// Gateway, if set, adjusts the config of each in-process gateway (its
	// index i) before it starts: stream-plane settings, PublicURL, Name.
	Gateway func(i int, cfg *gatewayd.Config)
	// Log, if set, receives the logs of every component (JSON, debug
	// level), gateway processes included. It must be safe for concurrent
	// writes: use a *LogBuffer. Nil discards the logs.
	Log io.Writer
	// LinkNow is the link service's clock (nil: time.Now), to expire links.
	LinkNow func() time.Time
	// AccountDatabaseURL and LinkDatabaseURL, if set, are the services'
	// databases (a pgtest.Cluster the test stops and starts, say); the
	// services migrate them at start. They take precedence over Postgres.
	AccountDatabaseURL, LinkDatabaseURL string
}

// System is a running AMS system. Its fields are read-only.
type System struct {
	// NATS is the embedded server; NATSURL its client URL (127.0.0.1 on a
	// random port, never 4222).
	NATS    *natsserver.Server
	NATSURL string
	// AccountAddr and LinkAddr are the services' gRPC addresses.
	AccountAddr, LinkAddr string
	// AccountDatabaseURL and LinkDatabaseURL name the services' databases
	// (sqlite:<path> or postgres://…), for tests that read the tables.
	AccountDatabaseURL, LinkDatabaseURL string
	// CredentialPepper (account service) and DerivationPepper (gateways)
	// are the deployment secrets.
	CredentialPepper, DerivationPepper []byte
	// SigningKeys are the link service's keys; the first signs new links.
	SigningKeys []ed25519.PrivateKey
	// Gateways are the in-process gateways, in start order.
	Gateways []*Gateway

	opts        Options
	stopNATS    func()
	natsDir     string // JetStream directory, kept across StartNATS
	natsPort    int
	stopAccount func()
	stopLink    func()
}

// Gateway is one in-process gateway. Its public gRPC API listens on
// 127.0.0.1 at a random port: GRPCAddr().
type Gateway struct {
	*gatewayd.Gateway
	// URL is http://127.0.0.1:<port>.
	URL string
	// Config is the config it was started with.
	Config gatewayd.Config
	stop   func()
}

// Stop shuts the gateway down and waits for it. It is idempotent and also
// runs at cleanup.
func (g *Gateway) Stop() { g.stop() }

// Start starts a system for the test. It fails the test if any part does
// not start; everything is stopped at t.Cleanup.
func Start(t testing.TB, o Options) *System {
	t.Helper()
	s := &System{
		opts:             o,
		CredentialPepper: randomSecret(),
		DerivationPepper: randomSecret(),
	}
	ctx := context.Background()

	// NATS, listening on 127.0.0.1 at a random port so that gateway
	// processes can reach it too.
	s.natsDir = filepath.Join(t.TempDir(), "nats")
	s.StartNATS(t)
	s.NATSURL = s.NATS.URL()
	// Whichever server runs at the end stops after everything else.
	t.Cleanup(func() { s.stopNATS() })

	// Databases.
	switch {
	case o.AccountDatabaseURL != "" && o.LinkDatabaseURL != "":
		s.AccountDatabaseURL, s.LinkDatabaseURL = o.AccountDatabaseURL, o.LinkDatabaseURL
	case o.Postgres:
		s.AccountDatabaseURL = pgtest.NewDatabase(t, "gwtest-account", accountd.Migrate)
		s.LinkDatabaseURL = pgtest.NewDatabase(t, "gwtest-link", linkd.Migrate)
	default:
		dir := t.TempDir()
		s.AccountDatabaseURL = "sqlite:" + filepath.Join(dir, "account.db")
		s.LinkDatabaseURL = "sqlite:" + filepath.Join(dir, "link.db")
	}

	// Account service.
	acc, err := accountd.New(ctx, accountd.Config{
		GRPCAddr:         "127.0.0.1:0",
		DatabaseURL:      s.AccountDatabaseURL,
		CredentialPepper: s.CredentialPepper,
		ShutdownGrace:    5 * time.Second,
	}, s.logger("account"))
	if err != nil {
		t.Fatalf("gwtest: start account service: %v", err)
	}
	s.AccountAddr = acc.GRPCAddr()
	s.stopAccount = runUntilStopped(t, "account service", acc.Run)

	// Link service.
	s.SigningKeys, err = linkd.LoadOrCreateKeys(filepath.Join(t.TempDir(), "signing-keys.pem"))
	if err != nil {
		t.Fatalf("gwtest: generate signing key: %v", err)
	}
	lnk, err := linkd.New(ctx, linkd.Config{
		GRPCAddr:      "127.0.0.1:0",
		DatabaseURL:   s.LinkDatabaseURL,
		SigningKeys:   s.SigningKeys,
		ShutdownGrace: 5 * time.Second,
		Now:           o.LinkNow,
	}, s.logger("link"))
	if err != nil {
		t.Fatalf("gwtest: start link service: %v", err)
	}
	s.LinkAddr = lnk.GRPCAddr()
	s.stopLink = runUntilStopped(t, "link service", lnk.Run)

	// Gateways.
	n := o.Gateways
	if n == 0 {
		n = 1
	}
	for i := 0; i < n; i++ {
		s.AddGateway(t, nil)
	}
	return s
}

// AddGateway starts one more in-process gateway, appends it to Gateways
// and returns it once it is ready. Options.Gateway applies first, then
// tweak (if not nil).
func (s *System) AddGateway(t testing.TB, tweak func(cfg *gatewayd.Config)) *Gateway {
	t.Helper()
	i := len(s.Gateways)
	cfg := s.GatewayConfig(fmt.Sprintf("gw-%d", i))
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.GRPCAddr = "127.0.0.1:0"
	if s.opts.Gateway != nil {
		s.opts.Gateway(i, &cfg)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := gatewayd.New(context.Background(), cfg, s.logger(cfg.Name))
	if err != nil {
		t.Fatalf("gwtest: start gateway %d: %v", i, err)
	}
	gw := &Gateway{Gateway: g, URL: g.URL(), Config: cfg}
	gw.stop = runUntilStopped(t, "gateway "+cfg.Name, g.Run)
	waitReady(t, gw.URL, nil)
	s.Gateways = append(s.Gateways, gw)
	return gw
}

// GatewayConfig is the config of a gateway of this system named name,
// without an HTTP address.
func (s *System) GatewayConfig(name string) gatewayd.Config {
	return gatewayd.Config{
		AccountAddr:      s.AccountAddr,
		LinkAddr:         s.LinkAddr,
		NATSURL:          s.NATSURL,
		DerivationPepper: s.DerivationPepper,
		ShutdownGrace:    5 * time.Second,
		Name:             name,
	}
}

// URL is the base URL of in-process gateway i.
func (s *System) URL(i int) string { return s.Gateways[i].URL }

// SigningKey is the active link signing key, for minting tokens with
// linktoken.Mint (expired ones, say).
func (s *System) SigningKey() linktoken.Key { return linktoken.NewKey(s.SigningKeys[0]) }

// StopAccount stops the account service and waits for it (idempotent).
func (s *System) StopAccount() { s.stopAccount() }

// StopLink stops the link service and waits for it (idempotent).
func (s *System) StopLink() { s.stopLink() }

// StopNATS shuts the NATS server down and waits for it (idempotent).
func (s *System) StopNATS() { s.stopNATS() }

// StartNATS starts the NATS server: at Start, and after StopNATS a new
// server on the same port with the same JetStream directory (a restarted
// server: clients reconnect, streams and buckets are as they were). It
// replaces s.NATS; call it from the test goroutine only.
func (s *System) StartNATS(t testing.TB) {
	t.Helper()
	s.startNATS(t, false)
}

// startNATS is StartNATS, without JetStream if noJetStream is set.
func (s *System) startNATS(t testing.TB, noJetStream bool) {
	t.Helper()
	port := -1
	if s.natsPort != 0 {
		port = s.natsPort
	}
	ns, err := natsserver.Start(natsserver.Options{StoreDir: s.natsDir, Listen: true, Port: port, NoJetStream: noJetStream})
	if err != nil {
		t.Fatalf("gwtest: start nats: %v", err)
	}
	s.natsPort = ns.Addr().(*net.TCPAddr).Port
	s.NATS = ns
	s.stopNATS = sync.OnceFunc(ns.Stop)
}

// RestartNATS stops the NATS server and starts it again (StartNATS).
func (s *System) RestartNATS(t testing.TB) {
	t.Helper()
	s.StopNATS()
	s.StartNATS(t)
}

// RestartNATSWithoutStore stops the NATS server and starts one on the
// same port with an empty JetStream directory: a server that lost its
// store, whose streams and buckets the gateways create again.
func (s *System) RestartNATSWithoutStore(t testing.TB) {
	t.Helper()
	s.StopNATS()
	s.LoseNATSStore(t)
	s.StartNATS(t)
}

// RestartNATSWithoutJetStream stops the NATS server and starts one on
// the same port without JetStream: core NATS works, JetStream does not.
// StopNATS and StartNATS bring the full server back.
func (s *System) RestartNATSWithoutJetStream(t testing.TB) {
	t.Helper()
	s.StopNATS()
	s.startNATS(t, true)
}

// LoseNATSStore gives the next StartNATS an empty JetStream directory;
// call it while the server is stopped.
func (s *System) LoseNATSStore(t testing.TB) {
	s.natsDir = filepath.Join(t.TempDir(), "nats")
}

// Metric returns one sample of in-process gateway i's /metrics, named
// exactly as exposed (labels included); a missing sample fails the test.
func (s *System) Metric(t testing.TB, i int, sample string) float64 {
	t.Helper()
	r := DoResponse(t, http.MethodGet, s.URL(i)+"/metrics", nil, "")
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.Status)
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if name, val, ok := strings.Cut(line, " "); ok && name == sample {
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				t.Fatalf("/metrics line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no sample %s", sample)
	return 0
}

// logger is the logger of one component: JSON at debug level into
// Options.Log, or discarded.
func (s *System) logger(component string) *slog.Logger {
	if s.opts.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewJSONHandler(s.opts.Log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", component)
}

// runUntilStopped runs run in a goroutine until the returned stop
// function cancels it; stop waits for run to return and reports an error
// it returned. stop is idempotent and registered with t.Cleanup.
func runUntilStopped(t testing.TB, what string, run func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gwtest: %s: %v", what, err)
			}
		case <-time.After(stopTimeout):
			t.Errorf("gwtest: %s did not stop within %s", what, stopTimeout)
		}
	})
	t.Cleanup(stop)
	return stop
}

// waitReady polls base/readyz until it answers 200. exited, if not nil,
// ends the wait early (a process that died).
func waitReady(t testing.TB, base string, exited <-chan struct{}) {
	t.Helper()
	if err := pollReady(base, exited); err != nil {
		t.Fatalf("gwtest: gateway at %s: %v", base, err)
	}
}

var errExited = errors.New("exited before it was ready")

func pollReady(base string, exited <-chan struct{}) error {
	deadline := time.Now().Add(StartTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s: %s", StartTimeout, last)
		}
		select {
		case <-exited:
			return errExited
		case <-tick.C:
		}
	}
}

func randomSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return []byte(hex.EncodeToString(b))
}

// client is the HTTP client of the helpers.
var client = &http.Client{Timeout: 30 * time.Second}

// Response is an HTTP answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map, failing the test if it is not a JSON
// object.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	return DecodeObject(t, r.Body)
}

// DoResponse sends a request and reads the whole answer. header values
// are set as given; an empty body sends none.
func DoResponse(t testing.TB, method, url string, header map[string]string, body string) *Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("gwtest: %s %s: %v", method, redactURL(url), err)
	}
	for k, v := range header {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("gwtest: %s %s: %v", method, redactURL(url), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("gwtest: read %s %s: %v", method, redactURL(url), err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Do sends a request and returns the status and the body.
func Do(t testing.TB, method, url string, header map[string]string, body string) (int, []byte) {
	t.Helper()
	r := DoResponse(t, method, url, header, body)
	return r.Status, r.Body
}

// Bearer is the header map of `Authorization: Bearer credential`.
func Bearer(credential string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + credential}
}

// DecodeObject decodes a JSON object, numbers as json.Number.
func DecodeObject(t testing.TB, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		t.Fatalf("gwtest: body is not a JSON object: %v: %.300s", err, b)
	}
	return m
}

// Keys returns the top-level keys of a JSON object in body order (for
// checking that an answer or a frame has exactly its fields, in order). A
// body that is not an object fails the test.
func Keys(t testing.TB, body []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("gwtest: not a JSON object: %.300s", body)
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("gwtest: decode %.300s: %v", body, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatalf("gwtest: decode %.300s: %v", body, err)
		}
	}
	return keys
}

// CreateAccount creates an account with namespace ns through in-process
// gateway gw and returns its id and credential. Anything but 201 fails
// the test.
func (s *System) CreateAccount(t testing.TB, gw int, ns string) (accountID, credential string) {
	t.Helper()
	return s.CreateAccountAt(t, s.URL(gw), ns)
}

// CreateAccountAt is CreateAccount through the gateway at base (a
// Process's URL, say).
func (s *System) CreateAccountAt(t testing.TB, base, ns string) (accountID, credential string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"namespace": ns})
	r := DoResponse(t, http.MethodPost, base+"/v1/accounts", nil, string(body))
	if r.Status != http.StatusCreated {
		t.Fatalf("gwtest: create account %q: %d %s", ns, r.Status, r.Body)
	}
	m := r.JSON(t)
	accountID, _ = m["account_id"].(string)
	credential, _ = m["credential"].(string)
	return accountID, credential
}

// Mint mints a conversation in ns through in-process gateway gw with the
// request body bodyJSON ("" for none) and returns the decoded 201 answer.
// Anything but 201 fails the test.
func (s *System) Mint(t testing.TB, gw int, credential, ns, bodyJSON string) map[string]any {
	t.Helper()
	return s.MintAt(t, s.URL(gw), credential, ns, bodyJSON)
}

// MintAt is Mint through the gateway at base.
func (s *System) MintAt(t testing.TB, base, credential, ns, bodyJSON string) map[string]any {
	t.Helper()
	r := DoResponse(t, http.MethodPost, base+"/v1/"+ns+"/conversations", Bearer(credential), bodyJSON)
	if r.Status != http.StatusCreated {
		t.Fatalf("gwtest: mint in %q: %d %s", ns, r.Status, r.Body)
	}
	return r.JSON(t)
}

// LinkToken returns the token t of a magic link, given as the URL or as
// a decoded mint or link answer holding "magic_link".
func LinkToken(t testing.TB, link any) string {
	t.Helper()
	s, _ := link.(string)
	if m, ok := link.(map[string]any); ok {
		s, _ = m["magic_link"].(string)
	}
	u, err := url.Parse(s)
	if err != nil || u.Query().Get("t") == "" {
		t.Fatalf("gwtest: not a magic link (no t)")
	}
	return u.Query().Get("t")
}

// redactURL drops the query (it may hold a token) from a URL for messages.
func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?…"
	}
	return s
}

// LogBuffer is a concurrency-safe log sink for Options.Log.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
