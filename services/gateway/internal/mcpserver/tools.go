package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Tool names (spec 5.5).
const (
	ToolCreate      = "ams_create_conversation"
	ToolJoin        = "ams_join"
	ToolSend        = "ams_send"
	ToolSetMetadata = "ams_set_metadata"
	ToolLeave       = "ams_leave"
	ToolRecv        = "ams_recv"
)

// Limits of the tools' inputs.
const (
	MaxWaitMS    = 25000
	MaxMaxWaitMS = 30000
)

// ServerName is serverInfo.name.
const ServerName = "ams-mcp"

// Protocol versions (spec 5.5); an unknown one negotiates the newest.
var protocolVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

func negotiate(requested string) string {
	for _, v := range protocolVersions {
		if v == requested {
			return v
		}
	}
	return protocolVersions[0]
}

// toolError is a domain error: a result with isError true and payload
// {"error","message"}.
type toolError struct {
	Code    string
	Message string
}

func (e *toolError) Error() string { return e.Code + ": " + e.Message }

func domainErr(code, msg string) *toolError { return &toolError{Code: code, Message: msg} }

// wireClosed is the error of a wire that ended with a close code.
func wireClosed(code int, reason string) *toolError {
	return &toolError{Code: "wire_closed", Message: itoa(code) + " " + reason}
}

// fromWire maps an error of the stream plane or of a service to a domain
// error: catalogue codes keep their name, close-only codes become
// wire_closed.
func fromWire(err error) *toolError {
	var te *toolError
	if errors.As(err, &te) {
		return te
	}
	if we, ok := wireerr.As(err); ok {
		switch we.Code.Name {
		case wireerr.InvalidMagicLink.Name, wireerr.LinkExpired.Name, wireerr.LinkRevoked.Name,
			wireerr.ConversationNotFound.Name, wireerr.InvalidCredential.Name, wireerr.TokenTooLarge.Name,
			wireerr.InvalidAlias.Name, wireerr.InvalidStreamName.Name, wireerr.UnsupportedIDKind.Name,
			wireerr.InvalidMetadata.Name, wireerr.InvalidStreamMeta.Name, wireerr.InvalidLinkExpiry.Name,
			wireerr.AliasTaken.Name, wireerr.NamespaceMismatch.Name, wireerr.MissingCredential.Name,
			wireerr.RateLimited.Name:
			return domainErr(we.Code.Name, we.Message)
		}
		if we.Code.Close != 0 && we.Code.HTTP != 500 {
			return wireClosed(we.Code.Close, we.Code.Name)
		}
		return domainErr(wireerr.Internal.Name, "internal error")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return domainErr(wireerr.Unavailable.Name, "timed out")
	}
	return domainErr(wireerr.Internal.Name, "internal error")
}

func itoa(v int) string {
	b := make([]byte, 0, 8)
	return string(appendInt(b, v))
}

