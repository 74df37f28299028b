package grpce2e

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Formats of spec 2.1.
var (
	accountIDRe   = regexp.MustCompile(`^acc_[0-9A-HJKMNP-TV-Z]{20}$`)
	convIDRe      = regexp.MustCompile(`^conv_[0-9A-HJKMNP-TV-Z]{20}$`)
	linkIDRe      = regexp.MustCompile(`^lnk_[0-9A-HJKMNP-TV-Z]{20}$`)
	credentialRe  = regexp.MustCompile(`^ams_sk_[A-Za-z0-9_-]{43}$`)
	randomAliasRe = regexp.MustCompile(`^[a-z]+-[a-z]+-[1-9][0-9]{3}$`)
	defaultNameRe = regexp.MustCompile(`^stream-[A-Za-z0-9_-]{8}$`)
)

// publicURL is the base of magic links of the C68 systems, so that links
// minted over gRPC and over HTTP can be compared.
const publicURL = "https://ams.example"

func startPublic(t *testing.T) *gwtest.System {
	t.Helper()
	return gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(_ int, cfg *gatewayd.Config) { cfg.PublicURL = publicURL }})
}

// The JSON bodies of spec 3.2 to 3.6 as spec 5.4 maps them to messages,
// rendered back, for comparing gRPC answers with HTTP ones.

func jsonValue(t testing.TB, text string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("*_json %q: %v", text, err)
	}
	return v
}

func orNull(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// body is one answer as an ordered list of keys and a map of values.
type body struct {
	keys   []string
	values map[string]any
}

func newBody(kv ...any) body {
	b := body{values: map[string]any{}}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		b.keys = append(b.keys, k)
		b.values[k] = kv[i+1]
	}
	return b
}

// httpBody decodes an HTTP answer into a body.
func httpBody(t testing.TB, r *gwtest.Response) body {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %.300s: %v", r.Body, err)
	}
	return body{keys: gwtest.Keys(t, r.Body), values: m}
}

func streamsJSON(t testing.TB, ss []*amsv1.StreamInfo) []any {
	out := []any{}
	for _, s := range ss {
		m := map[string]any{"stream_id": s.GetStreamId(), "stream_name": s.GetStreamName(),
			"owner_account_id": s.GetOwnerAccountId(), "metadata": jsonValue(t, s.GetMetadataJson()), "last_seq": float64(s.GetLastSeq())}
		if p := s.GetPeerIdentity(); p != nil {
			id := map[string]any{"kind": p.GetKind()}
			if p.GetModel() != "" {
				id["model"] = p.GetModel()
			}
			if p.GetClient() != "" {
				id["client"] = p.GetClient()
			}
			m["peer_identity"] = id
		}
		out = append(out, m)
	}
	return out
}

func conversationBody(t testing.TB, c *amsv1.Conversation) body {
	return newBody("conversation_id", c.GetConversationId(), "namespace", c.GetNamespace(), "alias", c.GetAlias(),
		"metadata", jsonValue(t, c.GetMetadataJson()), "created_at", c.GetCreatedAt(), "id_kind", c.GetIdKind(),
		"streams", streamsJSON(t, c.GetStreams()))
}

func listedLink(l *amsv1.Link) map[string]any {
	return map[string]any{"link_id": l.GetLinkId(), "created_at": l.GetCreatedAt(), "expires_at": orNull(l.ExpiresAt),
		"revoked_at": orNull(l.RevokedAt), "label": orNull(l.Label)}
}

// sameBody checks that a gRPC answer rendered as JSON has the HTTP
// answer's keys in order and, for the keys in equal, the same values.
func sameBody(t testing.TB, what string, grpcBody, http body, equal ...string) {
	t.Helper()
	if !slices.Equal(grpcBody.keys, http.keys) {
		t.Errorf("%s: gRPC fields %v, HTTP %v", what, grpcBody.keys, http.keys)
	}
	for _, k := range equal {
		if diff := cmp.Diff(http.values[k], grpcBody.values[k]); diff != "" {
			t.Errorf("%s: %s differs (-http +grpc):\n%s", what, k, diff)
		}
	}
}

