// Package connreq reads and checks the inputs of a stream-plane connect
// (spec 4.1, 4.2 checks 5–7, 5.1, 5.2) from HTTP headers and their query
// aliases, so the WebSocket, SSE and gRPC transports apply one set of
// rules.
package connreq

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Subprotocols of the browser path (spec 4.1).
const (
	Protocol       = "ams.v1"
	BearerProtocol = "ams.bearer."
)

// Limits.
const (
	MaxMetadata     = 16 << 10
	MaxIdentityText = 128
	MaxCursorItems  = 100
)

// Raw are the connect inputs as the client sent them. A nil pointer is an
// absent input.
type Raw struct {
	Token string
	// Credential and HasCredential: the Bearer credential, by precedence
	// Authorization header, subprotocol, `bearer` query.
	Credential    string
	HasCredential bool
	// BearerWithoutProtocol: ams.bearer.* offered without ams.v1.
	BearerWithoutProtocol bool
	StreamName            *string
	Metadata              *string
	SelfSubscribe         *string
	Subscribe             *string
	Resume                *string
	PeerIdentity          *string
	Batch                 *string
	Observe               *string
}

// header returns the header value, else the query alias, else nil.
func header(r *http.Request, name, alias string) *string {
	if vs, ok := r.Header[http.CanonicalHeaderKey(name)]; ok && len(vs) > 0 {
		v := vs[0]
		return &v
	}
	if alias != "" {
		if vs, ok := r.URL.Query()[alias]; ok && len(vs) > 0 {
			v := vs[0]
			return &v
		}
	}
	return nil
}

// FromHTTP reads the inputs of a WebSocket or SSE connect.
func FromHTTP(r *http.Request) Raw {
	q := r.URL.Query()
	raw := Raw{
		Token:         q.Get("t"),
		StreamName:    header(r, "X-AMS-Stream-Name", "stream_name"),
		Metadata:      header(r, "X-AMS-Stream-Metadata", "stream_metadata"),
		SelfSubscribe: header(r, "X-AMS-Self-Subscribe", "self_subscribe"),
		Subscribe:     header(r, "X-AMS-Subscribe-Streams", "subscribe"),
		Resume:        header(r, "X-AMS-Resume", "resume"),
		PeerIdentity:  header(r, "X-AMS-Peer-Identity", "peer_identity"),
		Batch:         header(r, "X-AMS-Batch", "batch"),
		Observe:       header(r, "X-AMS-Observe", "observe"),
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) >= 7 && strings.EqualFold(h[:7], "bearer ") {
			raw.Credential, raw.HasCredential = strings.TrimSpace(h[7:]), true
		}
	}
	var v1, bearer bool
	var fromProto string
	for _, p := range Protocols(r) {
		switch {
		case p == Protocol:
			v1 = true
		case strings.HasPrefix(p, BearerProtocol):
			bearer = true
			fromProto = p[len(BearerProtocol):]
		}
	}
	if bearer && !v1 {
		raw.BearerWithoutProtocol = true
	}
	if !raw.HasCredential && bearer && v1 {
		raw.Credential, raw.HasCredential = fromProto, true
	}
	if !raw.HasCredential {
		if vs, ok := q["bearer"]; ok && len(vs) > 0 {
			raw.Credential, raw.HasCredential = vs[0], true
		}
	}
	return raw
}

// Protocols lists the offered WebSocket subprotocols.
func Protocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Flag reads a boolean input: `true` or `1`, case-insensitive.
func Flag(v *string) bool {
	if v == nil {
		return false
	}
	s := strings.TrimSpace(*v)
	return s == "1" || strings.EqualFold(s, "true")
}

// Request is a checked connect request.
type Request struct {
	// StreamName is the requested name, defaulted when absent or empty.
	StreamName string
	// Metadata is the metadata object text; MetadataSet false when absent.
	Metadata    string
	MetadataSet bool
	// PeerIdentity is the normalized identity object text, "" if absent.
	PeerIdentity  string
	SelfSubscribe bool
	Filter        []string
	FilterSet     bool
	Cursor        *Cursor
	Batch         bool
	Observe       bool
}

