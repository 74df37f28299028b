package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// credentialAnywhereRe finds credential-shaped strings (2.1) inside a text.
var credentialAnywhereRe = regexp.MustCompile(`ams_sk_[A-Za-z0-9_-]{43}`)

// credentialWatch checks answers for credentials: every credential-shaped
// string, and the secret of every credential issued or presented so far,
// bare or base64-encoded.
type credentialWatch struct {
	t     *testing.T
	known []string
}

// leaks lists the credentials text carries.
func (w *credentialWatch) leaks(text string) []string {
	found := credentialAnywhereRe.FindAllString(text, -1)
	for _, c := range w.known {
		for _, form := range []string{strings.TrimPrefix(c, "ams_sk_"), base64.StdEncoding.EncodeToString([]byte(c)),
			base64.RawURLEncoding.EncodeToString([]byte(c))} {
			if strings.Contains(text, form) && !slices.Contains(found, c) {
				found = append(found, c)
			}
		}
	}
	return found
}

// text is an HTTP answer as one text: headers, then the body.
func answerText(r *gwtest.Response) string {
	var b strings.Builder
	for k, vs := range r.Header {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ", "))
	}
	b.Write(r.Body)
	return b.String()
}

// none checks an answer has the status (0: any 4xx) and carries no
// credential.
func (w *credentialWatch) none(what string, r *gwtest.Response, status int) *gwtest.Response {
	w.t.Helper()
	if status == 0 && (r.Status < 400 || r.Status > 499) || status != 0 && r.Status != status {
		w.t.Errorf("%s: status %d, want %d: %.300s", what, r.Status, status, r.Body)
	}
	if got := w.leaks(answerText(r)); len(got) > 0 {
		w.t.Errorf("%s: the answer carries credentials %q:\n%.1000s", what, got, answerText(r))
	}
	return r
}

// noneIn checks any text (a stream's output, a gRPC answer) carries no
// credential.
func (w *credentialWatch) noneIn(what, text string) {
	w.t.Helper()
	if got := w.leaks(text); len(got) > 0 {
		w.t.Errorf("%s: carries credentials %q:\n%.1000s", what, got, text)
	}
}

// issued checks the answer of a creation or rotation: exactly one
// credential, new, in its credential field; it returns it.
func (w *credentialWatch) issued(what, text, field string) string {
	w.t.Helper()
	got := w.leaks(text)
	if len(got) != 1 || got[0] != field || !credentialRe.MatchString(field) {
		w.t.Fatalf("%s: credentials %q in the answer, want exactly its credential field %q:\n%.1000s", what, got, field, text)
	}
	if n := strings.Count(text, field); n != 1 {
		w.t.Errorf("%s: the credential appears %d times, want once", what, n)
	}
	for _, c := range w.known {
		if c == field {
			w.t.Fatalf("%s: returned a credential issued before", what)
		}
	}
	w.known = append(w.known, field)
	return field
}

// protoText is a gRPC answer as one text: the message as JSON, header
// and trailer metadata, and the status if it failed.
func protoText(m proto.Message, err error, header, trailer metadata.MD) string {
	var b strings.Builder
	if err == nil {
		js, _ := protojson.Marshal(m)
		b.Write(js)
	} else {
		st := status.Convert(err)
		fmt.Fprintf(&b, "%s %s %v\n", st.Code(), st.Message(), st.Details())
	}
	fmt.Fprintf(&b, "\n%v\n%v", header, trailer)
	return b.String()
}

