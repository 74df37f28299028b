package mcpe2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// amsBinary builds cmd/ams once per test binary.
var amsBuild struct {
	once      sync.Once
	dir, path string
	err       error
}

func amsBinary(t testing.TB) string {
	t.Helper()
	amsBuild.once.Do(func() {
		amsBuild.dir, amsBuild.err = os.MkdirTemp("", "amsmcpe2e-")
		if amsBuild.err != nil {
			return
		}
		amsBuild.path = filepath.Join(amsBuild.dir, "ams")
		out, err := exec.Command("go", "build", "-o", amsBuild.path, "github.com/amsrouter/ams/services/gateway/cmd/ams").CombinedOutput()
		if err != nil {
			amsBuild.err = fmt.Errorf("go build cmd/ams: %w\n%s", err, out)
		}
	})
	if amsBuild.err != nil {
		t.Fatal(amsBuild.err)
	}
	return amsBuild.path
}

// noteTransport records the AMS notifications a stdio server writes.
type noteTransport struct {
	mcp.Transport
	notes *notes
}

func (t *noteTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &noteConn{Connection: c, notes: t.notes}, nil
}

type noteConn struct {
	mcp.Connection
	notes *notes
}

func (c *noteConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	m, err := c.Connection.Read(ctx)
	if req, ok := m.(*jsonrpc.Request); ok && strings.HasPrefix(req.Method, "notifications/ams/") {
		o := &observer{notes: c.notes}
		data := []byte(`{"method":"` + req.Method + `","params":` + string(req.Params) + `}`)
		o.dispatch(data, "push")
	}
	return m, err
}

// stdioClient runs `ams mcp` with env and connects the SDK client to it
// over its stdin and stdout.
func stdioClient(t *testing.T, env ...string) (*client, *gwtest.LogBuffer) {
	t.Helper()
	cmd := exec.Command(amsBinary(t), "mcp")
	cmd.Env = append(os.Environ(), env...)
	stderr := &gwtest.LogBuffer{}
	cmd.Stderr = stderr
	ns := newNotes()
	tr := &noteTransport{Transport: &mcp.CommandTransport{Command: cmd}, notes: ns}
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpe2e-stdio", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cs, err := c.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect to ams mcp: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() { _ = cs.Close() })
	return &client{t: t, cs: cs, notes: ns}, stderr
}

// TestStdioTwoClientsOnTwoGateways_C86: the stdio server passes the same
// exchange, each process speaking to a different gateway; one creates its
// account from AMS_NAMESPACE.
func TestStdioTwoClientsOnTwoGateways_C86(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 2, "beta")
	a, stderr := stdioClient(t, "AMS_URL="+sys.URL(0), "AMS_NAMESPACE=alpha", "AMS_CREDENTIAL=")
	if !regexp.MustCompile(`credential \(shown once\): ams_sk_[A-Za-z0-9_-]{43}\n`).MatchString(stderr.String()) {
		t.Fatalf("stderr does not show the new credential once: %q", stderr.String())
	}
	b, _ := stdioClient(t, "AMS_URL="+sys.URL(1), "AMS_CREDENTIAL="+creds["beta"], "AMS_NAMESPACE=beta")
	exchange(t, a, b)
}

// TestStdioFeatures_C86: same tools and resources as the gateway; a
// pre-bound stdio session joins without a link.
func TestStdioFeatures_C86(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 1, "acme")
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room","metadata":{"instructions":"Say hi."}}`)
	link := conv["magic_link"].(string)
	c, _ := stdioClient(t, "AMS_URL="+sys.URL(0), "AMS_CREDENTIAL="+creds["acme"], "AMS_MAGIC_LINK="+link)
	ctx := context.Background()
	tools, err := c.cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 6 {
		t.Fatalf("tools %v %v", tools, err)
	}
	if in := c.cs.InitializeResult(); in.ServerInfo.Name != "ams-mcp" || !strings.HasSuffix(in.Instructions, "conversation_id: "+conv["conversation_id"].(string)+"\nSay hi.") {
		t.Fatalf("initialize result %+v", in)
	}
	// Pre-bound: a send without ams_join binds the session (rehydration).
	if r := c.ok("ams_send", map[string]any{"data": "x", "stream_name": "early"}); r["seq"] != json.Number("1") {
		t.Fatalf("first send %v", r)
	}
	j := c.ok("ams_join", map[string]any{"stream_name": "bound"})
	if j["conversation_id"] != conv["conversation_id"] {
		t.Fatalf("joined %v", j)
	}
	peer := connect(t, clientOpts{hosts: hosts(t, sys), noPush: true})
	jp := peer.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "peer"})
	c.notes.waitFor(t, "stream_joined", func(l []note) bool {
		return has(l, "notifications/ams/stream_joined", func(p map[string]any) bool { return p["stream_id"] == jp["stream_id"] })
	})
	res, err := c.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "ams://conversations/" + conv["conversation_id"].(string)})
	if err != nil {
		t.Fatal(err)
	}
	if keys := gwtest.Keys(t, []byte(res.Contents[0].Text)); strings.Join(keys, ",") != "conversation_id,alias,namespace,created_at,metadata,streams" {
		t.Fatalf("resource keys %v", keys)
	}
	res, err = c.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "ams://conversations/" + conv["conversation_id"].(string) + "/peers"})
	if err != nil || !strings.Contains(res.Contents[0].Text, jp["stream_id"].(string)) || strings.Contains(res.Contents[0].Text, j["stream_id"].(string)) {
		t.Fatalf("peers %v %v", res, err)
	}
	// A second stdio session of the account with the same name displaces
	// the first, which does not re-dial.
	d, _ := stdioClient(t, "AMS_URL="+sys.URL(0), "AMS_CREDENTIAL="+creds["acme"], "AMS_MAGIC_LINK="+link)
	d.ok("ams_join", map[string]any{"stream_name": "bound"})
	c.notes.waitFor(t, "closed", func(l []note) bool {
		return has(l, "notifications/ams/closed", func(p map[string]any) bool { return p["reason"] == "stream_displaced" })
	})
	if r := c.fail("ams_send", map[string]any{"data": "x"}, "wire_closed"); r["message"] != "4001 stream_displaced" {
		t.Fatalf("message %v", r["message"])
	}
	d.ok("ams_send", map[string]any{"data": "still mine"})
}
