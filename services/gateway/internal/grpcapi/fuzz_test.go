package grpcapi

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// FuzzConnectInputs: any metadata of a Connect call (spec 5.4) is read
// into the WebSocket's connect inputs: the conversation and token from
// x-ams-magic-link, the credential only from a non-empty Authorization
// Bearer value, each x-ams-* value as sent (absent when not sent; gRPC
// has no batch). The checks then refuse them exactly as the WebSocket's
// would, with a 4400 code, never a panic. absent selects keys left out
// (bit 0 link, 1 authorization, 2 name, 3 metadata, 4 resume, 5
// subscribe, 6 flags, 7 identity).
func FuzzConnectInputs(f *testing.F) {
	f.Add("http://h/ns/conversations/room?t=tok", "Bearer ams_sk_x", "main", "e30=", "*", "a,b", "true", uint8(0))
	f.Add("%zz", "bearer", "", "!!", "x", "", "", uint8(0))
	f.Add("http://h/ns/conversations/room/connect?t=", "", "bad name", "", "str_0123456789abcdef0123456789:1", ",", "1", uint8(0))
	f.Add("", "Bearer    ", "", "", "", "", "", uint8(0x80))
	f.Add("  https://h/a/conversations/b/?t=x&t=y  ", "BEARER tok\t", "w", "eyJraW5kIjoiYWdlbnQifQ", "*", "", "TRUE", uint8(0x7f))
	f.Fuzz(func(t *testing.T, link, auth, name, md, resume, subscribe, flag string, absent uint8) {
		pairs := metadata.MD{}
		set := func(bit uint8, k, v string) {
			if absent&(1<<bit) == 0 {
				pairs.Set(k, v)
			}
		}
		set(0, "x-ams-magic-link", link)
		set(1, "authorization", auth)
		set(2, "x-ams-stream-name", name)
		set(3, "x-ams-stream-metadata", md)
		set(4, "x-ams-resume", resume)
		set(5, "x-ams-subscribe-streams", subscribe)
		set(6, "x-ams-self-subscribe", flag)
		set(6, "x-ams-observe", flag)
		set(6, "x-ams-batch", flag)
		set(7, "x-ams-peer-identity", md)
		ns, alias, raw := connectInputs(pairs)

		wantNS, wantAlias, wantToken := "", "", ""
		if absent&1 == 0 {
			wantNS, wantAlias, wantToken = parseMagicLink(link)
		}
		if ns != wantNS || alias != wantAlias || raw.Token != wantToken {
			t.Fatalf("link %q read as %q %q %q", link, ns, alias, raw.Token)
		}
		if strings.Contains(ns, "/") || strings.Contains(alias, "/") {
			t.Fatalf("link %q: a name holds a slash: %q %q", link, ns, alias)
		}
		wantCred := ""
		if absent&2 == 0 && len(auth) >= 7 && strings.EqualFold(auth[:7], "bearer ") {
			wantCred = strings.TrimSpace(auth[7:])
		}
		if raw.Credential != wantCred || raw.HasCredential != (wantCred != "") || raw.BearerWithoutProtocol {
			t.Fatalf("authorization %q read as %q %v", auth, raw.Credential, raw.HasCredential)
		}
		for _, in := range []struct {
			bit  uint8
			got  *string
			want string
		}{{2, raw.StreamName, name}, {3, raw.Metadata, md}, {4, raw.Resume, resume}, {5, raw.Subscribe, subscribe},
			{6, raw.SelfSubscribe, flag}, {6, raw.Observe, flag}, {7, raw.PeerIdentity, md}} {
			if sent := absent&(1<<in.bit) == 0; (in.got != nil) != sent || (sent && *in.got != in.want) {
				t.Fatalf("input %d read as %v, want %q (sent %v)", in.bit, in.got, in.want, sent)
			}
		}
		if raw.Batch != nil {
			t.Fatal("gRPC read a batch flag")
		}

		// The same values as WebSocket headers parse the same way.
		req, err := raw.Parse()
		h := http.Header{}
		for k, vs := range pairs {
			if k != "x-ams-magic-link" && k != "authorization" {
				h.Set(k, vs[0])
			}
		}
		ws := connreq.FromHTTP(&http.Request{Header: h, URL: &url.URL{}})
		wsReq, wsErr := ws.Parse()
		if err != nil {
			if we, ok := wireerr.As(err); !ok || we.Code.Close != 4400 {
				t.Fatalf("error %v", err)
			}
			if wsErr == nil || wsErr.Error() != err.Error() {
				t.Fatalf("gRPC refused with %v, WebSocket with %v", err, wsErr)
			}
			return
		}
		if wsErr != nil {
			t.Fatalf("gRPC accepted, WebSocket refused with %v", wsErr)
		}
		if raw.StreamName == nil || *raw.StreamName == "" {
			req.StreamName, wsReq.StreamName = "", "" // a random default
		}
		req.Batch = wsReq.Batch // gRPC has no batch
		if !reflect.DeepEqual(req, wsReq) {
			t.Fatalf("gRPC read %+v, WebSocket %+v", req, wsReq)
		}
	})
}
