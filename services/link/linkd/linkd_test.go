package linkd_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/linktoken"
	"github.com/amsrouter/ams/services/internal/logging"
	"github.com/amsrouter/ams/services/internal/pgtest"
	"github.com/amsrouter/ams/services/internal/wireerr"
	"github.com/amsrouter/ams/services/link/internal/keyset"
	"github.com/amsrouter/ams/services/link/linkd"
)

// TestMain runs the tests on pgtest's Postgres, then fails if a service
// left a goroutine behind after Run returned.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const issuer = "https://ams.example"

var owner = ids.NewAccountID(time.Now())

// clock is a settable clock shared by a test and its services.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := keyset.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sqliteURL(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "link.db") }

// service is a started linkd and a client to it.
type service struct {
	svc    *linkd.Service
	client linkv1.LinkServiceClient
	health healthpb.HealthClient
	stop   func() // stops the service and waits for Run; idempotent
}

func start(t *testing.T, cfg linkd.Config, log *slog.Logger) *service {
	t.Helper()
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	if log == nil {
		log = logging.Discard()
	}
	svc, err := linkd.New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	conn, err := grpcx.Dial(svc.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = conn.Close()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return &service{svc: svc, client: linkv1.NewLinkServiceClient(conn), health: healthpb.NewHealthClient(conn), stop: stop}
}

// wireCode is the catalogue code of a gRPC error, as a gateway sees it.
func wireCode(err error) string {
	if err == nil {
		return ""
	}
	if we, ok := wireerr.As(grpcx.FromStatus(err)); ok {
		return we.Code.Name
	}
	return "unmapped: " + err.Error()
}

func keyFunc(t *testing.T, c linkv1.LinkServiceClient) (linktoken.KeyFunc, *linkv1.GetKeySetResponse) {
	t.Helper()
	ks, err := c.GetKeySet(t.Context(), &linkv1.GetKeySetRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return func(kid string) (ed25519.PublicKey, bool) {
		for _, k := range ks.GetKeys() {
			if k.GetKid() == kid {
				return ed25519.PublicKey(k.GetEd25519()), true
			}
		}
		return nil, false
	}, ks
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

func kids(ks *linkv1.GetKeySetResponse) []string {
	var out []string
	for _, k := range ks.GetKeys() {
		out = append(out, k.GetKid())
	}
	return out
}

func TestGRPCSQLite(t *testing.T) {
	t.Parallel()
	testGRPC(t, sqliteURL(t))
}

func TestGRPCPostgres(t *testing.T) {
	t.Parallel()
	testGRPC(t, pgtest.NewDatabase(t, "link", linkd.Migrate))
}

func testGRPC(t *testing.T, dbURL string) {
	clk := newClock()
	s := start(t, linkd.Config{DatabaseURL: dbURL, SigningKeys: []ed25519.PrivateKey{newKey(t)}, Now: clk.Now}, nil)
	c := s.client
	ctx := t.Context()

	t.Run("Health", func(t *testing.T) {
		for _, svc := range []string{"ams.link.v1.LinkService", ""} {
			r, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health %q = %v, %v; want SERVING", svc, r.GetStatus(), err)
			}
		}
	})

	var randomConv *linkv1.CreateConversationResponse
	t.Run("C1C6RandomAlias", func(t *testing.T) {
		r, err := c.CreateConversation(ctx, &linkv1.CreateConversationRequest{
			Namespace: "acme", OwnerAccountId: owner, Issuer: issuer,
		})
		if err != nil {
			t.Fatal(err)
		}
		randomConv = r
		cv, l := r.GetConversation(), r.GetLink()
		if !ids.RandomAliasRe.MatchString(cv.GetAlias()) || !ids.ConversationIDRe.MatchString(cv.GetConversationId()) ||
			!ids.LinkIDRe.MatchString(l.GetLinkId()) {
			t.Errorf("ids: alias %q, conversation %q, link %q", cv.GetAlias(), cv.GetConversationId(), l.GetLinkId())
		}
		if cv.GetMetadataJson() != "{}" || cv.GetNamespace() != "acme" || cv.GetOwnerAccountId() != owner {
			t.Errorf("conversation = %v", cv)
		}
		if l.GetConversationId() != cv.GetConversationId() || l.ExpiresAt != nil || l.RevokedAt != nil || l.Label != nil {
			t.Errorf("link = %v", l)
		}
		if !l.GetCreatedAt().AsTime().Equal(cv.GetCreatedAt().AsTime()) || cv.GetCreatedAt().AsTime().Nanosecond()%1e6 != 0 {
			t.Errorf("created_at: conversation %v, link %v", cv.GetCreatedAt().AsTime(), l.GetCreatedAt().AsTime())
		}
		keys, _ := keyFunc(t, c)
		claims, err := linktoken.Verify(r.GetToken(), keys, cv.GetConversationId(), "acme", cv.GetAlias(), clk.Now())
		if err != nil {
			t.Fatalf("minted token does not verify: %v", err)
		}
		if claims.LinkID() != l.GetLinkId() || claims.Issuer != issuer || claims.ExpiresAt != nil {
			t.Errorf("claims = %+v", claims)
		}
	})

	const md = `{"b":1,  "a":[2,1],"ü":"\u00fc"}`
	var conv *linkv1.CreateConversationResponse
	t.Run("C71ExplicitAliasMetadataExact", func(t *testing.T) {
		r, err := c.CreateConversation(ctx, &linkv1.CreateConversationRequest{
			Namespace: "acme", OwnerAccountId: owner, Alias: "room-1", MetadataJson: md,
			LinkExpiresInSeconds: new(int64(3600)), Issuer: issuer,
		})
		if err != nil {
			t.Fatal(err)
		}
		conv = r
		if r.GetConversation().GetAlias() != "room-1" || r.GetConversation().GetMetadataJson() != md {
			t.Errorf("alias %q, metadata %q", r.GetConversation().GetAlias(), r.GetConversation().GetMetadataJson())
		}
		l := r.GetLink()
		if got := l.GetExpiresAt().AsTime().Sub(l.GetCreatedAt().AsTime()); got != time.Hour {
			t.Errorf("expires_at - created_at = %v, want 1h", got)
		}
		got, err := c.GetConversation(ctx, &linkv1.GetConversationRequest{Namespace: "acme", Alias: "room-1"})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetMetadataJson() != md || got.GetConversationId() != r.GetConversation().GetConversationId() {
			t.Errorf("GetConversation = %v; metadata must be %q", got, md)
		}
		keys, _ := keyFunc(t, c)
		claims, err := linktoken.Verify(r.GetToken(), keys, got.GetConversationId(), "acme", "room-1", clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if claims.ExpiresAt == nil || claims.ExpiresAt.Unix() != l.GetExpiresAt().AsTime().Unix() {
			t.Errorf("exp = %v, want %v", claims.ExpiresAt, l.GetExpiresAt().AsTime())
		}
		// C7: refused for another conversation.
		rc := randomConv.GetConversation()
		if _, err := linktoken.Verify(r.GetToken(), keys, rc.GetConversationId(), "acme", rc.GetAlias(), clk.Now()); !errors.Is(err, linktoken.ErrInvalid) {
			t.Errorf("token verified for another conversation: %v", err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		big := `{"k":"` + strings.Repeat("x", 65537-8) + `"}`
		if len(big) != 65537 {
			t.Fatalf("big metadata is %d bytes", len(big))
		}
		for _, tc := range []struct {
			name string
			req  *linkv1.CreateConversationRequest
			code string
			grpc codes.Code
		}{
			{"C9 alias taken", &linkv1.CreateConversationRequest{Alias: "room-1"}, "alias_taken", codes.AlreadyExists},
			{"alias uppercase", &linkv1.CreateConversationRequest{Alias: "Room"}, "invalid_alias", codes.InvalidArgument},
			{"alias leading dash", &linkv1.CreateConversationRequest{Alias: "-room"}, "invalid_alias", codes.InvalidArgument},
			{"alias 64 chars", &linkv1.CreateConversationRequest{Alias: strings.Repeat("a", 64)}, "invalid_alias", codes.InvalidArgument},
			{"metadata array", &linkv1.CreateConversationRequest{MetadataJson: "[]"}, "invalid_metadata", codes.InvalidArgument},
			{"metadata null", &linkv1.CreateConversationRequest{MetadataJson: "null"}, "invalid_metadata", codes.InvalidArgument},
			{"metadata string", &linkv1.CreateConversationRequest{MetadataJson: `"x"`}, "invalid_metadata", codes.InvalidArgument},
			{"metadata not json", &linkv1.CreateConversationRequest{MetadataJson: "{nope"}, "invalid_metadata", codes.InvalidArgument},
			{"metadata 65537 bytes", &linkv1.CreateConversationRequest{MetadataJson: big}, "invalid_metadata", codes.InvalidArgument},
			{"expiry 59", &linkv1.CreateConversationRequest{LinkExpiresInSeconds: new(int64(59))}, "invalid_link_expiry", codes.InvalidArgument},
			{"expiry 31536001", &linkv1.CreateConversationRequest{LinkExpiresInSeconds: new(int64(31536001))}, "invalid_link_expiry", codes.InvalidArgument},
			{"alias before metadata", &linkv1.CreateConversationRequest{Alias: "BAD", MetadataJson: "[]"}, "invalid_alias", codes.InvalidArgument},
		} {
			req := tc.req
			req.Namespace, req.OwnerAccountId, req.Issuer = "acme", owner, issuer
			_, err := c.CreateConversation(ctx, req)
			if got := wireCode(err); got != tc.code || status.Code(err) != tc.grpc {
				t.Errorf("%s: %s (%v), want %s (%v)", tc.name, got, status.Code(err), tc.code, tc.grpc)
			}
		}
		_, err := c.GetConversation(ctx, &linkv1.GetConversationRequest{Namespace: "acme", Alias: "nope"})
		if wireCode(err) != "not_found" || status.Code(err) != codes.NotFound {
			t.Errorf("GetConversation(unknown) = %v, want not_found", err)
		}
		_, err = c.GetConversation(ctx, &linkv1.GetConversationRequest{Namespace: "other", Alias: "room-1"})
		if wireCode(err) != "not_found" {
			t.Errorf("GetConversation(other namespace) = %v, want not_found", err)
		}
	})

	t.Run("C16Links", func(t *testing.T) {
		cid := conv.GetConversation().GetConversationId()
		first := conv.GetLink()
		clk.Add(time.Second)
		r, err := c.CreateLink(ctx, &linkv1.CreateLinkRequest{ConversationId: cid, ExpiresInSeconds: new(int64(60)), Label: new("friends"), Issuer: issuer})
		if err != nil {
			t.Fatal(err)
		}
		second := r.GetLink()
		if second.GetLabel() != "friends" || second.GetExpiresAt().AsTime().Sub(second.GetCreatedAt().AsTime()) != time.Minute {
			t.Errorf("link = %v", second)
		}
		keys, _ := keyFunc(t, c)
		if _, err := linktoken.Verify(r.GetToken(), keys, cid, "acme", "room-1", clk.Now()); err != nil {
			t.Errorf("new link's token: %v", err)
		}
		clk.Add(time.Second)
		third, err := c.CreateLink(ctx, &linkv1.CreateLinkRequest{ConversationId: cid, Label: new(strings.Repeat("ü", 64)), Issuer: issuer})
		if err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			name string
			req  *linkv1.CreateLinkRequest
			code string
		}{
			{"label empty", &linkv1.CreateLinkRequest{ConversationId: cid, Label: new("")}, "invalid_label"},
			{"label 65 chars", &linkv1.CreateLinkRequest{ConversationId: cid, Label: new(strings.Repeat("a", 65))}, "invalid_label"},
			{"label with NUL", &linkv1.CreateLinkRequest{ConversationId: cid, Label: new("a\x00b")}, "invalid_label"},
			{"expiry 59", &linkv1.CreateLinkRequest{ConversationId: cid, ExpiresInSeconds: new(int64(59))}, "invalid_link_expiry"},
			{"expiry 31536001", &linkv1.CreateLinkRequest{ConversationId: cid, ExpiresInSeconds: new(int64(31536001))}, "invalid_link_expiry"},
			{"unknown conversation", &linkv1.CreateLinkRequest{ConversationId: ids.NewConversationID(time.Now())}, "not_found"},
		} {
			tc.req.Issuer = issuer
			if _, err := c.CreateLink(ctx, tc.req); wireCode(err) != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
		}

		clk.Add(time.Second)
		rev, err := c.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: cid, LinkId: second.GetLinkId()})
		if err != nil {
			t.Fatal(err)
		}
		revokedAt := rev.GetLink().GetRevokedAt().AsTime()
		if !revokedAt.Equal(clk.Now().Truncate(time.Millisecond)) {
			t.Errorf("revoked_at %v, want %v", revokedAt, clk.Now())
		}
		clk.Add(time.Second)
		again, err := c.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: cid, LinkId: second.GetLinkId()})
		if err != nil {
			t.Fatal(err)
		}
		if !again.GetLink().GetRevokedAt().AsTime().Equal(revokedAt) {
			t.Errorf("re-revoke revoked_at %v, want the first %v", again.GetLink().GetRevokedAt().AsTime(), revokedAt)
		}
		if _, err := c.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: cid, LinkId: ids.NewLinkID(time.Now())}); wireCode(err) != "link_not_found" || status.Code(err) != codes.NotFound {
			t.Errorf("RevokeLink(unknown) = %v, want link_not_found", err)
		}
		// A link of another conversation is not found through this one.
		if _, err := c.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: randomConv.GetConversation().GetConversationId(), LinkId: first.GetLinkId()}); wireCode(err) != "link_not_found" {
			t.Errorf("RevokeLink(other conversation's link) = %v, want link_not_found", err)
		}

		list, err := c.ListLinks(ctx, &linkv1.ListLinksRequest{ConversationId: cid})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range list.GetLinks() {
			got = append(got, l.GetLinkId())
		}
		want := []string{first.GetLinkId(), second.GetLinkId(), third.GetLink().GetLinkId()}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("ListLinks = %v, want %v (oldest first)", got, want)
		}
		if l := list.GetLinks()[1]; !l.GetRevokedAt().AsTime().Equal(revokedAt) || l.GetLabel() != "friends" {
			t.Errorf("listed revoked link = %v", l)
		}
		if l := list.GetLinks()[2]; l.RevokedAt != nil || l.GetLabel() != strings.Repeat("ü", 64) {
			t.Errorf("listed third link = %v", l)
		}
		if _, err := c.ListLinks(ctx, &linkv1.ListLinksRequest{ConversationId: ids.NewConversationID(time.Now())}); wireCode(err) != "not_found" {
			t.Errorf("ListLinks(unknown) = %v, want not_found", err)
		}
	})

	t.Run("RevocationCursor", func(t *testing.T) {
		cid := randomConv.GetConversation().GetConversationId()
		if _, err := c.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: cid, LinkId: randomConv.GetLink().GetLinkId()}); err != nil {
			t.Fatal(err)
		}
		var (
			after int64
			seen  []string
		)
		for range 5 {
			r, err := c.ListRevocations(ctx, &linkv1.ListRevocationsRequest{After: after, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.GetRevocations()) == 0 {
				if r.GetNext() != after {
					t.Errorf("empty page moved the cursor %d → %d", after, r.GetNext())
				}
				break
			}
			if r.GetNext() <= after {
				t.Fatalf("cursor did not advance: %d → %d", after, r.GetNext())
			}
			after = r.GetNext()
			rv := r.GetRevocations()[0]
			seen = append(seen, rv.GetLinkId())
			if rv.GetRevokedAt() == nil {
				t.Errorf("revocation without revoked_at: %v", rv)
			}
		}
		// Revoked in C16Links (expiring link), then here (forever link).
		if len(seen) != 2 || seen[1] != randomConv.GetLink().GetLinkId() {
			t.Errorf("revocations = %v", seen)
		}
	})
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	s := start(t, linkd.Config{AdminAddr: "127.0.0.1:0", DatabaseURL: sqliteURL(t), SigningKeys: []ed25519.PrivateKey{newKey(t)}}, nil)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.svc.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := get("/healthz"); code != 200 || body != `{"ok":true}` {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 || body != `{"ok":true,"checks":{"database":"ok"}}` {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("/nope = %d", code)
	}
	s.stop()
	if _, err := http.Get("http://" + s.svc.AdminAddr() + "/healthz"); err == nil {
		t.Error("admin server still answers after Run returned")
	}
}