// Parse applies checks 5–7 of spec 4.2, in order.
func (raw *Raw) Parse() (Request, error) {
	req := Request{
		SelfSubscribe: Flag(raw.SelfSubscribe),
		Batch:         Flag(raw.Batch),
		Observe:       Flag(raw.Observe),
	}
	// 5. Stream name.
	if raw.StreamName != nil && *raw.StreamName != "" {
		if !ids.ValidStreamName(*raw.StreamName) {
			return req, wireerr.New(wireerr.InvalidStreamNameHeader, "stream name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
		}
		req.StreamName = *raw.StreamName
	} else {
		req.StreamName = ids.NewDefaultStreamName()
	}
	// 6. Metadata.
	if raw.Metadata != nil && *raw.Metadata != "" {
		md, ok := decodeObject(*raw.Metadata, MaxMetadata)
		if !ok {
			return req, wireerr.New(wireerr.InvalidStreamMetaHeader, "stream metadata must be base64 of a JSON object of at most 16 KiB")
		}
		req.Metadata, req.MetadataSet = md, true
	} else {
		req.Metadata = "{}"
	}
	// 7. Peer identity, filter, cursor.
	if raw.PeerIdentity != nil && *raw.PeerIdentity != "" {
		pi, ok := ParsePeerIdentity(*raw.PeerIdentity)
		if !ok {
			return req, wireerr.New(wireerr.InvalidPeerIdentityHeader, `peer identity must be base64 of {"kind":"agent"|"human","model"?,"client"?}`)
		}
		req.PeerIdentity = pi
	}
	if raw.Subscribe != nil {
		items, ok := ParseFilter(*raw.Subscribe)
		if !ok {
			return req, wireerr.New(wireerr.InvalidSubscribeHeader, "subscribe streams must be up to 100 stream ids or names")
		}
		req.Filter, req.FilterSet = items, true
	}
	if raw.Resume != nil {
		c, err := ParseCursor(*raw.Resume)
		if err != nil {
			return req, err
		}
		req.Cursor = c
	}
	return req, nil
}

// decodeBase64 accepts standard or URL-safe base64, padding optional.
func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		b, err := base64.RawURLEncoding.DecodeString(s)
		return b, err == nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	return b, err == nil
}

// decodeObject decodes base64 of a UTF-8 JSON object of at most max bytes
// and returns its text unchanged.
func decodeObject(s string, max int) (string, bool) {
	b, ok := decodeBase64(s)
	if !ok || len(b) > max || !utf8.Valid(b) || !json.Valid(b) {
		return "", false
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return "", false
	}
	return string(t), true
}

// ParsePeerIdentity checks a base64 identity and returns it normalized.
func ParsePeerIdentity(s string) (string, bool) {
	b, ok := decodeBase64(s)
	if !ok || len(b) > 4096 {
		return "", false
	}
	var v map[string]json.RawMessage
	if json.Unmarshal(b, &v) != nil {
		return "", false
	}
	return NormalizeIdentity(v)
}

// NormalizeIdentity checks an identity object's members and re-encodes
// {kind, model?, client?}.
func NormalizeIdentity(v map[string]json.RawMessage) (string, bool) {
	str := func(k string) (string, bool, bool) {
		raw, present := v[k]
		if !present || string(raw) == "null" {
			return "", false, true
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || utf8.RuneCountInString(s) > MaxIdentityText {
			return "", true, false
		}
		return s, true, true
	}
	kind, present, ok := str("kind")
	if !ok || !present || (kind != "agent" && kind != "human") {
		return "", false
	}
	model, hasModel, ok1 := str("model")
	client, hasClient, ok2 := str("client")
	if !ok1 || !ok2 {
		return "", false
	}
	out := `{"kind":` + jsonString(kind)
	if hasModel {
		out += `,"model":` + jsonString(model)
	}
	if hasClient {
		out += `,"client":` + jsonString(client)
	}
	return out + "}", true
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ParseFilter reads a subscribe-streams value (spec 5.2): comma-separated,
// trimmed; empty selects no streams.
func ParseFilter(v string) ([]string, bool) {
	items := []string{}
	if strings.TrimSpace(v) != "" {
		for _, it := range strings.Split(v, ",") {
			items = append(items, strings.TrimSpace(it))
		}
	}
	return frame.NormalizeFilter(items)
}
