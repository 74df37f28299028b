package ams_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/pkg/ams"
	"github.com/amsrouter/ams/pkg/ams/amstest"
	"github.com/amsrouter/ams/pkg/wire"
)

// TestControlPlane exercises every control-plane call of the client and
// its typed errors (C8, C10, C12, C16, C17).
func TestControlPlane(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := account(t, baseURL, "cp")

	conv, err := c.CreateConversation(ctx, ams.ConversationOptions{
		Alias:          "plan",
		StreamName:     "me",
		IDKind:         "uuid",
		Metadata:       json.RawMessage(`{"b":2, "a":1}`),
		StreamMetadata: json.RawMessage(`{"s":true}`),
		LinkExpiresIn:  time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if conv.Alias != "plan" || conv.StreamName != "me" || string(conv.Metadata) != `{"b":2, "a":1}` ||
		string(conv.StreamMetadata) != `{"s":true}` || conv.ExpiresAt == nil || !wire.ValidStreamID(conv.StreamID) {
		t.Errorf("created = %+v", conv)
	}
	if d := conv.ExpiresAt.Sub(conv.CreatedAt); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Errorf("expires %v after creation, want 1h", d)
	}

	// Inspect as owner and with the link; a joined stream is listed.
	s := join(t, c, conv.MagicLink, ams.WithStreamName("me"))
	byOwner, err := c.GetConversation(ctx, "plan")
	if err != nil {
		t.Fatal(err)
	}
	byLink, err := (&ams.Client{}).GetConversationByLink(ctx, conv.MagicLink)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*wire.Conversation{byOwner, byLink} {
		if got.ConversationID != conv.ConversationID || got.Namespace != c.Namespace || len(got.Streams) != 1 ||
			got.Streams[0].StreamID != conv.StreamID || got.Streams[0].StreamID != s.Joined().StreamID {
			t.Errorf("inspect = %+v", got)
		}
	}

	// Links.
	l, err := c.CreateLink(ctx, "plan", ams.LinkOptions{ExpiresIn: 2 * time.Minute, Label: "guest"})
	if err != nil {
		t.Fatal(err)
	}
	if l.MagicLink == "" || l.Label == nil || *l.Label != "guest" || l.ExpiresAt == nil {
		t.Errorf("link = %+v", l)
	}
	rev, err := c.RevokeLink(ctx, "plan", l.LinkID)
	if err != nil || rev.RevokedAt == nil {
		t.Fatalf("revoke: %+v %v", rev, err)
	}
	links, err := c.ListLinks(ctx, "plan")
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 || links[0].LinkID != conv.LinkID || links[1].RevokedAt == nil || links[1].MagicLink != "" {
		t.Errorf("links = %+v", links)
	}
	if _, err := (&ams.Client{}).GetConversationByLink(ctx, l.MagicLink); !ams.IsCode(err, wire.CodeLinkRevoked) {
		t.Errorf("revoked link: %v", err)
	}

	// Errors.
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   wire.Code
	}{
		{"taken alias", second(c.CreateConversation(ctx, ams.ConversationOptions{Alias: "plan"})), 409, wire.CodeAliasTaken},
		{"bad alias", second(c.CreateConversation(ctx, ams.ConversationOptions{Alias: "Bad!"})), 400, wire.CodeInvalidAlias},
		{"bad expiry", second(c.CreateConversation(ctx, ams.ConversationOptions{LinkExpiresIn: time.Second})), 400, wire.CodeInvalidLinkExpiry},
		{"foreign namespace", second((&ams.Client{BaseURL: baseURL, Namespace: "someone-else", Credential: c.Credential}).CreateConversation(ctx, ams.ConversationOptions{})), 403, wire.CodeNamespaceMismatch},
		{"unknown link", second(c.RevokeLink(ctx, "plan", "lnk_00000000000000000000")), 404, wire.CodeLinkNotFound},
		{"bad namespace", second(c.CreateAccount(ctx, "Not Valid")), 400, wire.CodeInvalidNamespace},
	} {
		var e *ams.Error
		if !errors.As(tc.err, &e) || e.Status != tc.status || e.Code != tc.code || e.Message == "" {
			t.Errorf("%s: %v (%#v), want %d %s", tc.name, tc.err, e, tc.status, tc.code)
		}
	}

	// Rotation: the new credential works, the old one stops.
	a, err := c.RotateCredential(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Credential == c.Credential || !strings.HasPrefix(a.Credential, "ams_sk_") || a.RotatedAt.IsZero() {
		t.Errorf("rotated = %+v", a)
	}
	old := *c
	c.Credential = a.Credential
	if _, err := c.GetConversation(ctx, "plan"); err != nil {
		t.Errorf("new credential: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := old.GetConversation(ctx, "plan")
		if ams.IsCode(err, wire.CodeInvalidCredential) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old credential after 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling a visible condition
	}
}

func second[T any](_ T, err error) error { return err }

func TestParseMagicLink(t *testing.T) {
	t.Parallel()
	l, err := ams.ParseMagicLink("https://ams.example.com/base/acme/conversations/stand-up/?t=eyJ.x.y")
	if err != nil {
		t.Fatal(err)
	}
	if l.Base != "https://ams.example.com/base" || l.Namespace != "acme" || l.Alias != "stand-up" || l.Token != "eyJ.x.y" {
		t.Errorf("parsed = %+v", l)
	}
	for _, bad := range []string{"", "acme/conversations/x?t=1", "http://h/acme/conversations/x", "http://h/acme/rooms/x?t=1", "ftp://h/a/conversations/x?t=1"} {
		if _, err := ams.ParseMagicLink(bad); !errors.Is(err, ams.ErrInvalidMagicLink) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	_ = amstest.Namespace // the package's helpers are used by the other tests
}
