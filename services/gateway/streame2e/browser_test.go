package streame2e

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C49: the browser path authenticates with `ams.v1, ams.bearer.<cred>`,
// the server selects ams.v1 and never echoes the credential; the query
// aliases work; headers win over them; credential precedence is
// Authorization, subprotocol, bearer query.
func TestC49BrowserPath(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	accA, credA := account(t, sys, "alice")
	accB, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	unknown := "ams_sk_" + strings.Repeat("Z", 43)
	u := connectURL(r.link)

	t.Run("subprotocol", func(t *testing.T) {
		for i, protos := range [][]string{
			{"ams.v1", "ams.bearer." + credA},
			{"ams.bearer." + credA, "ams.v1"},
			{"other", "ams.v1", "ams.bearer." + credA},
		} {
			c := dialURL(t, u, dialOpts{protocols: protos, streamName: "p" + string(rune('0'+i))})
			j := c.expect("joined")
			if j["account_id"] != accA {
				t.Errorf("%v: account %v", protos, j["account_id"])
			}
			if got := c.resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != "ams.v1" {
				t.Errorf("%v: selected %q, want ams.v1", protos, got)
			}
			for k, vs := range c.resp.Header {
				for _, v := range vs {
					if strings.Contains(v, credA) || strings.Contains(v, "ams.bearer") {
						t.Errorf("response header %s echoes the credential", k)
					}
				}
			}
			if c.ws.Subprotocol() != "ams.v1" {
				t.Errorf("negotiated %q", c.ws.Subprotocol())
			}
			c.close()
		}
		// ams.v1 with the credential in a header is selected too.
		c := dialURL(t, u, dialOpts{protocols: []string{"ams.v1"}, credential: credA, streamName: "hdr"})
		c.expect("joined")
		if c.ws.Subprotocol() != "ams.v1" {
			t.Errorf("negotiated %q with a header credential", c.ws.Subprotocol())
		}
		c.close()
	})

	t.Run("credential precedence", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			o    dialOpts
			want string // account, or "" for 4002
		}{
			{"header over subprotocol", dialOpts{credential: credB, protocols: []string{"ams.v1", "ams.bearer." + credA}}, accB},
			{"bad header over good subprotocol", dialOpts{credential: unknown, protocols: []string{"ams.v1", "ams.bearer." + credA}}, ""},
			{"subprotocol over query", dialOpts{protocols: []string{"ams.v1", "ams.bearer." + credB}, query: "&bearer=" + credA}, accB},
			{"bad subprotocol over good query", dialOpts{protocols: []string{"ams.v1", "ams.bearer." + unknown}, query: "&bearer=" + credA}, ""},
			{"header over query", dialOpts{credential: credA, query: "&bearer=" + unknown}, accA},
			{"query alone", dialOpts{query: "&bearer=" + credB}, accB},
		} {
			name := "prec-" + strings.ReplaceAll(tc.name, " ", "-")
			t.Run(tc.name, func(t *testing.T) {
				c := dialURL(t, u+tc.o.query, dialOpts{credential: tc.o.credential, protocols: tc.o.protocols, streamName: name})
				if tc.want == "" {
					c.wantClose(codeCred, "invalid_credential")
					return
				}
				if j := c.expect("joined"); j["account_id"] != tc.want {
					t.Errorf("account %v, want %s", j["account_id"], tc.want)
				}
				c.close()
			})
		}
	})

	t.Run("query aliases", func(t *testing.T) {
		peer, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "peer"})
		pi := `{"kind":"human","client":"browser"}`
		md := `{"from":"query"}`
		query := "&bearer=" + q(credA) + "&stream_name=viaquery" +
			"&stream_metadata=" + q(base64.URLEncoding.EncodeToString([]byte(md))) +
			"&self_subscribe=1&subscribe=" + q("viaquery,peer") +
			"&peer_identity=" + q(base64.StdEncoding.EncodeToString([]byte(pi))) +
			"&batch=true&resume=" + q("*")
		c := dialURL(t, u+query, dialOpts{})
		j := c.expectMsg("joined")
		for k, want := range map[string]string{
			"stream_name": `"viaquery"`, "metadata": md, "self_subscribe": "true", "peer_identity": pi,
			"subscription": `["viaquery","peer"]`, "account_id": `"` + accA + `"`,
		} {
			if got := member(t, j.raw, k); got != want {
				t.Errorf("joined %s = %s, want %s", k, got, want)
			}
		}
		c.sendRaw([]byte(`[{"type":"token","data":"batched"}]`)) // batch=true
		c.wantToken("viaquery", "batched", 1)                    // self_subscribe=1
		peer.until("token", wait)
		c.close()
		o := dialURL(t, u+"&observe=1", dialOpts{})
		if j := o.expect("joined"); j["observer"] != true {
			t.Errorf("observe=1: %v", j)
		}
		o.close()
	})

	t.Run("headers win", func(t *testing.T) {
		query := "&stream_name=fromquery&stream_metadata=" + q(b64(`{"q":1}`)) + "&self_subscribe=1&subscribe=q" +
			"&peer_identity=" + q(b64(`{"kind":"agent"}`)) + "&batch=1&observe=1&resume=garbage"
		c := dialURL(t, u+query, dialOpts{credential: credA, header: hdr(
			"X-AMS-Stream-Name", "fromheader",
			"X-AMS-Stream-Metadata", b64(`{"h":1}`),
			"X-AMS-Self-Subscribe", "false",
			"X-AMS-Subscribe-Streams", "h",
			"X-AMS-Peer-Identity", b64(`{"kind":"human"}`),
			"X-AMS-Batch", "0",
			"X-AMS-Observe", "no",
			"X-AMS-Resume", "*",
		)})
		j := c.expectMsg("joined")
		for k, want := range map[string]string{
			"stream_name": `"fromheader"`, "metadata": `{"h":1}`, "self_subscribe": "false",
			"peer_identity": `{"kind":"human"}`, "subscription": `["h"]`,
		} {
			if got := member(t, j.raw, k); got != want {
				t.Errorf("joined %s = %s, want %s", k, got, want)
			}
		}
		if j.m["observer"] != nil {
			t.Errorf("X-AMS-Observe: no lost to observe=1: %s", j.raw)
		}
		c.sendRaw([]byte(`[{"type":"ping"}]`)) // X-AMS-Batch: 0 wins over batch=1
		c.wantCloseAfter(codeBad, "malformed_frame")
		// An empty header still wins over its query alias.
		c = dialURL(t, u+"&stream_name=fromquery&subscribe=q", dialOpts{credential: credA, header: hdr("X-AMS-Stream-Name", "", "X-AMS-Subscribe-Streams", "")})
		j = c.expectMsg("joined")
		if !defaultRe.MatchString(j.m["stream_name"].(string)) || member(t, j.raw, "subscription") != "[]" {
			t.Errorf("empty headers: stream_name %v, subscription %s", j.m["stream_name"], member(t, j.raw, "subscription"))
		}
	})
}
