package connreq

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// parseOne parses a Raw holding only the one input set by with.
func parseOne(with func(*Raw)) error {
	var r Raw
	with(&r)
	_, err := r.Parse()
	return err
}

// FuzzParse: hostile connect headers (spec 4.1, checks 5–7). Each check
// is judged alone, then together: the inputs parse iff every one parses
// alone, and a refusal carries the code of the first refused check in
// spec order. What is accepted respects every bound: a valid stream name,
// metadata a JSON object of at most 16 KiB that re-encodes to itself, a
// normalized identity that normalizes to itself, at most 100 distinct
// valid filter items taken from the header, a cursor that renders and
// parses back, flags read as `1` or `true`. absent selects inputs left
// out (bit 0 name, 1 metadata, 2 identity, 3 subscribe, 4 resume).
func FuzzParse(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString
	id := "str_0123456789abcdef0123456789"
	f.Add("main", b64([]byte(`{"a":1}`)), b64([]byte(`{"kind":"agent","model":"m"}`)), "a,"+id, "*", "true", uint8(0))
	f.Add("", "", "", "", id+":5, str_0123456789abcdef012345678a:0", "", uint8(0))
	f.Add("bad name", "!!!", "e30", ",,", "x:1", "1", uint8(0))
	f.Add(".x", b64([]byte(`[]`)), b64([]byte(`{"kind":"robot"}`)), strings.Repeat("a,", 101), id+":99999999999999999999", "TRUE", uint8(0))
	f.Add("w", base64.RawURLEncoding.EncodeToString([]byte(`{"k":"é?>"}`)), b64([]byte(`{"kind":"human","client":null}`)), "a, a ,b", "", " 1 ", uint8(16))
	f.Add("", "", "", "", "", "", uint8(31))
	f.Fuzz(func(t *testing.T, name, metadata, identity, subscribe, resume, flag string, absent uint8) {
		opt := func(bit uint8, v *string) *string {
			if absent&(1<<bit) != 0 {
				return nil
			}
			return v
		}
		raw := Raw{StreamName: opt(0, &name), Metadata: opt(1, &metadata), PeerIdentity: opt(2, &identity),
			Subscribe: opt(3, &subscribe), Resume: opt(4, &resume), SelfSubscribe: &flag, Batch: &flag, Observe: &flag}
		req, err := raw.Parse()

		// The checks alone, in spec order.
		checks := []struct {
			code wireerr.Code
			err  error
		}{
			{wireerr.InvalidStreamNameHeader, parseOne(func(r *Raw) { r.StreamName = raw.StreamName })},
			{wireerr.InvalidStreamMetaHeader, parseOne(func(r *Raw) { r.Metadata = raw.Metadata })},
			{wireerr.InvalidPeerIdentityHeader, parseOne(func(r *Raw) { r.PeerIdentity = raw.PeerIdentity })},
			{wireerr.InvalidSubscribeHeader, parseOne(func(r *Raw) { r.Subscribe = raw.Subscribe })},
			{wireerr.InvalidResumeHeader, parseOne(func(r *Raw) { r.Resume = raw.Resume })},
		}
		for _, c := range checks {
			if c.err == nil {
				continue
			}
			if we, ok := wireerr.As(c.err); !ok || we.Code != c.code {
				t.Fatalf("check %s alone failed with %v", c.code.Name, c.err)
			}
			if we, ok := wireerr.As(err); !ok || we.Code != c.code {
				t.Fatalf("first refused check is %s, Parse said %v", c.code.Name, err)
			}
			if we, _ := wireerr.As(err); we.Code.Close != 4400 || we.Code.HTTP != 400 {
				t.Fatalf("code %+v is not a 4400/400 check", we.Code)
			}
			return
		}
		if err != nil {
			t.Fatalf("every check passes alone, Parse said %v", err)
		}

		wantFlag := strings.TrimSpace(flag) == "1" || strings.EqualFold(strings.TrimSpace(flag), "true")
		if req.SelfSubscribe != wantFlag || req.Batch != wantFlag || req.Observe != wantFlag {
			t.Fatalf("flag %q read as %v %v %v", flag, req.SelfSubscribe, req.Batch, req.Observe)
		}
		if !ids.ValidStreamName(req.StreamName) || (raw.StreamName != nil && name != "" && req.StreamName != name) {
			t.Fatalf("stream name %q from %q", req.StreamName, name)
		}

		// Metadata: a JSON object within bounds, "{}" when absent; it
		// re-encodes, in every base64 form, to itself.
		if req.MetadataSet != (raw.Metadata != nil && metadata != "") {
			t.Fatalf("MetadataSet %v for %q", req.MetadataSet, metadata)
		}
		var md map[string]json.RawMessage
		if len(req.Metadata) > MaxMetadata || !utf8.ValidString(req.Metadata) || req.Metadata[0] != '{' ||
			json.Unmarshal([]byte(req.Metadata), &md) != nil || strings.TrimSpace(req.Metadata) != req.Metadata {
			t.Fatalf("metadata %q accepted", req.Metadata)
		}
		if !req.MetadataSet && req.Metadata != "{}" {
			t.Fatalf("absent metadata is %q", req.Metadata)
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if got, ok := decodeObject(enc.EncodeToString([]byte(req.Metadata)), MaxMetadata); !ok || got != req.Metadata {
				t.Fatalf("metadata %q does not re-encode to itself: %q", req.Metadata, got)
			}
		}

		// Identity: {kind, model?, client?} with short strings; it is its
		// own normal form.
		if req.PeerIdentity != "" {
			var pi struct {
				Kind   string  `json:"kind"`
				Model  *string `json:"model"`
				Client *string `json:"client"`
			}
			dec := json.NewDecoder(strings.NewReader(req.PeerIdentity))
			dec.DisallowUnknownFields()
			if dec.Decode(&pi) != nil || (pi.Kind != "agent" && pi.Kind != "human") ||
				(pi.Model != nil && utf8.RuneCountInString(*pi.Model) > MaxIdentityText) ||
				(pi.Client != nil && utf8.RuneCountInString(*pi.Client) > MaxIdentityText) {
				t.Fatalf("identity %q", req.PeerIdentity)
			}
			again, ok := ParsePeerIdentity(base64.StdEncoding.EncodeToString([]byte(req.PeerIdentity)))
			if !ok || again != req.PeerIdentity {
				t.Fatalf("identity %q normalizes to %q", req.PeerIdentity, again)
			}
		} else if raw.PeerIdentity != nil && identity != "" {
			t.Fatalf("identity %q accepted as none", identity)
		}

		// Filter: the header's items, trimmed, deduplicated in order.
		if req.FilterSet != (raw.Subscribe != nil) || len(req.Filter) > MaxCursorItems {
			t.Fatalf("filter %v set %v from %q", req.Filter, req.FilterSet, subscribe)
		}
		if req.FilterSet {
			var want []string
			seen := map[string]bool{}
			if strings.TrimSpace(subscribe) != "" {
				for _, it := range strings.Split(subscribe, ",") {
					if it = strings.TrimSpace(it); !seen[it] {
						seen[it] = true
						want = append(want, it)
					}
				}
			}
			if strings.Join(req.Filter, ",") != strings.Join(want, ",") {
				t.Fatalf("filter %q read as %q", subscribe, req.Filter)
			}
			for _, it := range req.Filter {
				if !ids.ValidStreamID(it) && !ids.ValidStreamName(it) {
					t.Fatalf("filter item %q", it)
				}
			}
		}

		if (req.Cursor != nil) != (raw.Resume != nil) {
			t.Fatalf("cursor %v from %v", req.Cursor, raw.Resume)
		}
		if req.Cursor != nil {
			if again, err := ParseCursor(req.Cursor.String()); err != nil || again.String() != req.Cursor.String() {
				t.Fatalf("cursor %q does not parse back: %v", req.Cursor.String(), err)
			}
		}
	})
}