func appendInt(b []byte, v int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// target is where a call without a live binding may re-join: the
// magic_link and stream_name arguments of send, set_metadata and recv.
type target struct {
	MagicLink  string
	StreamName string
}

// createArgs are ams_create_conversation's inputs, checked as spec 3.4.
type createArgs struct {
	Body map[string]json.RawMessage
}

// joinArgs are ams_join's inputs, checked.
type joinArgs struct {
	MagicLink     string
	StreamName    string // "" if absent
	Metadata      string
	MetadataSet   bool
	SelfSubscribe bool
	PeerIdentity  string // normalized object text, "" if absent
	Filter        []string
	FilterSet     bool
}

// host is one session's operations, implemented by the gateway (hub) and
// by the stdio server (public API). Payloads are JSON objects; errors are
// *toolError (anything else is an internal error).
type host interface {
	CreateConversation(ctx context.Context, a *createArgs) ([]byte, error)
	Join(ctx context.Context, a *joinArgs) ([]byte, error)
	Send(ctx context.Context, data string, t *target) ([]byte, error)
	SetMetadata(ctx context.Context, metadata string, t *target) ([]byte, error)
	Leave(ctx context.Context) ([]byte, error)
	Recv(ctx context.Context, wait time.Duration, t *target) ([]byte, error)
	// Buffer is the session's frame buffer (ride-along takes from it).
	Buffer() *buffer
	// Conversation and Peers answer the resources; ok false when the
	// session does not know the conversation.
	Conversation(ctx context.Context, id string) ([]byte, bool, error)
	Peers(ctx context.Context, id string) ([]byte, bool, error)
}

// notifier writes one notification to the client; ctx routes it (the
// handler's context: the POST answering the call; a detached context: the
// push leg).
type notifier interface {
	Notify(ctx context.Context, method string, params []byte) error
}

// resolver finds the host and notifier of a call's session.
type resolver func(ss *mcp.ServerSession) (host, notifier, bool)

func schema(s string) json.RawMessage { return json.RawMessage(s) }

// Tool definitions: names and inputs exactly as spec 5.5.
var toolDefs = []*mcp.Tool{
	{
		Name:        ToolCreate,
		Description: "Create a conversation owned by your account and get its magic link. Needs a persistent account (Bearer credential).",
		InputSchema: schema(`{"type":"object","properties":{"alias":{"type":"string"},"stream_name":{"type":"string"},"metadata":{"type":"object"},"stream_metadata":{"type":"object"},"link_expires_in":{"type":"integer"}}}`),
	},
	{
		Name:        ToolJoin,
		Description: "Join a conversation with its magic link (not needed on a pre-bound session) and own one stream in it. Returns the joined snapshot: your stream and the live peers.",
		InputSchema: schema(`{"type":"object","properties":{"magic_link":{"type":"string"},"stream_name":{"type":"string"},"stream_metadata":{"type":"object"},"self_subscribe":{"type":"boolean"},"peer_identity":{"type":"object","properties":{"kind":{"type":"string","enum":["agent","human"]},"model":{"type":"string"},"client":{"type":"string"}},"required":["kind"]},"subscribe_streams":{"type":"array","items":{"type":"string"}}}}`),
	},
	{
		Name:        ToolSend,
		Description: "Emit one token (a UTF-8 string of at most 64 KiB) on your stream. Peers get it as notifications/ams/token.",
		InputSchema: schema(`{"type":"object","properties":{"data":{"type":"string"},"magic_link":{"type":"string"},"stream_name":{"type":"string"}},"required":["data"]}`),
	},
	{
		Name:        ToolSetMetadata,
		Description: "Replace your stream's metadata (a JSON object). Peers get notifications/ams/stream_metadata.",
		InputSchema: schema(`{"type":"object","properties":{"metadata":{"type":"object"},"magic_link":{"type":"string"},"stream_name":{"type":"string"}},"required":["metadata"]}`),
	},
	{
		Name:        ToolLeave,
		Description: "Leave the conversation: peers get stream_left. Idempotent.",
		InputSchema: schema(`{"type":"object","properties":{}}`),
	},
	{
		Name:        ToolRecv,
		Description: "Return the buffered frames (tokens, metadata, joins, leaves), waiting up to wait_ms for a first one.",
		InputSchema: schema(`{"type":"object","properties":{"wait_ms":{"type":"integer","minimum":0,"maximum":25000},"max_wait_ms":{"type":"integer","minimum":0,"maximum":30000},"magic_link":{"type":"string"},"stream_name":{"type":"string"}}}`),
	},
}

// addTools registers the six tools on srv.
func addTools(srv *mcp.Server, resolve resolver) {
	for _, def := range toolDefs {
		name := def.Name
		srv.AddTool(def, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h, n, ok := resolve(req.Session)
			if !ok {
				return errorResult(domainErr(wireerr.Internal.Name, "session not found")), nil
			}
			payload, err := runTool(ctx, h, name, req.Params.Arguments)
			switch name {
			case ToolCreate, ToolJoin, ToolSend, ToolSetMetadata:
				rideAlong(ctx, h, n)
			}
			if err != nil {
				return errorResult(fromWire(err)), nil
			}
			return okResult(payload), nil
		})
	}
}

// rideAlong writes up to MaxRideAlong buffered frames as notifications
// ahead of the result, removing them from the buffer.
func rideAlong(ctx context.Context, h host, n notifier) {
	es := h.Buffer().take(MaxRideAlong)
	for i := range es {
		_ = n.Notify(ctx, es[i].method, es[i].params)
	}
	acknowledge(es)
	if p, ok := h.(interface{ afterRideAlong(context.Context) }); ok && len(es) > 0 {
		p.afterRideAlong(ctx)
	}
}

func okResult(payload []byte) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: string(payload)}},
		StructuredContent: json.RawMessage(payload),
	}
}

func errorResult(e *toolError) *mcp.CallToolResult {
	o := jsonw.Begin(nil)
	o.Str("error", e.Code)
	o.Str("message", e.Message)
	payload := o.End()
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: string(payload)}},
		StructuredContent: json.RawMessage(payload),
		IsError:           true,
	}
}

func invalidArgs(msg string) *toolError { return domainErr("invalid_arguments", msg) }

