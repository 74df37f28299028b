package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiClient speaks the control plane (spec 3) to a gateway.
type apiClient struct {
	http *http.Client
}

func newAPIClient() *apiClient {
	return &apiClient{http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// do sends a JSON request and decodes a JSON answer of status want into
// out. A 429 is retried after its Retry-After (at most 20 times).
func (a *apiClient) do(ctx context.Context, method, u, credential string, body any, want int, out any) error {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if credential != "" {
			req.Header.Set("Authorization", "Bearer "+credential)
		}
		resp, err := a.http.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, redact(u), err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, redact(u), err)
		}
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 20 {
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: %d %.300s", method, redact(u), resp.StatusCode, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s %s: decode: %w", method, redact(u), err)
			}
		}
		return nil
	}
}

// Account is an account the kit created.
type Account struct {
	Namespace, ID, Credential string
}

// CreateAccount creates an account with namespace ns through base.
func (a *apiClient) CreateAccount(ctx context.Context, base, ns string) (Account, error) {
	var r struct {
		AccountID  string `json:"account_id"`
		Credential string `json:"credential"`
	}
	err := a.do(ctx, http.MethodPost, base+"/v1/accounts", "", map[string]string{"namespace": ns}, http.StatusCreated, &r)
	return Account{Namespace: ns, ID: r.AccountID, Credential: r.Credential}, err
}

// Conversation is a conversation the kit minted.
type Conversation struct {
	Namespace, Alias, MagicLink string
}

// Token is the admission token t of the magic link.
func (c Conversation) Token() string {
	u, err := url.Parse(c.MagicLink)
	if err != nil {
		return ""
	}
	return u.Query().Get("t")
}

// Mint mints a conversation named alias in acct's namespace.
func (a *apiClient) Mint(ctx context.Context, base string, acct Account, alias string) (Conversation, error) {
	var r struct {
		Alias     string `json:"alias"`
		MagicLink string `json:"magic_link"`
	}
	err := a.do(ctx, http.MethodPost, base+"/v1/"+acct.Namespace+"/conversations", acct.Credential,
		map[string]string{"alias": alias}, http.StatusCreated, &r)
	return Conversation{Namespace: acct.Namespace, Alias: r.Alias, MagicLink: r.MagicLink}, err
}

// LastSeqs returns the live streams of a conversation by name with their
// last_seq (spec 3.5).
func (a *apiClient) LastSeqs(ctx context.Context, base string, c Conversation) (map[string]int64, error) {
	var r struct {
		Streams []Stream `json:"streams"`
	}
	u := base + "/v1/" + c.Namespace + "/conversations/" + c.Alias + "?t=" + url.QueryEscape(c.Token())
	if err := a.do(ctx, http.MethodGet, u, "", nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	m := make(map[string]int64, len(r.Streams))
	for _, s := range r.Streams {
		m[s.StreamName] = s.LastSeq
	}
	return m, nil
}

// ConnectURL is the WebSocket connect URL of c on the gateway at base.
func (c Conversation) ConnectURL(base string) string {
	return strings.Replace(base, "http://", "ws://", 1) + "/" + c.Namespace + "/conversations/" + c.Alias +
		"/connect?t=" + url.QueryEscape(c.Token())
}

// redact drops the query (it may hold a token) from a URL for messages.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