// cursorPos is one position of spec 5.1, as a reference for ParseCursor.
var cursorPos = regexp.MustCompile(`^str_[0-9a-f]{26}:([0-9]{1,16})$`)

// FuzzParseCursor: a cursor (X-AMS-Resume, resume, SSE Last-Event-ID) is
// accepted exactly when the grammar of spec 5.1 says so: `*`, or 1 to
// 100 distinct stream_id:seq positions, comma-separated with optional
// spaces, each seq at most 16 digits and below 2^53. A parsed cursor keeps
// its positions in order, renders as the SSE id renders the same
// positions, and that rendering parses back to the same cursor.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"*", " * ", "str_0123456789abcdef0123456789:0", "str_0123456789abcdef0123456789:1,str_0123456789abcdef012345678a:2",
		"str_0123456789abcdef0123456789:1, str_0123456789abcdef0123456789:2", "", ",", "x:1", "str_0123456789abcdef0123456789:-1",
		"str_0123456789abcdef0123456789:9007199254740992", "str_0123456789abcdef0123456789:9007199254740991",
		"str_0123456789abcdef0123456789:+1", "str_0123456789ABCDEF0123456789:1", "**", "*,str_0123456789abcdef0123456789:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		// The reference reading.
		want := map[string]uint64{}
		var order []string
		wantOK := true
		trimmed := strings.TrimSpace(v)
		switch {
		case trimmed == "*":
		case trimmed == "":
			wantOK = false
		default:
			parts := strings.Split(trimmed, ",")
			wantOK = len(parts) <= MaxCursorItems
			for _, p := range parts {
				m := cursorPos.FindStringSubmatch(strings.Trim(p, " \t"))
				if m == nil {
					wantOK = false
					break
				}
				id, _, _ := strings.Cut(strings.Trim(p, " \t"), ":")
				n, err := strconv.ParseUint(m[1], 10, 64)
				if _, dup := want[id]; err != nil || n >= 1<<53 || dup {
					wantOK = false
					break
				}
				want[id] = n
				order = append(order, id)
			}
		}

		c, err := ParseCursor(v)
		if err != nil {
			if we, ok := wireerr.As(err); !ok || we.Code != wireerr.InvalidResumeHeader {
				t.Fatalf("error %v, want invalid_resume_header", err)
			}
			if wantOK {
				t.Fatalf("ParseCursor(%q) refused a valid cursor", v)
			}
			return
		}
		if !wantOK {
			t.Fatalf("ParseCursor(%q) accepted %+v", v, c)
		}
		if c.All != (trimmed == "*") {
			t.Fatalf("ParseCursor(%q).All = %v", v, c.All)
		}
		if c.All {
			if len(c.Positions) != 0 || c.String() != "*" {
				t.Fatalf("`*` cursor %+v", c)
			}
			return
		}
		if len(c.Positions) != len(want) || strings.Join(c.Order, ",") != strings.Join(order, ",") {
			t.Fatalf("ParseCursor(%q) = %v in order %v", v, c.Positions, c.Order)
		}
		for id, seq := range want {
			if got, ok := c.Positions[id]; !ok || got != seq {
				t.Fatalf("position %s = %d, want %d", id, got, seq)
			}
		}
		s := c.String()
		if sse := string(frame.AppendCursorValue(nil, c.Positions)); sse != s {
			t.Fatalf("cursor renders %q, the SSE id %q", s, sse)
		}
		again, err := ParseCursor(s)
		if err != nil || again.String() != s || len(again.Positions) != len(c.Positions) {
			t.Fatalf("rendered %q does not parse back: %v", s, err)
		}
		for id, seq := range c.Positions {
			if again.Positions[id] != seq {
				t.Fatalf("round trip changed %s", id)
			}
		}
	})
}

