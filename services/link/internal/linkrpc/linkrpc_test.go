package linkrpc

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/logging"
	"github.com/amsrouter/ams/services/internal/wireerr"
	"github.com/amsrouter/ams/services/link/internal/keyset"
	"github.com/amsrouter/ams/services/link/internal/sqlitestore"
	"github.com/amsrouter/ams/services/link/internal/store"
)

const issuer = "https://ams.example"

var owner = ids.NewAccountID(time.Now())

func newServer(tb testing.TB, wrap func(store.Store) store.Store) *Server {
	tb.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "link.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	k, err := keyset.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	var s store.Store = st
	if wrap != nil {
		s = wrap(st)
	}
	ks, err := keyset.New([]ed25519.PrivateKey{k}, s.LiveKeyIDs, keyset.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return New(s, ks, nil, logging.Discard())
}

func code(err error) string {
	if we, ok := wireerr.As(err); ok {
		return we.Code.Name
	}
	if err == nil {
		return ""
	}
	return "not a wire error: " + err.Error()
}

func i64(v int64) *int64   { return &v }
func str(s string) *string { return &s }

func TestValidateMetadata(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want, code string
	}{
		{"", "{}", ""},
		{"{}", "{}", ""},
		{` {"b":1,  "a":[2,1]}` + "\n", ` {"b":1,  "a":[2,1]}` + "\n", ""},
		{"[]", "", "invalid_metadata"},
		{"null", "", "invalid_metadata"},
		{`"x"`, "", "invalid_metadata"},
		{"1", "", "invalid_metadata"},
		{"{", "", "invalid_metadata"},
		{"not json", "", "invalid_metadata"},
		{"{} {}", "", "invalid_metadata"},
		{"   ", "", "invalid_metadata"},
		{"{\"a\":\"\xff\"}", "", "invalid_metadata"},
		{`{"k":"` + strings.Repeat("x", MaxMetadataBytes-8) + `"}`, `{"k":"` + strings.Repeat("x", MaxMetadataBytes-8) + `"}`, ""},
		{`{"k":"` + strings.Repeat("x", MaxMetadataBytes-7) + `"}`, "", "invalid_metadata"},
	} {
		got, err := ValidateMetadata(tc.in)
		if code(err) != tc.code || got != tc.want {
			name := tc.in
			if len(name) > 40 {
				name = name[:40] + "…"
			}
			t.Errorf("ValidateMetadata(%q) = %q, %v; want %q, %q", name, got, err, tc.want, tc.code)
		}
	}
}

func TestValidateExpiryAndLabel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   *int64
		want time.Duration
		code string
	}{
		{nil, 0, ""},
		{i64(60), time.Minute, ""},
		{i64(31536000), 31536000 * time.Second, ""},
		{i64(59), 0, "invalid_link_expiry"},
		{i64(31536001), 0, "invalid_link_expiry"},
		{i64(0), 0, "invalid_link_expiry"},
		{i64(-60), 0, "invalid_link_expiry"},
	} {
		got, err := ValidateExpiry(tc.in)
		if got != tc.want || code(err) != tc.code {
			t.Errorf("ValidateExpiry(%v) = %v, %v; want %v, %q", tc.in, got, err, tc.want, tc.code)
		}
	}
	for _, tc := range []struct {
		in   *string
		code string
	}{
		{nil, ""},
		{str("a"), ""},
		{str(strings.Repeat("ü", 64)), ""}, // 128 bytes, 64 characters
		{str(""), "invalid_label"},
		{str(strings.Repeat("a", 65)), "invalid_label"},
		{str("\xff"), "invalid_label"},
		{str("a\x00b"), "invalid_label"},
	} {
		if err := ValidateLabel(tc.in); code(err) != tc.code {
			t.Errorf("ValidateLabel(%v) = %v, want %q", tc.in, err, tc.code)
		}
	}
}

// takenStore claims the alias is taken for the first n creations.
type takenStore struct {
	store.Store
	mu      sync.Mutex
	n       int
	aliases []string
}

func (s *takenStore) CreateConversation(ctx context.Context, c store.Conversation, l store.Link) error {
	s.mu.Lock()
	s.aliases = append(s.aliases, c.Alias)
	refuse := len(s.aliases) <= s.n
	s.mu.Unlock()
	if refuse {
		return store.ErrAliasTaken
	}
	return s.Store.CreateConversation(ctx, c, l)
}