func TestNoAdminAndBadConfig(t *testing.T) {
	t.Parallel()
	s := start(t, linkd.Config{DatabaseURL: sqliteURL(t), SigningKeys: []ed25519.PrivateKey{newKey(t)}}, nil)
	if s.svc.AdminAddr() != "" {
		t.Errorf("AdminAddr = %q without an admin address", s.svc.AdminAddr())
	}
	for name, cfg := range map[string]linkd.Config{
		"no keys":     {GRPCAddr: "127.0.0.1:0", DatabaseURL: sqliteURL(t)},
		"no database": {GRPCAddr: "127.0.0.1:0", SigningKeys: []ed25519.PrivateKey{newKey(t)}},
		"bad scheme":  {GRPCAddr: "127.0.0.1:0", DatabaseURL: "mysql://x", SigningKeys: []ed25519.PrivateKey{newKey(t)}},
		"busy port":   {GRPCAddr: s.svc.GRPCAddr(), DatabaseURL: sqliteURL(t), SigningKeys: []ed25519.PrivateKey{newKey(t)}},
	} {
		if _, err := linkd.New(t.Context(), cfg, logging.Discard()); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// Key rotation: links signed by a retired key keep verifying, and the key
// stays published until its last link is revoked or expired.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	clk := newClock()
	dbURL := sqliteURL(t)
	a, b := newKey(t), newKey(t)
	kidA, kidB := linktoken.KeyID(a.Public().(ed25519.PublicKey)), linktoken.KeyID(b.Public().(ed25519.PublicKey))
	ctx := t.Context()

	s1 := start(t, linkd.Config{DatabaseURL: dbURL, SigningKeys: []ed25519.PrivateKey{a}, Now: clk.Now}, nil)
	forever, err := s1.client.CreateConversation(ctx, &linkv1.CreateConversationRequest{Namespace: "acme", OwnerAccountId: owner, Alias: "rot", Issuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	cid := forever.GetConversation().GetConversationId()
	expiring, err := s1.client.CreateLink(ctx, &linkv1.CreateLinkRequest{ConversationId: cid, ExpiresInSeconds: new(int64(60)), Issuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, forever.GetToken()) != kidA || kidOf(t, expiring.GetToken()) != kidA {
		t.Fatal("tokens not signed by the only key")
	}
	_, ks := keyFunc(t, s1.client)
	if strings.Join(kids(ks), ",") != kidA || !ks.GetKeys()[0].GetActive() {
		t.Fatalf("key set before rotation = %v", kids(ks))
	}
	s1.stop()

	// Rotate: B signs, A is retired.
	s2 := start(t, linkd.Config{DatabaseURL: dbURL, SigningKeys: []ed25519.PrivateKey{b, a}, Now: clk.Now}, nil)
	fresh, err := s2.client.CreateLink(ctx, &linkv1.CreateLinkRequest{ConversationId: cid, Issuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, fresh.GetToken()) != kidB {
		t.Errorf("new token signed by %s, want B %s", kidOf(t, fresh.GetToken()), kidB)
	}
	keys, ks := keyFunc(t, s2.client)
	if strings.Join(kids(ks), ",") != kidB+","+kidA || !ks.GetKeys()[0].GetActive() || ks.GetKeys()[1].GetActive() {
		t.Fatalf("key set after rotation = %v (active %v)", kids(ks), ks.GetKeys())
	}
	for name, tok := range map[string]string{"old forever": forever.GetToken(), "old expiring": expiring.GetToken(), "new": fresh.GetToken()} {
		if _, err := linktoken.Verify(tok, keys, cid, "acme", "rot", clk.Now()); err != nil {
			t.Errorf("%s token: %v", name, err)
		}
	}

	// Revoking A's forever link leaves its expiring link live: A stays.
	if _, err := s2.client.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: cid, LinkId: forever.GetLink().GetLinkId()}); err != nil {
		t.Fatal(err)
	}
	clk.Add(keyset.DefaultTTL + time.Second) // past the key set cache
	if _, ks = keyFunc(t, s2.client); strings.Join(kids(ks), ",") != kidB+","+kidA {
		t.Errorf("key set with one live A link = %v, want [B A]", kids(ks))
	}
	// Within exp + 5 s the expiring link is still live.
	clk.Add(60*time.Second - keyset.DefaultTTL - time.Second + 3*time.Second)
	if _, ks = keyFunc(t, s2.client); strings.Join(kids(ks), ",") != kidB+","+kidA {
		t.Errorf("key set inside the expiry leeway = %v, want [B A]", kids(ks))
	}
	// Past it, A has no live link and leaves the published set.
	clk.Add(keyset.DefaultTTL)
	keys, ks = keyFunc(t, s2.client)
	if strings.Join(kids(ks), ",") != kidB {
		t.Errorf("key set after A's links ended = %v, want [B]", kids(ks))
	}
	if _, err := linktoken.Verify(forever.GetToken(), keys, cid, "acme", "rot", clk.Now()); !errors.Is(err, linktoken.ErrInvalid) {
		t.Errorf("token of an unpublished key: %v, want ErrInvalid", err)
	}
	if _, err := linktoken.Verify(fresh.GetToken(), keys, cid, "acme", "rot", clk.Now()); err != nil {
		t.Errorf("B's token after A left: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a
// logger.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// C5: tokens, key material and metadata never reach the logs, even at
// debug level.
func TestC5LogsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	log, err := logging.New(&buf, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	s := start(t, linkd.Config{AdminAddr: "127.0.0.1:0", DatabaseURL: sqliteURL(t), SigningKeys: []ed25519.PrivateKey{key}}, log)
	ctx := t.Context()
	const canary = "metadata-canary-7f3a9"
	r, err := s.client.CreateConversation(ctx, &linkv1.CreateConversationRequest{
		Namespace: "acme", OwnerAccountId: owner, Alias: "logged", MetadataJson: `{"secret":"` + canary + `"}`, Issuer: issuer,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.client.CreateLink(ctx, &linkv1.CreateLinkRequest{ConversationId: r.GetConversation().GetConversationId(), Issuer: issuer, Label: new("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: r.GetConversation().GetConversationId(), LinkId: l.GetLink().GetLinkId()}); err != nil {
		t.Fatal(err)
	}
	// Errors are logged too: a rejected and a failing-by-bug request.
	_, _ = s.client.CreateConversation(ctx, &linkv1.CreateConversationRequest{Namespace: "acme", OwnerAccountId: owner, Alias: "logged", MetadataJson: `{"x":"` + canary + `"}`, Issuer: issuer})
	_, _ = s.client.CreateConversation(ctx, &linkv1.CreateConversationRequest{Namespace: "acme", OwnerAccountId: "bogus", MetadataJson: `{"x":"` + canary + `"}`})
	_, _ = s.client.GetKeySet(ctx, &linkv1.GetKeySetRequest{})
	s.stop()

	out := buf.String()
	for _, want := range []string{"conversation created", "link created", "link revoked", "link service stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: the test would prove nothing\n%s", want, out)
		}
	}
	pemText, err := keyset.Encode(key)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := map[string]string{
		"metadata": canary,
		"seed hex": hex.EncodeToString(key.Seed()),
		"key hex":  hex.EncodeToString(key),
		"seed b64": base64.StdEncoding.EncodeToString(key.Seed()),
		"seed url": base64.RawURLEncoding.EncodeToString(key.Seed()),
		"key b64":  base64.StdEncoding.EncodeToString(key),
	}
	for i, line := range strings.Split(string(pemText), "\n") {
		if len(line) > 16 && !strings.HasPrefix(line, "-----") {
			forbidden["pem line "+string(rune('0'+i))] = line
		}
	}
	for i, tok := range []string{r.GetToken(), l.GetToken()} {
		forbidden["token "+string(rune('0'+i))] = tok
		for j, part := range strings.Split(tok, ".") {
			forbidden["token part "+string(rune('0'+i))+string(rune('0'+j))] = part
		}
	}
	for what, s := range forbidden {
		if strings.Contains(out, s) {
			t.Errorf("log contains %s", what)
		}
	}
}