// C68: AccountService and ConversationService answer every operation with
// the body of its HTTP route (spec 5.4 mapping), through another gateway
// than the HTTP calls, and the results are the same objects: what one
// transport creates the other reads back equal.
func TestC68ControlPlaneMatchesHTTP(t *testing.T) {
	t.Parallel()
	sys := startPublic(t)
	g := gw(t, sys, 1)
	web := sys.URL(0)

	// Accounts (3.2).
	acc, err := g.accounts.CreateAccount(ctxWith(t), &amsv1.CreateAccountRequest{Namespace: "grpc-ns"})
	if err != nil {
		t.Fatal(err)
	}
	hacc := gwtest.DoResponse(t, http.MethodPost, web+"/v1/accounts", nil, `{"namespace":"http-ns"}`)
	sameBody(t, "create account", newBody("account_id", acc.GetAccountId(), "namespace", acc.GetNamespace(),
		"credential", acc.GetCredential(), "created_at", acc.GetCreatedAt()), httpBody(t, hacc))
	if !accountIDRe.MatchString(acc.GetAccountId()) || acc.GetNamespace() != "grpc-ns" || !credentialRe.MatchString(acc.GetCredential()) ||
		!timestampRe.MatchString(acc.GetCreatedAt()) || acc.RotatedAt != nil {
		t.Errorf("account %v", acc)
	}
	cred := acc.GetCredential()

	// Mint (3.4), everything given.
	const md, smd = `{"b": 1,  "a":[2,1]}`, `{"x" : [true]}`
	exp, uuid := int64(3600), "uuid"
	mint, err := g.convs.CreateConversation(bearer(t, cred), &amsv1.CreateConversationRequest{Namespace: "grpc-ns", Alias: "room",
		StreamName: "me", IdKind: &uuid, MetadataJson: md, StreamMetadataJson: smd, LinkExpiresIn: &exp})
	if err != nil {
		t.Fatal(err)
	}
	hmint := gwtest.DoResponse(t, http.MethodPost, web+"/v1/grpc-ns/conversations", gwtest.Bearer(cred),
		`{"alias":"room-http","stream_name":"me","id_kind":"uuid","metadata":`+md+`,"stream_metadata":`+smd+`,"link_expires_in":3600}`)
	mb := newBody("conversation_id", mint.GetConversationId(), "alias", mint.GetAlias(), "magic_link", mint.GetMagicLink(),
		"stream_id", mint.GetStreamId(), "stream_name", mint.GetStreamName(), "metadata", jsonValue(t, mint.GetMetadataJson()),
		"stream_metadata", jsonValue(t, mint.GetStreamMetadataJson()), "created_at", mint.GetCreatedAt(), "link_id", mint.GetLinkId(),
		"expires_at", orNull(mint.ExpiresAt))
	sameBody(t, "mint", mb, httpBody(t, hmint), "stream_name", "metadata", "stream_metadata")
	if mint.GetMetadataJson() != md || mint.GetStreamMetadataJson() != smd || member(t, hmint.Body, "metadata") != md {
		t.Errorf("mint metadata %q / %q, HTTP %s: want the exact text", mint.GetMetadataJson(), mint.GetStreamMetadataJson(), member(t, hmint.Body, "metadata"))
	}
	if !convIDRe.MatchString(mint.GetConversationId()) || !linkIDRe.MatchString(mint.GetLinkId()) || !streamIDRe.MatchString(mint.GetStreamId()) ||
		!strings.HasPrefix(mint.GetMagicLink(), publicURL+"/grpc-ns/conversations/room?t=") {
		t.Errorf("mint %v", mint)
	}
	created, _ := time.Parse(time.RFC3339, mint.GetCreatedAt())
	if expires, err := time.Parse(time.RFC3339, mint.GetExpiresAt()); err != nil || expires.Sub(created) != time.Hour {
		t.Errorf("expires_at %q, created_at %q: want an hour apart", mint.GetExpiresAt(), mint.GetCreatedAt())
	}
	// Defaults: random alias, default stream name, {} metadata, no expiry.
	bare, err := g.convs.CreateConversation(bearer(t, cred), &amsv1.CreateConversationRequest{Namespace: "grpc-ns"})
	if err != nil {
		t.Fatal(err)
	}
	if !randomAliasRe.MatchString(bare.GetAlias()) || !defaultNameRe.MatchString(bare.GetStreamName()) || bare.GetMetadataJson() != "{}" ||
		bare.GetStreamMetadataJson() != "{}" || bare.ExpiresAt != nil {
		t.Errorf("default mint %v", bare)
	}

	// The minted stream_id is the one the stream gets.
	link := relink(t, mint.GetMagicLink(), web)
	ws := wsDial(t, link, wsOpts{credential: cred, streamName: "me", metadata: `{"live": 1}`})
	if j := ws.expect("joined"); j.m["stream_id"] != mint.GetStreamId() {
		t.Errorf("joined stream_id %v, minted %s", j.m["stream_id"], mint.GetStreamId())
	}

	// Inspect (3.5) with the link token and with the owner's Bearer:
	// equal to the HTTP answer, live stream included.
	token := link[strings.Index(link, "?t=")+3:]
	for _, viaToken := range []bool{true, false} {
		ctx, req, hdr, q := bearer(t, cred), &amsv1.GetConversationRequest{Namespace: "grpc-ns", Alias: "room"}, gwtest.Bearer(cred), ""
		if viaToken {
			ctx, req.Token, hdr, q = ctxWith(t), token, nil, "?t="+token
		}
		conv, err := g.convs.GetConversation(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		hconv := gwtest.DoResponse(t, http.MethodGet, web+"/v1/grpc-ns/conversations/room"+q, hdr, "")
		hb := httpBody(t, hconv)
		sameBody(t, "inspect", conversationBody(t, conv), hb, hb.keys...)
		if len(conv.GetStreams()) != 1 || conv.GetStreams()[0].GetMetadataJson() != `{"live": 1}` || conv.GetMetadataJson() != md {
			t.Errorf("inspect %v", conv)
		}
	}

	// Links (3.6): create over gRPC, read back over HTTP.
	label := "for carol ✓"
	lexp := int64(120)
	nl, err := g.convs.CreateLink(bearer(t, cred), &amsv1.CreateLinkRequest{Namespace: "grpc-ns", Alias: "room", ExpiresIn: &lexp, Label: &label})
	if err != nil {
		t.Fatal(err)
	}
	hl := gwtest.DoResponse(t, http.MethodPost, web+"/v1/grpc-ns/conversations/room/links", gwtest.Bearer(cred), `{"expires_in":120,"label":"x"}`)
	sameBody(t, "create link", newBody("link_id", nl.GetLinkId(), "magic_link", nl.GetMagicLink(), "created_at", nl.GetCreatedAt(),
		"expires_at", orNull(nl.ExpiresAt), "label", orNull(nl.Label)), httpBody(t, hl))
	if !strings.HasPrefix(nl.GetMagicLink(), publicURL+"/grpc-ns/conversations/room?t=") || nl.GetLabel() != label || nl.RevokedAt != nil {
		t.Errorf("created link %v", nl)
	}
	newTok := nl.GetMagicLink()[strings.Index(nl.GetMagicLink(), "?t=")+3:]
	if r := gwtest.DoResponse(t, http.MethodGet, web+"/v1/grpc-ns/conversations/room?t="+newTok, nil, ""); r.Status != http.StatusOK {
		t.Errorf("inspect with the gRPC link: %d %s", r.Status, r.Body)
	}

	// List: equal to the HTTP list.
	list, err := g.convs.ListLinks(bearer(t, cred), &amsv1.ListLinksRequest{Namespace: "grpc-ns", Alias: "room"})
	if err != nil {
		t.Fatal(err)
	}
	hlist := gwtest.DoResponse(t, http.MethodGet, web+"/v1/grpc-ns/conversations/room/links", gwtest.Bearer(cred), "")
	var links []any
	for _, l := range list.GetLinks() {
		links = append(links, listedLink(l))
	}
	sameBody(t, "list links", newBody("links", links), httpBody(t, hlist), "links")
	if len(links) != 3 {
		t.Errorf("%d links, want 3", len(links))
	}

	// Revoke over gRPC; the HTTP repeat and a gRPC repeat keep the first
	// revoked_at.
	rv, err := g.convs.RevokeLink(bearer(t, cred), &amsv1.RevokeLinkRequest{Namespace: "grpc-ns", Alias: "room", LinkId: nl.GetLinkId()})
	if err != nil {
		t.Fatal(err)
	}
	hrv := gwtest.DoResponse(t, http.MethodDelete, web+"/v1/grpc-ns/conversations/room/links/"+nl.GetLinkId(), gwtest.Bearer(cred), "")
	sameBody(t, "revoke", newBody("link_id", rv.GetLinkId(), "revoked_at", orNull(rv.RevokedAt)), httpBody(t, hrv), "link_id", "revoked_at")
	rv2, err := g.convs.RevokeLink(bearer(t, cred), &amsv1.RevokeLinkRequest{Namespace: "grpc-ns", Alias: "room", LinkId: nl.GetLinkId()})
	if err != nil || rv2.GetRevokedAt() != rv.GetRevokedAt() || !timestampRe.MatchString(rv.GetRevokedAt()) {
		t.Errorf("repeated revoke %v (%v), first %v", rv2, err, rv)
	}

	// Rotation (3.3): the new credential works, the old one is refused by
	// this gateway at once.
	rot, err := g.accounts.RotateCredential(bearer(t, cred), &amsv1.RotateCredentialRequest{Namespace: "grpc-ns"})
	if err != nil {
		t.Fatal(err)
	}
	hrot := gwtest.DoResponse(t, http.MethodPost, web+"/v1/http-ns/credentials/rotate", gwtest.Bearer(httpBody(t, hacc).values["credential"].(string)), "")
	sameBody(t, "rotate", newBody("account_id", rot.GetAccountId(), "namespace", rot.GetNamespace(), "credential", rot.GetCredential(),
		"rotated_at", orNull(rot.RotatedAt)), httpBody(t, hrot))
	if rot.GetAccountId() != acc.GetAccountId() || rot.GetCredential() == cred || !credentialRe.MatchString(rot.GetCredential()) ||
		!timestampRe.MatchString(rot.GetRotatedAt()) {
		t.Errorf("rotated %v", rot)
	}
	var tr metadata.MD
	_, err = g.convs.ListLinks(bearer(t, cred), &amsv1.ListLinksRequest{Namespace: "grpc-ns", Alias: "room"}, grpc.Trailer(&tr))
	wantCallError(t, "old credential", err, tr, codes.Unauthenticated, "invalid_credential")
	if _, err := g.convs.ListLinks(bearer(t, rot.GetCredential()), &amsv1.ListLinksRequest{Namespace: "grpc-ns", Alias: "room"}); err != nil {
		t.Errorf("new credential: %v", err)
	}
}

// C68: every control call fails as its HTTP route does: the same code
// (trailer ams-error and ErrorInfo) with the status of the route's HTTP
// status (spec 5.4), the checks in the same order.
func TestC68ErrorsMatchHTTP(t *testing.T) {
	t.Parallel()
	sys := startPublic(t)
	g := gw(t, sys, 1)
	web := sys.URL(0)
	_, alice := sys.CreateAccount(t, 0, "alice")
	_, bob := sys.CreateAccount(t, 0, "bob")
	room := sys.Mint(t, 0, alice, "alice", `{"alias":"room"}`)
	other := sys.Mint(t, 0, alice, "alice", `{"alias":"other"}`)
	tok, otherTok := gwtest.LinkToken(t, room), gwtest.LinkToken(t, other)
	revoked := gwtest.DoResponse(t, http.MethodPost, web+"/v1/alice/conversations/room/links", gwtest.Bearer(alice), "")
	revokedID := httpBody(t, revoked).values["link_id"].(string)
	revokedTok := gwtest.LinkToken(t, httpBody(t, revoked).values["magic_link"])
	if r := gwtest.DoResponse(t, http.MethodDelete, web+"/v1/alice/conversations/room/links/"+revokedID, gwtest.Bearer(alice), ""); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d", r.Status)
	}
	badCred := "ams_sk_" + strings.Repeat("A", 43)
	str := func(s string) *string { return &s }
	i64 := func(n int64) *int64 { return &n }
	bigMeta := `{"a":"` + strings.Repeat("x", 16<<10) + `"}`
	label65 := strings.Repeat("é", 65)

	type call func(ctx context.Context, opt grpc.CallOption) error
	rotate := func(ns string) call {
		return func(ctx context.Context, opt grpc.CallOption) error {
			_, err := g.accounts.RotateCredential(ctx, &amsv1.RotateCredentialRequest{Namespace: ns}, opt)
			return err
		}
	}
	createAccount := func(ns string) call {
		return func(ctx context.Context, opt grpc.CallOption) error {
			_, err := g.accounts.CreateAccount(ctx, &amsv1.CreateAccountRequest{Namespace: ns}, opt)
			return err
		}
	}
	mint := func(req *amsv1.CreateConversationRequest) call {
		return func(ctx context.Context, opt grpc.CallOption) error {
			_, err := g.convs.CreateConversation(ctx, req, opt)
			return err
		}
	}
	get := func(ns, alias, token string) call {
		return func(ctx context.Context, opt grpc.CallOption) error {
			_, err := g.convs.GetConversation(ctx, &amsv1.GetConversationRequest{Namespace: ns, Alias: alias, Token: token}, opt)
			return err
		}
	}
	createLink := func(req *amsv1.CreateLinkRequest) call {
		return func(ctx context.Context, opt grpc.CallOption) error {
			_, err := g.convs.CreateLink(ctx, req, opt)
			return err
		}
	}
	listLinks := func(alias string) call {
		return func(ctx context.Context, opt grpc.CallOption) error {
			_, err := g.convs.ListLinks(ctx, &amsv1.ListLinksRequest{Namespace: "alice", Alias: alias}, opt)
			return err
		}
	}
	revoke := func(alias, id string) call {
		return func(ctx context.Context, opt grpc.CallOption) error {
			_, err := g.convs.RevokeLink(ctx, &amsv1.RevokeLinkRequest{Namespace: "alice", Alias: alias, LinkId: id}, opt)
			return err
		}
	}
	bearerOf := func(c string) string { return "Bearer " + c }

	cases := []struct {
		name string
		auth string // authorization value, "" for none
		call call
		// The HTTP request of the same operation; method "" when a gRPC
		// request has no HTTP equivalent.
		method, path, body string
		code               string
	}{
		{"rotate without credential", "", rotate("alice"), "POST", "/v1/alice/credentials/rotate", "", "missing_credential"},
		{"rotate with another scheme", "Basic " + alice, rotate("alice"), "POST", "/v1/alice/credentials/rotate", "", "missing_credential"},
		{"rotate with an unknown credential", bearerOf(badCred), rotate("alice"), "POST", "/v1/alice/credentials/rotate", "", "invalid_credential"},
		{"rotate a foreign namespace", bearerOf(bob), rotate("alice"), "POST", "/v1/alice/credentials/rotate", "", "namespace_mismatch"},
		{"account without namespace", "", createAccount(""), "POST", "/v1/accounts", `{}`, "invalid_namespace"},
		{"account with a bad namespace", "", createAccount("Bad-NS"), "POST", "/v1/accounts", `{"namespace":"Bad-NS"}`, "invalid_namespace"},
		{"namespace taken", "", createAccount("alice"), "POST", "/v1/accounts", `{"namespace":"alice"}`, "namespace_taken"},
		{"account request too large", "", createAccount(strings.Repeat("a", 1<<20+1)), "POST", "/v1/accounts",
			`{"namespace":"` + strings.Repeat("a", 1<<20+1) + `"}`, "payload_too_large"},
		{"mint without credential", "", mint(&amsv1.CreateConversationRequest{Namespace: "alice"}), "POST", "/v1/alice/conversations", "", "missing_credential"},
		{"mint in a foreign namespace, bad body", bearerOf(bob), mint(&amsv1.CreateConversationRequest{Namespace: "alice", MetadataJson: "[1]"}),
			"POST", "/v1/alice/conversations", `{"metadata":[1]}`, "namespace_mismatch"},
		{"mint a bad alias", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", Alias: "Room", MetadataJson: "[1]"}),
			"POST", "/v1/alice/conversations", `{"alias":"Room","metadata":[1]}`, "invalid_alias"},
		{"mint a bad stream name", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", StreamName: "bad name", IdKind: str("x")}),
			"POST", "/v1/alice/conversations", `{"stream_name":"bad name","id_kind":"x"}`, "invalid_stream_name"},
		{"mint another id kind", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", IdKind: str("ulid")}),
			"POST", "/v1/alice/conversations", `{"id_kind":"ulid"}`, "unsupported_id_kind"},
		{"mint an empty id kind", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", IdKind: str("")}),
			"POST", "/v1/alice/conversations", `{"id_kind":""}`, "unsupported_id_kind"},
		{"mint array metadata", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", MetadataJson: "[1]", StreamMetadataJson: "1"}),
			"POST", "/v1/alice/conversations", `{"metadata":[1],"stream_metadata":1}`, "invalid_metadata"},
		{"mint metadata that is not JSON", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", MetadataJson: `{"a":`}),
			"", "", "", "invalid_metadata"},
		{"mint metadata with space around", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", MetadataJson: ` {} `}),
			"", "", "", "invalid_metadata"},
		{"mint large stream metadata", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", StreamMetadataJson: bigMeta}),
			"POST", "/v1/alice/conversations", `{"stream_metadata":` + bigMeta + `}`, "invalid_stream_metadata"},
		{"mint a short expiry", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", LinkExpiresIn: i64(59)}),
			"POST", "/v1/alice/conversations", `{"link_expires_in":59}`, "invalid_link_expiry"},
		{"mint a long expiry", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", LinkExpiresIn: i64(31536001)}),
			"POST", "/v1/alice/conversations", `{"link_expires_in":31536001}`, "invalid_link_expiry"},
		{"mint a taken alias", bearerOf(alice), mint(&amsv1.CreateConversationRequest{Namespace: "alice", Alias: "room"}),
			"POST", "/v1/alice/conversations", `{"alias":"room"}`, "alias_taken"},
		{"inspect without token or credential", "", get("alice", "room", ""), "GET", "/v1/alice/conversations/room", "", "missing_token"},
		{"inspect an unknown alias", "", get("alice", "nothing", tok), "GET", "/v1/alice/conversations/nothing?t=" + tok, "", "not_found"},
		{"inspect a bad alias", "", get("alice", "No/Such", tok), "", "", "", "not_found"},
		{"inspect with a garbage token", "", get("alice", "room", "garbage"), "GET", "/v1/alice/conversations/room?t=garbage", "", "invalid_token"},
		{"inspect with another conversation's token", "", get("alice", "room", otherTok), "GET", "/v1/alice/conversations/room?t=" + otherTok, "", "invalid_token"},
		{"inspect with a revoked token", "", get("alice", "room", revokedTok), "GET", "/v1/alice/conversations/room?t=" + revokedTok, "", "link_revoked"},
		{"inspect as another account", bearerOf(bob), get("alice", "room", ""), "GET", "/v1/alice/conversations/room", "", "namespace_mismatch"},
		{"inspect with an unknown credential", bearerOf(badCred), get("alice", "room", ""), "GET", "/v1/alice/conversations/room", "", "invalid_credential"},
		{"link without credential", "", createLink(&amsv1.CreateLinkRequest{Namespace: "alice", Alias: "room"}),
			"POST", "/v1/alice/conversations/room/links", "", "missing_credential"},
		{"link as another account", bearerOf(bob), createLink(&amsv1.CreateLinkRequest{Namespace: "alice", Alias: "room"}),
			"POST", "/v1/alice/conversations/room/links", "", "namespace_mismatch"},
		{"link for an unknown alias", bearerOf(alice), createLink(&amsv1.CreateLinkRequest{Namespace: "alice", Alias: "nothing", ExpiresIn: i64(1)}),
			"POST", "/v1/alice/conversations/nothing/links", `{"expires_in":1}`, "not_found"},
		{"link with a short expiry", bearerOf(alice), createLink(&amsv1.CreateLinkRequest{Namespace: "alice", Alias: "room", ExpiresIn: i64(10), Label: str("")}),
			"POST", "/v1/alice/conversations/room/links", `{"expires_in":10,"label":""}`, "invalid_link_expiry"},
		{"link with an empty label", bearerOf(alice), createLink(&amsv1.CreateLinkRequest{Namespace: "alice", Alias: "room", Label: str("")}),
			"POST", "/v1/alice/conversations/room/links", `{"label":""}`, "invalid_label"},
		{"link with a long label", bearerOf(alice), createLink(&amsv1.CreateLinkRequest{Namespace: "alice", Alias: "room", Label: &label65}),
			"POST", "/v1/alice/conversations/room/links", `{"label":"` + label65 + `"}`, "invalid_label"},
		{"list an unknown alias", bearerOf(alice), listLinks("nothing"), "GET", "/v1/alice/conversations/nothing/links", "", "not_found"},
		{"list as another account", bearerOf(bob), listLinks("room"), "GET", "/v1/alice/conversations/room/links", "", "namespace_mismatch"},
		{"revoke a malformed id", bearerOf(alice), revoke("room", "nope"), "DELETE", "/v1/alice/conversations/room/links/nope", "", "link_not_found"},
		{"revoke an unknown id", bearerOf(alice), revoke("room", "lnk_00000000000000000000"),
			"DELETE", "/v1/alice/conversations/room/links/lnk_00000000000000000000", "", "link_not_found"},
		{"revoke another conversation's link", bearerOf(alice), revoke("other", revokedID),
			"DELETE", "/v1/alice/conversations/other/links/" + revokedID, "", "link_not_found"},
		{"revoke in an unknown alias", bearerOf(alice), revoke("nothing", revokedID),
			"DELETE", "/v1/alice/conversations/nothing/links/" + revokedID, "", "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxWith(t)
			if tc.auth != "" {
				ctx = ctxWith(t, "authorization", tc.auth)
			}
			var tr metadata.MD
			err := tc.call(ctx, grpc.Trailer(&tr))
			want := codes.Unknown
			if c, ok := wireerr.Lookup(tc.code); ok {
				want = wireerr.HTTPToGRPC(c.HTTP)
			}
			if tc.method != "" {
				var hdr map[string]string
				if tc.auth != "" {
					hdr = map[string]string{"Authorization": tc.auth}
				}
				r := gwtest.DoResponse(t, tc.method, web+tc.path, hdr, tc.body)
				code, _ := httpBody(t, r).values["error"].(string)
				if code != tc.code {
					t.Errorf("HTTP %d %s, want %s", r.Status, code, tc.code)
				}
				want = wireerr.HTTPToGRPC(r.Status)
			}
			wantCallError(t, "gRPC", err, tr, want, tc.code)
		})
	}
}