// runTool checks a tool's arguments and runs it.
func runTool(ctx context.Context, h host, name string, raw json.RawMessage) ([]byte, error) {
	args := map[string]json.RawMessage{}
	if t := bytes.TrimSpace(raw); len(t) > 0 && string(t) != "null" {
		if t[0] != '{' || json.Unmarshal(t, &args) != nil {
			return nil, invalidArgs("arguments must be an object")
		}
	}
	switch name {
	case ToolCreate:
		return h.CreateConversation(ctx, &createArgs{Body: args})
	case ToolJoin:
		a, err := parseJoin(args)
		if err != nil {
			return nil, err
		}
		return h.Join(ctx, a)
	case ToolSend:
		data, present, ok := argString(args, "data")
		if !ok || !present {
			return nil, invalidArgs("data must be a string of valid Unicode")
		}
		if len(data) > frame.MaxData {
			return nil, domainErr(wireerr.TokenTooLarge.Name, "data is over 65536 bytes")
		}
		t, err := parseTarget(args)
		if err != nil {
			return nil, err
		}
		return h.Send(ctx, data, t)
	case ToolSetMetadata:
		md, present, ok := argObject(args, "metadata")
		if !ok || !present || !frame.ValidMetadata([]byte(md)) {
			// As a set_metadata frame's metadata: nested at most 255 deep.
			return nil, invalidArgs("metadata must be an object")
		}
		if len(md) > frame.MaxMetadata {
			return nil, domainErr(wireerr.MetadataTooLarge.Name, "metadata is over 16 KiB")
		}
		t, err := parseTarget(args)
		if err != nil {
			return nil, err
		}
		return h.SetMetadata(ctx, md, t)
	case ToolLeave:
		return h.Leave(ctx)
	case ToolRecv:
		wait, waitSet, ok := argInt(args, "wait_ms", 0, MaxWaitMS)
		if !ok {
			return nil, invalidArgs("wait_ms must be an integer from 0 to 25000")
		}
		maxWait, maxSet, ok := argInt(args, "max_wait_ms", 0, MaxMaxWaitMS)
		if !ok {
			return nil, invalidArgs("max_wait_ms must be an integer from 0 to 30000")
		}
		if !waitSet && maxSet {
			wait = min(maxWait, MaxWaitMS)
		}
		t, err := parseTarget(args)
		if err != nil {
			return nil, err
		}
		return h.Recv(ctx, time.Duration(wait)*time.Millisecond, t)
	}
	return nil, invalidArgs("unknown tool")
}

func parseTarget(args map[string]json.RawMessage) (*target, error) {
	link, _, ok := argString(args, "magic_link")
	if !ok {
		return nil, invalidArgs("magic_link must be a string")
	}
	name, _, ok := argString(args, "stream_name")
	if !ok {
		return nil, invalidArgs("stream_name must be a string")
	}
	if name != "" && !ids.ValidStreamName(name) {
		return nil, domainErr(wireerr.InvalidStreamName.Name, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
	}
	return &target{MagicLink: link, StreamName: name}, nil
}

func parseJoin(args map[string]json.RawMessage) (*joinArgs, error) {
	var a joinArgs
	var ok bool
	if a.MagicLink, _, ok = argString(args, "magic_link"); !ok {
		return nil, invalidArgs("magic_link must be a string")
	}
	if a.StreamName, _, ok = argString(args, "stream_name"); !ok {
		return nil, invalidArgs("stream_name must be a string")
	}
	if a.StreamName != "" && !ids.ValidStreamName(a.StreamName) {
		return nil, domainErr(wireerr.InvalidStreamName.Name, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
	}
	md, present, ok := argObject(args, "stream_metadata")
	if !ok || len(md) > connreq.MaxMetadata {
		return nil, invalidArgs("stream_metadata must be an object of at most 16 KiB")
	}
	a.Metadata, a.MetadataSet = md, present
	if !present {
		a.Metadata = "{}"
	}
	if a.SelfSubscribe, _, ok = argBool(args, "self_subscribe"); !ok {
		return nil, invalidArgs("self_subscribe must be a boolean")
	}
	if raw, present := args["peer_identity"]; present && string(raw) != "null" {
		var v map[string]json.RawMessage
		if json.Unmarshal(raw, &v) != nil {
			return nil, invalidArgs(`peer_identity must be {"kind":"agent"|"human","model"?,"client"?}`)
		}
		pi, ok := connreq.NormalizeIdentity(v)
		if !ok {
			return nil, invalidArgs(`peer_identity must be {"kind":"agent"|"human","model"?,"client"?}`)
		}
		a.PeerIdentity = pi
	}
	if raw, present := args["subscribe_streams"]; present && string(raw) != "null" {
		var items []string
		if json.Unmarshal(raw, &items) != nil {
			return nil, invalidArgs("subscribe_streams must be an array of stream ids or names")
		}
		norm, ok := frame.NormalizeFilter(items)
		if !ok {
			return nil, invalidArgs("subscribe_streams must be up to 100 stream ids or names")
		}
		a.Filter, a.FilterSet = norm, true
	}
	return &a, nil
}

// argString reads an optional string: present false when absent or null;
// ok false when of another type or not valid Unicode. It reads the string
// as the frame decoder does, so an unpaired surrogate escape or invalid
// UTF-8, which encoding/json would quietly turn into U+FFFD, is refused as
// over WebSocket and HTTP.
func argString(args map[string]json.RawMessage, k string) (v string, present, ok bool) {
	raw, has := args[k]
	if !has || string(raw) == "null" {
		return "", false, true
	}
	v, ok = frame.DecodeString(raw)
	if !ok {
		return "", true, false
	}
	return v, true, true
}

// argObject reads an optional JSON object of valid UTF-8 (as every other
// transport requires of metadata) and returns its exact text.
func argObject(args map[string]json.RawMessage, k string) (v string, present, ok bool) {
	raw, has := args[k]
	if !has || string(raw) == "null" {
		return "", false, true
	}
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' || !utf8.Valid(t) || !json.Valid(t) {
		return "", true, false
	}
	return string(t), true, true
}

func argBool(args map[string]json.RawMessage, k string) (v, present, ok bool) {
	raw, has := args[k]
	if !has || string(raw) == "null" {
		return false, false, true
	}
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, true, true
	case "false":
		return false, true, true
	}
	return false, true, false
}

