package ams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/amsrouter/ams/pkg/wire"
)

// Client calls the control plane of an AMS deployment over HTTP (spec 3)
// and joins conversations with its credential. Set the fields before the
// first call; a Client is safe for concurrent use afterwards. The zero
// HTTPClient is http.DefaultClient.
//
//	c := &ams.Client{BaseURL: "http://localhost:8080", Namespace: "acme", Credential: cred}
//	conv, err := c.CreateConversation(ctx, ams.ConversationOptions{Alias: "standup"})
type Client struct {
	// BaseURL is the public URL of a gateway: http://localhost:8080.
	BaseURL string
	// Namespace is the account's namespace, needed by every call but
	// CreateAccount and GetConversationByLink.
	Namespace string
	// Credential is the account's bearer credential (ams_sk_…). Keep it
	// out of logs.
	Credential string
	// HTTPClient makes the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// maxResponse bounds the size of a control-plane answer read.
const maxResponse = 8 << 20

// CreateAccount creates a persistent account in a new namespace (spec
// 3.2). The returned Credential is shown only this once: store it.
func (c *Client) CreateAccount(ctx context.Context, namespace string) (*wire.Account, error) {
	var a wire.Account
	err := c.do(ctx, http.MethodPost, "/v1/accounts", false, map[string]string{"namespace": namespace}, &a)
	if err != nil {
		return nil, fmt.Errorf("create account: %w", err)
	}
	return &a, nil
}

// RotateCredential replaces the client's credential (spec 3.3) and
// returns the new one, shown only this once. The old credential stops
// working within seconds; c.Credential is not changed.
func (c *Client) RotateCredential(ctx context.Context) (*wire.Account, error) {
	var a wire.Account
	if err := c.do(ctx, http.MethodPost, c.nsPath("credentials", "rotate"), true, nil, &a); err != nil {
		return nil, fmt.Errorf("rotate credential: %w", err)
	}
	return &a, nil
}

// ConversationOptions are the optional inputs of CreateConversation (spec
// 3.4). The zero value mints a conversation with a random alias.
type ConversationOptions struct {
	// Alias names the conversation in the namespace; "" draws a random one.
	Alias string
	// StreamName is the name the caller means to join with; "" draws a
	// default. The answer's StreamID is that stream's id.
	StreamName string
	// IDKind may only be "uuid" (or "").
	IDKind string
	// Metadata is the conversation's immutable metadata, a JSON object of
	// at most 64 KiB; nil is {}.
	Metadata json.RawMessage
	// StreamMetadata is echoed in the answer (at most 16 KiB); nil is {}.
	StreamMetadata json.RawMessage
	// LinkExpiresIn makes the first link expire (60 s to 365 days, whole
	// seconds); 0 means it never expires.
	LinkExpiresIn time.Duration
}

// CreateConversation mints a conversation and its first magic link (spec
// 3.4).
func (c *Client) CreateConversation(ctx context.Context, o ConversationOptions) (*wire.CreatedConversation, error) {
	// The body is built by hand: encoding/json would compact the metadata,
	// which AMS keeps byte for byte.
	body := objectBuilder{}
	if o.Alias != "" {
		body.str("alias", o.Alias)
	}
	if o.StreamName != "" {
		body.str("stream_name", o.StreamName)
	}
	if o.IDKind != "" {
		body.str("id_kind", o.IDKind)
	}
	if o.Metadata != nil {
		body.raw("metadata", o.Metadata)
	}
	if o.StreamMetadata != nil {
		body.raw("stream_metadata", o.StreamMetadata)
	}
	if o.LinkExpiresIn != 0 {
		body.raw("link_expires_in", []byte(strconv.FormatInt(seconds(o.LinkExpiresIn), 10)))
	}
	var conv wire.CreatedConversation
	if err := c.do(ctx, http.MethodPost, c.nsPath("conversations"), true, json.RawMessage(body.bytes()), &conv); err != nil {
		return nil, fmt.Errorf("create conversation: %w", err)
	}
	return &conv, nil
}

// GetConversation inspects a conversation of the client's namespace as
// its owner (spec 3.5): its metadata and live streams.
func (c *Client) GetConversation(ctx context.Context, alias string) (*wire.Conversation, error) {
	var conv wire.Conversation
	if err := c.do(ctx, http.MethodGet, c.nsPath("conversations", alias), true, nil, &conv); err != nil {
		return nil, fmt.Errorf("get conversation: %w", err)
	}
	return &conv, nil
}

// GetConversationByLink inspects the conversation a magic link names,
// admitted by the link's token (spec 3.5); no credential is needed. The
// request goes to the link's own base URL.
func (c *Client) GetConversationByLink(ctx context.Context, magicLink string) (*wire.Conversation, error) {
	l, err := ParseMagicLink(magicLink)
	if err != nil {
		return nil, fmt.Errorf("get conversation: %w", err)
	}
	var conv wire.Conversation
	if err := c.doURL(ctx, http.MethodGet, l.inspectURL(), false, nil, &conv); err != nil {
		return nil, fmt.Errorf("get conversation: %w", err)
	}
	return &conv, nil
}

// LinkOptions are the optional inputs of CreateLink (spec 3.6).
type LinkOptions struct {
	// ExpiresIn makes the link expire (60 s to 365 days, whole seconds);
	// 0 means never.
	ExpiresIn time.Duration
	// Label names the link for its owner (1 to 64 characters), "" for none.
	Label string
}

// CreateLink issues another magic link for a conversation the client owns.
// Its MagicLink is shown only in this answer.
func (c *Client) CreateLink(ctx context.Context, alias string, o LinkOptions) (*wire.Link, error) {
	body := map[string]any{}
	if o.ExpiresIn != 0 {
		body["expires_in"] = seconds(o.ExpiresIn)
	}
	if o.Label != "" {
		body["label"] = o.Label
	}
	var l wire.Link
	if err := c.do(ctx, http.MethodPost, c.nsPath("conversations", alias, "links"), true, body, &l); err != nil {
		return nil, fmt.Errorf("create link: %w", err)
	}
	return &l, nil
}

// ListLinks lists a conversation's links, oldest first, revoked ones
// included. Listed links carry no MagicLink.
func (c *Client) ListLinks(ctx context.Context, alias string) ([]wire.Link, error) {
	var out struct {
		Links []wire.Link `json:"links"`
	}
	if err := c.do(ctx, http.MethodGet, c.nsPath("conversations", alias, "links"), true, nil, &out); err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return out.Links, nil
}

// RevokeLink revokes a link: it admits nobody from now on and its live
// connections close with 4001 link_revoked. Revoking twice returns the
// first RevokedAt.
func (c *Client) RevokeLink(ctx context.Context, alias, linkID string) (*wire.Link, error) {
	var l wire.Link
	if err := c.do(ctx, http.MethodDelete, c.nsPath("conversations", alias, "links", linkID), true, nil, &l); err != nil {
		return nil, fmt.Errorf("revoke link: %w", err)
	}
	return &l, nil
}

// Join joins the conversation of a magic link with the client's
// credential; see the package-level Join. Options given here win over the
// client's credential and HTTP client.
func (c *Client) Join(ctx context.Context, magicLink string, opts ...JoinOption) (*Session, error) {
	base := []JoinOption{WithCredential(c.Credential)}
	if c.HTTPClient != nil {
		base = append(base, WithHTTPClient(c.HTTPClient))
	}
	return Join(ctx, magicLink, append(base, opts...)...)
}

// objectBuilder writes a JSON object member by member.
type objectBuilder struct{ b []byte }

func (o *objectBuilder) key(k string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = strconv.AppendQuote(o.b, k)
	o.b = append(o.b, ':')
}

func (o *objectBuilder) str(k, v string) {
	o.key(k)
	s, _ := json.Marshal(v)
	o.b = append(o.b, s...)
}

func (o *objectBuilder) raw(k string, v []byte) {
	o.key(k)
	o.b = append(o.b, v...)
}

func (o *objectBuilder) bytes() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// nsPath is /v1/{ns}/parts…, each part escaped.
func (c *Client) nsPath(parts ...string) string {
	var b strings.Builder
	b.WriteString("/v1/")
	b.WriteString(url.PathEscape(c.Namespace))
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

func (c *Client) do(ctx context.Context, method, path string, auth bool, in, out any) error {
	if c.BaseURL == "" {
		return errors.New("ams: Client.BaseURL is not set")
	}
	if auth && c.Namespace == "" {
		return errors.New("ams: Client.Namespace is not set")
	}
	return c.doURL(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, auth, in, out)
}

func (c *Client) doURL(ctx context.Context, method, u string, auth bool, in, out any) error {
	var body io.Reader
	if raw, ok := in.(json.RawMessage); ok {
		body = bytes.NewReader(raw) // sent as is
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if auth {
		if c.Credential == "" {
			return &Error{Status: http.StatusUnauthorized, Code: wire.CodeMissingCredential, Message: "no credential: set Client.Credential"}
		}
		req.Header.Set("Authorization", "Bearer "+c.Credential)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return redactURLError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return httpError(resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// redactURLError drops the URL, which may hold a link token, from the
// errors of net/http.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redact(ue.URL), ue.Err)
	}
	return err
}

// redact returns u without its query.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
