package mcpserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resource URIs (spec 5.5).
const (
	uriConversationPrefix = "ams://conversations/"
	uriProtocol           = "ams://protocol"
	uriConventions        = "ams://conventions/v1"
)

// baseInstructions open initialize.instructions on every route.
const baseInstructions = `AMS routes token streams between agents. Join a conversation with ams_join (its magic link, unless this server is bound to one), then ams_send tokens and read what the others stream: notifications/ams/* arrive on their own, and ams_recv returns the buffered frames. ams_leave when done.`

// protocolText is the ams://protocol resource.
const protocolText = `# AMS over MCP

A conversation is a set of streams. Each participant owns one stream it
writes and reads every other stream live, never its own unless it joined
with self_subscribe.

Tools:
- ams_create_conversation: mint a conversation (persistent accounts only);
  the result holds its magic_link.
- ams_join: join with a magic_link (pre-bound sessions need none); the
  result lists your stream (stream_id, stream_name, last_seq) and the peers.
- ams_send {data}: emit one token; result {ok, ts, stream_id, seq}.
- ams_set_metadata {metadata}: replace your stream's metadata.
- ams_recv {wait_ms}: the buffered frames as {method, params}; truncated and
  dropped report frames lost to the buffer bound (1000 frames or 1 MiB).
- ams_leave: leave; peers get stream_left.

Notifications: notifications/ams/token, stream_metadata, stream_joined,
stream_left, replay_gap, truncated, closed. Their params are the stream
plane's frames without "type". Deduplicate on (stream_id, seq): the push
leg and ams_recv can carry the same frame.
`

// conventionsText is the ams://conventions/v1 resource (text/uri-list).
const conventionsText = "# AMS conventions v1\r\n" +
	"# Tokens are opaque UTF-8 strings; order holds per stream (seq 1, 2, 3, ...).\r\n" +
	"# Stream metadata is an opaque JSON object, replaced whole by ams_set_metadata.\r\n" +
	"# Conversation metadata may hold \"instructions\" (a string) and \"prompts\" ([{name, description, messages}]).\r\n" +
	"# peer_identity {kind: agent|human, model?, client?} tells who writes a stream.\r\n" +
	uriProtocol + "\r\n"

// serverOptions describe one MCP server: the /mcp server, or the server of
// one conversation's magic-link route.
type serverOptions struct {
	Instructions string
	// Prompts from the conversation's metadata; Bound the pre-bound
	// conversation's id, whose resources are listed.
	Prompts []promptDef
	Bound   string
	Logger  *slog.Logger
}

type promptDef struct {
	Name        string
	Description string
	Messages    json.RawMessage
}

// newServer builds an SDK server with the tools, resources and prompts.
func newServer(o serverOptions, resolve resolver) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: ServerName, Version: "1.0.0"}, &mcp.ServerOptions{
		Instructions:              o.Instructions,
		Logger:                    o.Logger,
		Capabilities:              &mcp.ServerCapabilities{},
		SupportedProtocolVersions: protocolVersions,
	})
	addTools(srv, resolve)
	read := func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return readResource(ctx, req, resolve)
	}
	srv.AddResource(&mcp.Resource{URI: uriProtocol, Name: "protocol", Title: "AMS over MCP", MIMEType: "text/markdown"}, read)
	srv.AddResource(&mcp.Resource{URI: uriConventions, Name: "conventions", Title: "AMS conventions v1", MIMEType: "text/uri-list"}, read)
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: uriConversationPrefix + "{conversation_id}", Name: "conversation",
		Description: "A conversation and its live streams", MIMEType: "application/json"}, read)
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: uriConversationPrefix + "{conversation_id}/peers", Name: "peers",
		Description: "The live streams of a conversation other than yours", MIMEType: "application/json"}, read)
	if o.Bound != "" {
		srv.AddResource(&mcp.Resource{URI: uriConversationPrefix + o.Bound, Name: "conversation", MIMEType: "application/json"}, read)
		srv.AddResource(&mcp.Resource{URI: uriConversationPrefix + o.Bound + "/peers", Name: "peers", MIMEType: "application/json"}, read)
	}
	for _, p := range o.Prompts {
		p := p
		srv.AddPrompt(&mcp.Prompt{Name: p.Name, Description: p.Description}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			res := &mcp.GetPromptResult{Description: p.Description, Messages: []*mcp.PromptMessage{}}
			if len(p.Messages) > 0 {
				var msgs []*mcp.PromptMessage
				if json.Unmarshal(p.Messages, &msgs) == nil {
					res.Messages = msgs
				}
			}
			return res, nil
		})
	}
	return srv
}

func readResource(ctx context.Context, req *mcp.ReadResourceRequest, resolve resolver) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	text := func(mime, s string) *mcp.ReadResourceResult {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: mime, Text: s}}}
	}
	switch uri {
	case uriProtocol:
		return text("text/markdown", protocolText), nil
	case uriConventions:
		return text("text/uri-list", conventionsText), nil
	}
	rest, ok := strings.CutPrefix(uri, uriConversationPrefix)
	if !ok {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	id, peers := strings.CutSuffix(rest, "/peers")
	h, _, ok := resolve(req.Session)
	if !ok || strings.Contains(id, "/") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	var (
		body  []byte
		known bool
		err   error
	)
	if peers {
		body, known, err = h.Peers(ctx, id)
	} else {
		body, known, err = h.Conversation(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	if !known {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	return text("application/json", string(body)), nil
}

// linkServerOptions derives the magic-link route's instructions and
// prompts from a conversation (spec 5.5).
func linkServerOptions(ns, alias, id, metadata string) serverOptions {
	o := serverOptions{Bound: id}
	var md struct {
		Instructions json.RawMessage   `json:"instructions"`
		Prompts      []json.RawMessage `json:"prompts"`
	}
	_ = json.Unmarshal([]byte(metadata), &md)
	var b strings.Builder
	b.WriteString(baseInstructions)
	b.WriteString("\nnamespace: " + ns)
	b.WriteString("\nalias: " + alias)
	b.WriteString("\nconversation_id: " + id)
	var instr string
	if json.Unmarshal(md.Instructions, &instr) == nil && instr != "" {
		b.WriteString("\n")
		b.WriteString(instr)
	}
	o.Instructions = b.String()
	for _, raw := range md.Prompts {
		var p struct {
			Name        json.RawMessage `json:"name"`
			Description json.RawMessage `json:"description"`
			Messages    json.RawMessage `json:"messages"`
		}
		if json.Unmarshal(raw, &p) != nil {
			continue
		}
		var name, desc string
		if json.Unmarshal(p.Name, &name) != nil || name == "" {
			continue
		}
		_ = json.Unmarshal(p.Description, &desc)
		o.Prompts = append(o.Prompts, promptDef{Name: name, Description: desc, Messages: p.Messages})
	}
	return o
}