func TestRandomAliasRedraws(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		taken     int
		alias     string
		wantCode  string
		wantCalls int
	}{
		{taken: AliasDraws - 1, wantCalls: AliasDraws},
		{taken: AliasDraws, wantCode: "alias_taken", wantCalls: AliasDraws},
		{taken: 1, alias: "explicit", wantCode: "alias_taken", wantCalls: 1},
	} {
		ts := &takenStore{n: tc.taken}
		srv := newServer(t, func(s store.Store) store.Store { ts.Store = s; return ts })
		resp, err := srv.CreateConversation(t.Context(), &linkv1.CreateConversationRequest{
			Namespace: "acme", OwnerAccountId: owner, Alias: tc.alias, Issuer: issuer,
		})
		if code(err) != tc.wantCode {
			t.Errorf("taken %d, alias %q: err %v, want %q", tc.taken, tc.alias, err, tc.wantCode)
		}
		if len(ts.aliases) != tc.wantCalls {
			t.Errorf("taken %d, alias %q: %d attempts, want %d", tc.taken, tc.alias, len(ts.aliases), tc.wantCalls)
		}
		if err == nil {
			got := resp.GetConversation().GetAlias()
			if !ids.RandomAliasRe.MatchString(got) || got != ts.aliases[len(ts.aliases)-1] {
				t.Errorf("alias %q, want the last draw %q", got, ts.aliases[len(ts.aliases)-1])
			}
		}
	}
}

func TestCallerBugs(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	ctx := t.Context()
	for name, req := range map[string]*linkv1.CreateConversationRequest{
		"bad namespace": {Namespace: "Acme", OwnerAccountId: owner, Issuer: issuer},
		"bad owner":     {Namespace: "acme", OwnerAccountId: "acc_x", Issuer: issuer},
		"no issuer":     {Namespace: "acme", OwnerAccountId: owner},
	} {
		want := map[string]string{"bad namespace": "invalid_namespace", "bad owner": "internal_error", "no issuer": "internal_error"}[name]
		if _, err := srv.CreateConversation(ctx, req); code(err) != want {
			t.Errorf("%s: %v, want %s", name, err, want)
		}
	}
	anon := "acc_anon_0123456789abcdef0123456789"
	if _, err := srv.CreateConversation(ctx, &linkv1.CreateConversationRequest{Namespace: "acme", OwnerAccountId: anon, Issuer: issuer}); err != nil {
		t.Errorf("anonymous owner refused: %v", err)
	}
}

// metadataOracle decides independently of ValidateMetadata whether md is
// acceptable metadata: a UTF-8 JSON object of at most 64 KiB. Metadata is
// opaque bytes, so only its syntax counts: a number no float64 holds
// (1e999999999) is valid JSON, as is any other value a decoder into Go
// types would refuse.
func metadataOracle(md string) bool {
	if md == "" {
		return true
	}
	if len(md) > MaxMetadataBytes || !utf8.ValidString(md) || !json.Valid([]byte(md)) {
		return false
	}
	return strings.TrimLeft(md, " \t\r\n")[0] == '{'
}