// FuzzFromHTTP: any headers and query of a connect request are read
// without panicking, by the precedence of spec 4.1: the credential from
// an Authorization Bearer value, else from ams.bearer.* offered with
// ams.v1, else from the `bearer` query; ams.bearer.* without ams.v1 is
// flagged; a header wins over its query alias; `t` is the token.
func FuzzFromHTTP(f *testing.F) {
	f.Add("t=tok&stream_name=a&bearer=ams_sk_x", "Bearer ams_sk_y", "ams.v1, ams.bearer.ams_sk_z", "main")
	f.Add("t=%zz", "bearer", "ams.bearer.only", "")
	f.Add("", "Basic x", "", "a")
	f.Add("bearer=q&bearer=r&stream_name=s;x", "BEARER  tok ", ",,ams.v1,,ams.bearer.a,ams.bearer.b", "")
	f.Add("bearer=", "Bearer ", "ams.bearer.", "")
	f.Fuzz(func(t *testing.T, query, authorization, protocols, name string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{RawQuery: query}}
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		if protocols != "" {
			r.Header.Set("Sec-WebSocket-Protocol", protocols)
		}
		if name != "" {
			r.Header.Set("X-AMS-Stream-Name", name)
		}
		raw := FromHTTP(r)

		q, _ := url.ParseQuery(query) // what net/http's Query keeps
		var v1, bearer bool
		var fromProto string
		for _, p := range strings.Split(protocols, ",") {
			switch p = strings.TrimSpace(p); {
			case p == Protocol:
				v1 = true
			case strings.HasPrefix(p, BearerProtocol):
				bearer, fromProto = true, strings.TrimPrefix(p, BearerProtocol)
			}
		}
		var cred string
		var has bool
		switch vs, inQuery := q["bearer"]; {
		case len(authorization) >= 7 && strings.EqualFold(authorization[:7], "bearer "):
			cred, has = strings.TrimSpace(authorization[7:]), true
		case v1 && bearer:
			cred, has = fromProto, true
		case inQuery:
			cred, has = vs[0], true
		}
		if raw.HasCredential != has || raw.Credential != cred {
			t.Fatalf("credential %q (%v), want %q (%v)", raw.Credential, raw.HasCredential, cred, has)
		}
		if raw.BearerWithoutProtocol != (bearer && !v1) {
			t.Fatalf("BearerWithoutProtocol %v", raw.BearerWithoutProtocol)
		}
		if raw.Token != q.Get("t") {
			t.Fatalf("token %q, want %q", raw.Token, q.Get("t"))
		}
		switch vs, inQuery := q["stream_name"]; {
		case name != "":
			if raw.StreamName == nil || *raw.StreamName != name {
				t.Fatalf("stream name %v, want the header's %q", raw.StreamName, name)
			}
		case inQuery:
			if raw.StreamName == nil || *raw.StreamName != vs[0] {
				t.Fatalf("stream name %v, want the query's %q", raw.StreamName, vs[0])
			}
		case raw.StreamName != nil:
			t.Fatalf("stream name %q from nowhere", *raw.StreamName)
		}
		if _, err := raw.Parse(); err != nil {
			if we, ok := wireerr.As(err); !ok || we.Code.Close != 4400 {
				t.Fatalf("Parse error %v", err)
			}
		}
	})
}