// C4: the credential is returned by account creation and by rotation
// only: every other answer of the control plane (each route, errors
// included), an SSE stream's output, HTTP emits, the viewer page, the MCP
// tools and resources and the gRPC conversation service, before and after
// a rotation, carries no credential, neither the current one, an old one,
// another account's nor one the request presented; creation and rotation
// answers carry exactly the new credential, never an earlier one.
func TestC4CredentialOnlyFromCreationAndRotation(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	base := sys.URL(0)
	w := &credentialWatch{t: t}
	api, err := grpc.NewClient(sys.Gateways[0].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Close() })
	accounts, convs := amsv1.NewAccountServiceClient(api), amsv1.NewConversationServiceClient(api)
	rpc := func(cred string) (context.Context, []grpc.CallOption, *metadata.MD, *metadata.MD) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		if cred != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cred)
		}
		var h, tr metadata.MD
		return ctx, []grpc.CallOption{grpc.Header(&h), grpc.Trailer(&tr)}, &h, &tr
	}

	// Creation, over HTTP and gRPC.
	r := call(t, post, base+"/v1/accounts", nil, `{"namespace":"acme"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	cred := w.issued("create account", answerText(r), str(t, r.JSON(t), "credential"))
	r = call(t, post, base+"/v1/accounts", nil, `{"namespace":"other"}`)
	other := w.issued("create another account", answerText(r), str(t, r.JSON(t), "credential"))
	ctx, opts, h, tr := rpc("")
	acc, err := accounts.CreateAccount(ctx, &amsv1.CreateAccountRequest{Namespace: "grpc-ns"}, opts...)
	if err != nil {
		t.Fatalf("gRPC create: %v", err)
	}
	w.issued("gRPC create account", protoText(acc, nil, *h, *tr), acc.GetCredential())
	stranger := "ams_sk_" + strings.Repeat("Q", 43) // presented, never issued
	w.known = append(w.known, stranger)

	// Creation failures return nobody's credential.
	w.none("create a taken namespace", call(t, post, base+"/v1/accounts", nil, `{"namespace":"acme"}`), http.StatusConflict)
	w.none("create with a bad namespace", call(t, post, base+"/v1/accounts", bearer(cred), `{"namespace":"Bad"}`), http.StatusBadRequest)
	ctx, opts, h, tr = rpc(cred)
	_, err = accounts.CreateAccount(ctx, &amsv1.CreateAccountRequest{Namespace: "acme"}, opts...)
	if err == nil {
		t.Errorf("gRPC create of a taken namespace succeeded")
	}
	w.noneIn("gRPC create of a taken namespace", protoText(nil, err, *h, *tr))

	// session touches every other route with cred.
	session := func(round, cred string) {
		t.Helper()
		alias := "room-" + round
		v1 := base + "/v1/acme/conversations/" + alias
		r := w.none(round+": mint", call(t, post, base+"/v1/acme/conversations", bearer(cred),
			`{"alias":"`+alias+`","stream_name":"me","metadata":{"m":1},"link_expires_in":600}`), http.StatusCreated)
		m := r.JSON(t)
		link, tok, convID := str(t, m, "magic_link"), gwtest.LinkToken(t, m), str(t, m, "conversation_id")
		w.none(round+": inspect with t", call(t, get, v1+"?t="+tok, nil, ""), http.StatusOK)
		w.none(round+": inspect as owner", call(t, get, v1, bearer(cred), ""), http.StatusOK)
		w.none(round+": inspect with another account's Bearer", call(t, get, v1, bearer(other), ""), 0)
		l := w.none(round+": create link", call(t, post, v1+"/links", bearer(cred), `{"label":"l"}`), http.StatusCreated).JSON(t)
		w.none(round+": list links", call(t, get, v1+"/links", bearer(cred), ""), http.StatusOK)
		w.none(round+": revoke link", call(t, del, v1+"/links/"+str(t, l, "link_id"), bearer(cred), ""), http.StatusOK)
		w.none(round+": list links of another account", call(t, get, v1+"/links", bearer(other), ""), 0)
		w.none(round+": mint in another namespace", call(t, post, base+"/v1/other/conversations", bearer(cred), `{}`), http.StatusForbidden)
		w.none(round+": mint with an unknown credential", call(t, post, base+"/v1/acme/conversations", bearer(stranger), `{}`), http.StatusUnauthorized)
		w.none(round+": mint without credential", call(t, post, base+"/v1/acme/conversations", nil, `{}`), http.StatusUnauthorized)
		w.none(round+": mint a taken alias", call(t, post, base+"/v1/acme/conversations", bearer(cred), `{"alias":"`+alias+`"}`), http.StatusConflict)
		w.none(round+": rotate another namespace", call(t, post, base+"/v1/other/credentials/rotate", bearer(cred), ""), http.StatusForbidden)
		w.none(round+": rotate with an unknown credential", call(t, post, base+"/v1/acme/credentials/rotate", bearer(stranger), ""), http.StatusUnauthorized)
		w.none(round+": rotate without credential", call(t, post, base+"/v1/acme/credentials/rotate", nil, ""), http.StatusUnauthorized)
		for _, p := range []string{"/healthz", "/readyz", "/metrics", "/.well-known/jwks.json"} {
			w.none(round+": GET "+p, call(t, get, base+p, bearer(cred), ""), http.StatusOK)
		}
		w.none(round+": unknown route", call(t, get, base+"/v1/acme", bearer(cred), ""), http.StatusNotFound)
		w.none(round+": preflight", call(t, http.MethodOptions, base+"/v1/accounts",
			map[string]string{"Origin": "https://x.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}, ""), http.StatusNoContent)

		// The stream plane's HTTP side: an SSE stream up to its joined,
		// emits, the viewer page.
		i := strings.Index(link, "?")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, get, link[:i]+"/connect"+link[i:], nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+cred)
		req.Header.Set("X-AMS-Stream-Name", "me")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: SSE connect: %d", round, resp.StatusCode)
		}
		var sse strings.Builder
		for k, vs := range resp.Header {
			fmt.Fprintf(&sse, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		done := make(chan bool, 1)
		go func() {
			joined := false
			for sc.Scan() {
				sse.WriteString(sc.Text() + "\n")
				if sc.Text() == "event: joined" {
					joined = true
				}
				if joined && sc.Text() == "" {
					break
				}
			}
			done <- joined
		}()
		select {
		case joined := <-done:
			if !joined {
				t.Fatalf("%s: SSE ended before joined: %s", round, sse.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no SSE joined within 10 s", round)
		}
		w.noneIn(round+": SSE stream up to joined", sse.String())
		emitURL := link[:i] + "/streams/me/tokens" + link[i:]
		w.none(round+": HTTP emit", call(t, post, emitURL, bearer(cred), `{"data":"x"}`), http.StatusAccepted)
		w.none(round+": HTTP emit with an unknown credential", call(t, post, emitURL, bearer(stranger), `{"data":"x"}`), http.StatusUnauthorized)
		w.none(round+": HTTP set metadata", call(t, http.MethodPut, link[:i]+"/streams/me/metadata"+link[i:], bearer(cred), `{"k":2}`), http.StatusOK)
		w.none(round+": inspect with a live stream", call(t, get, v1, bearer(cred), ""), http.StatusOK)
		w.none(round+": viewer page", call(t, get, link, map[string]string{"Accept": "text/html", "Authorization": "Bearer " + cred}, ""), http.StatusOK)
		w.none(round+": connect without upgrade", call(t, get, link[:i]+"/connect"+link[i:], bearer(cred), ""), http.StatusUpgradeRequired)

		// MCP on /mcp with the Bearer, and on the magic-link route.
		mcpH := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream", "Authorization": "Bearer " + cred}
		initBody := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c4","version":"1"}}}`
		ini := w.none(round+": MCP initialize", call(t, post, base+"/mcp", mcpH, initBody), http.StatusOK)
		mcpH["Mcp-Session-Id"] = ini.Header.Get("Mcp-Session-Id")
		w.none(round+": MCP initialized", call(t, post, base+"/mcp", mcpH, `{"jsonrpc":"2.0","method":"notifications/initialized"}`), http.StatusAccepted)
		for n, c := range []struct{ what, body string }{
			{"tools/list", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`},
			{"ams_create_conversation", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ams_create_conversation","arguments":{"alias":"mcp-` + alias + `"}}}`},
			{"ams_join", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ams_join","arguments":{"magic_link":"` + link + `","stream_name":"mcp"}}}`},
			{"ams_send", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ams_send","arguments":{"data":"y"}}}`},
			{"ams_set_metadata", `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"ams_set_metadata","arguments":{"metadata":{"k":3}}}}`},
			{"ams_recv", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ams_recv","arguments":{"wait_ms":0}}}`},
			{"resources/read", `{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"ams://conversations/` + convID + `"}}`},
			{"ams_leave", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"ams_leave","arguments":{}}}`},
		} {
			r := w.none(round+": MCP "+c.what, call(t, post, base+"/mcp", mcpH, c.body), http.StatusOK)
			if !strings.Contains(string(r.Body), fmt.Sprintf(`"id":%d`, n+2)) || strings.Contains(string(r.Body), `"isError":true`) || strings.Contains(string(r.Body), `"error":{`) {
				t.Errorf("%s: MCP %s did not succeed: %.500s", round, c.what, r.Body)
			}
		}
		w.none(round+": MCP end", call(t, del, base+"/mcp", mcpH, ""), http.StatusNoContent)
		delete(mcpH, "Mcp-Session-Id")
		w.none(round+": MCP initialize on the magic-link route", call(t, post, link, mcpH, initBody), http.StatusOK)

		// gRPC conversation service.
		ctx2, opts, h, tr := rpc(cred)
		mint, err := convs.CreateConversation(ctx2, &amsv1.CreateConversationRequest{Namespace: "acme", Alias: "grpc-" + alias}, opts...)
		if err != nil {
			t.Fatalf("%s: gRPC mint: %v", round, err)
		}
		w.noneIn(round+": gRPC mint", protoText(mint, nil, *h, *tr))
		for _, c := range []struct {
			what string
			do   func(context.Context, ...grpc.CallOption) (proto.Message, error)
			ok   bool
		}{
			{"get", func(ctx context.Context, o ...grpc.CallOption) (proto.Message, error) {
				return convs.GetConversation(ctx, &amsv1.GetConversationRequest{Namespace: "acme", Alias: alias, Token: tok}, o...)
			}, true},
			{"create link", func(ctx context.Context, o ...grpc.CallOption) (proto.Message, error) {
				return convs.CreateLink(ctx, &amsv1.CreateLinkRequest{Namespace: "acme", Alias: alias}, o...)
			}, true},
			{"list links", func(ctx context.Context, o ...grpc.CallOption) (proto.Message, error) {
				return convs.ListLinks(ctx, &amsv1.ListLinksRequest{Namespace: "acme", Alias: alias}, o...)
			}, true},
			{"revoke a link", func(ctx context.Context, o ...grpc.CallOption) (proto.Message, error) {
				return convs.RevokeLink(ctx, &amsv1.RevokeLinkRequest{Namespace: "acme", Alias: "grpc-" + alias, LinkId: mint.GetLinkId()}, o...)
			}, true},
			{"mint in another namespace", func(ctx context.Context, o ...grpc.CallOption) (proto.Message, error) {
				return convs.CreateConversation(ctx, &amsv1.CreateConversationRequest{Namespace: "other"}, o...)
			}, false},
			{"rotate another namespace", func(ctx context.Context, o ...grpc.CallOption) (proto.Message, error) {
				return accounts.RotateCredential(ctx, &amsv1.RotateCredentialRequest{Namespace: "other"}, o...)
			}, false},
		} {
			ctx, opts, h, tr := rpc(cred)
			m, err := c.do(ctx, opts...)
			if (err == nil) != c.ok {
				t.Errorf("%s: gRPC %s: %v, want success %v", round, c.what, err, c.ok)
			}
			w.noneIn(round+": gRPC "+c.what, protoText(m, err, *h, *tr))
		}
	}

	session("before", cred)

	// Rotation returns the new credential, never the old one.
	r = call(t, post, base+"/v1/acme/credentials/rotate", bearer(cred), "")
	if r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	fresh := w.issued("rotate", answerText(r), str(t, r.JSON(t), "credential"))
	w.none("mint with the rotated-out credential", call(t, post, base+"/v1/acme/conversations", bearer(cred), `{}`), http.StatusUnauthorized)
	w.none("rotate with the rotated-out credential", call(t, post, base+"/v1/acme/credentials/rotate", bearer(cred), ""), http.StatusUnauthorized)
	session("after", fresh)

	// Over gRPC too.
	ctx, opts, h, tr = rpc(fresh)
	rot, err := accounts.RotateCredential(ctx, &amsv1.RotateCredentialRequest{Namespace: "acme"}, opts...)
	if err != nil {
		t.Fatalf("gRPC rotate: %v", err)
	}
	newest := w.issued("gRPC rotate", protoText(rot, nil, *h, *tr), rot.GetCredential())
	w.none("inspect after the gRPC rotation", call(t, get, base+"/v1/acme/conversations/room-after", bearer(newest), ""), http.StatusOK)
	ctx, opts, h, tr = rpc(fresh)
	_, err = accounts.RotateCredential(ctx, &amsv1.RotateCredentialRequest{Namespace: "acme"}, opts...)
	if err == nil {
		t.Errorf("gRPC rotate with the rotated-out credential succeeded")
	}
	w.noneIn("gRPC rotate with the rotated-out credential", protoText(nil, err, *h, *tr))
}