// FuzzRequestValidation drives CreateConversation and CreateLink with
// arbitrary metadata, alias and label: no panic, only the listed codes,
// and accepted metadata comes back byte-identical (C37, C71).
func FuzzRequestValidation(f *testing.F) {
	f.Add(`{"b":1,  "a":[2,1],"ü":"\u00fc"}`, "", "label")
	f.Add("", "room-1", "")
	f.Add("[]", "Bad_Alias", strings.Repeat("x", 65))
	f.Add("null", "-x", "ü")
	f.Add(`"x"`, "a", "\xff")
	f.Add("not json", strings.Repeat("a", 64), "")
	f.Add(" \n{\"deep\":[[[[{}]]]]}\t", "x-y-1234", strings.Repeat("ü", 64))
	srv := newServer(f, nil)
	f.Fuzz(func(t *testing.T, md, alias, label string) {
		ctx := context.Background()
		resp, err := srv.CreateConversation(ctx, &linkv1.CreateConversationRequest{
			Namespace: "fuzz", OwnerAccountId: owner, Alias: alias, MetadataJson: md, Issuer: issuer,
		})
		aliasOK := alias == "" || ids.ValidAlias(alias)
		mdOK := metadataOracle(md)
		switch {
		case !aliasOK:
			if code(err) != "invalid_alias" {
				t.Fatalf("alias %q: %v, want invalid_alias", alias, err)
			}
			return
		case !mdOK:
			if code(err) != "invalid_metadata" {
				t.Fatalf("metadata %q: %v, want invalid_metadata", md, err)
			}
			return
		case err != nil:
			// A repeated explicit alias is the only other outcome.
			if alias == "" || code(err) != "alias_taken" {
				t.Fatalf("alias %q, metadata %q: %v", alias, md, err)
			}
			return
		}
		want := md
		if md == "" {
			want = "{}"
		}
		if got := resp.GetConversation().GetMetadataJson(); got != want {
			t.Fatalf("metadata returned %q, want %q", got, want)
		}
		if alias != "" && resp.GetConversation().GetAlias() != alias {
			t.Fatalf("alias returned %q, want %q", resp.GetConversation().GetAlias(), alias)
		}
		got, err := srv.GetConversation(ctx, &linkv1.GetConversationRequest{Namespace: "fuzz", Alias: resp.GetConversation().GetAlias()})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetMetadataJson() != want {
			t.Fatalf("metadata stored %q, want %q", got.GetMetadataJson(), want)
		}

		lr, err := srv.CreateLink(ctx, &linkv1.CreateLinkRequest{
			ConversationId: resp.GetConversation().GetConversationId(), Label: &label, Issuer: issuer,
		})
		n := utf8.RuneCountInString(label)
		if utf8.ValidString(label) && !strings.Contains(label, "\x00") && n >= 1 && n <= MaxLabelChars {
			if err != nil {
				t.Fatalf("label %q: %v", label, err)
			}
			if lr.GetLink().GetLabel() != label {
				t.Fatalf("label returned %q, want %q", lr.GetLink().GetLabel(), label)
			}
		} else if code(err) != "invalid_label" {
			t.Fatalf("label %q: %v, want invalid_label", label, err)
		}
	})
}

func TestListRevocationsLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	ctx := t.Context()
	resp, err := srv.CreateConversation(ctx, &linkv1.CreateConversationRequest{Namespace: "acme", OwnerAccountId: owner, Issuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	cid := resp.GetConversation().GetConversationId()
	var linkIDs []string
	for range 3 {
		lr, err := srv.CreateLink(ctx, &linkv1.CreateLinkRequest{ConversationId: cid, Issuer: issuer})
		if err != nil {
			t.Fatal(err)
		}
		linkIDs = append(linkIDs, lr.GetLink().GetLinkId())
	}
	for _, id := range linkIDs {
		if _, err := srv.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: cid, LinkId: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		after int64
		limit int32
		want  int
	}{{0, 0, 3}, {0, -1, 3}, {0, 2, 2}, {-5, 5000, 3}} {
		r, err := srv.ListRevocations(ctx, &linkv1.ListRevocationsRequest{After: tc.after, Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.GetRevocations()) != tc.want {
			t.Errorf("after %d limit %d: %d revocations, want %d", tc.after, tc.limit, len(r.GetRevocations()), tc.want)
		}
	}
	if _, err := srv.RevokeLink(ctx, &linkv1.RevokeLinkRequest{ConversationId: cid, LinkId: "nope"}); code(err) != "link_not_found" {
		t.Errorf("RevokeLink(malformed id) = %v, want link_not_found", err)
	}
	if _, err := srv.ListLinks(ctx, &linkv1.ListLinksRequest{ConversationId: "conv_x"}); code(err) != "not_found" {
		t.Errorf("ListLinks(malformed id) = %v, want not_found", err)
	}
	if _, err := srv.CreateLink(ctx, &linkv1.CreateLinkRequest{ConversationId: ids.NewConversationID(time.Now()), Issuer: issuer}); code(err) != "not_found" {
		t.Errorf("CreateLink(unknown conversation) = %v, want not_found", err)
	}
}