// argInt reads an optional integer in [lo, hi].
func argInt(args map[string]json.RawMessage, k string, lo, hi int) (v int, present, ok bool) {
	raw, has := args[k]
	if !has || string(raw) == "null" {
		return 0, false, true
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f != float64(int64(f)) || f < float64(lo) || f > float64(hi) {
		return 0, true, false
	}
	return int(f), true, true
}

var slugRuns = regexp.MustCompile(`[^a-z0-9]+`)

// autoStreamName is the name of a session joining with a peer identity and
// no stream name: slug + "-" + the first 4 hex of
// H("auto-stream-name|" + session id) (spec 5.5).
func autoStreamName(d *ids.Deriver, sessionID, peerIdentity string) string {
	return autoSlug(peerIdentity) + "-" + d.H("auto-stream-name|" + sessionID)[:4]
}

// autoSlug is `client` or `kind` lower-cased, runs of [^a-z0-9] made one
// "-", trimmed of "-", at most 24 characters, "peer" if empty.
func autoSlug(peerIdentity string) string {
	var pi struct {
		Kind   string  `json:"kind"`
		Client *string `json:"client"`
	}
	_ = json.Unmarshal([]byte(peerIdentity), &pi)
	src := pi.Kind
	if pi.Client != nil {
		src = *pi.Client
	}
	slug := slugRuns.ReplaceAllString(strings.ToLower(src), "-")
	slug = strings.Trim(slug, "-")
	if len(slug) > 24 {
		slug = slug[:24]
	}
	if slug == "" {
		slug = "peer"
	}
	return slug
}

// joinedPayload is ams_join's payload: {"ok":true} plus the joined frame
// minus `type`.
func joinedPayload(joined []byte) []byte {
	e, ok := notification(joined)
	if !ok || len(e.params) < 2 {
		return []byte(`{"ok":true}`)
	}
	out := make([]byte, 0, len(e.params)+12)
	out = append(out, `{"ok":true`...)
	if len(e.params) > 2 {
		out = append(out, ',')
		out = append(out, e.params[1:]...)
	} else {
		out = append(out, '}')
	}
	return out
}

// sendPayload is the payload of ams_send and ams_set_metadata.
func sendPayload(ts, streamID string, seq uint64) []byte {
	o := jsonw.Begin(make([]byte, 0, 128))
	o.Bool("ok", true)
	o.Str("ts", ts)
	o.Str("stream_id", streamID)
	o.Uint("seq", seq)
	return o.End()
}

// recvPayload is ams_recv's payload.
func recvPayload(es []entry, dropped int) []byte {
	size := 64
	for i := range es {
		size += es[i].size() + 24
	}
	b := make([]byte, 0, size)
	b = append(b, `{"ok":true,"frames":[`...)
	for i := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"method":`...)
		b = jsonw.AppendString(b, es[i].method)
		b = append(b, `,"params":`...)
		b = append(b, es[i].params...)
		b = append(b, '}')
	}
	b = append(b, `],"truncated":`...)
	if dropped > 0 {
		b = append(b, "true"...)
	} else {
		b = append(b, "false"...)
	}
	b = append(b, `,"dropped":`...)
	b = appendInt(b, dropped)
	return append(b, '}')
}

var okPayload = []byte(`{"ok":true}`)
