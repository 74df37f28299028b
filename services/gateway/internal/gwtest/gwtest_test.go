package gwtest_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }

func TestStartOptions(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: -1})
	if len(sys.Gateways) != 0 {
		t.Fatalf("Gateways: -1 started %d gateways", len(sys.Gateways))
	}
	if strings.Contains(sys.NATSURL, ":4222") || !strings.HasPrefix(sys.NATSURL, "nats://127.0.0.1:") {
		t.Errorf("NATSURL = %q, want 127.0.0.1 on a random port", sys.NATSURL)
	}
	gw := sys.AddGateway(t, func(cfg *gatewayd.Config) { cfg.PublicURL = "https://tweaked.example"; cfg.Name = "tweaked" })
	if gw.Name() != "tweaked" || sys.URL(0) != gw.URL {
		t.Errorf("AddGateway: name %q, url %q", gw.Name(), gw.URL)
	}
	_, cred := sys.CreateAccount(t, 0, "acme")
	m := sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
	if link, _ := m["magic_link"].(string); !strings.HasPrefix(link, "https://tweaked.example/acme/conversations/room?t=") {
		t.Errorf("the config tweak did not apply: magic_link %q", link)
	}
	status, body := gwtest.Do(t, http.MethodGet, gw.URL+"/v1/acme/conversations/room?t="+gwtest.LinkToken(t, m), nil, "")
	if status != http.StatusOK || !strings.Contains(string(body), `"alias":"room"`) {
		t.Errorf("inspect: %d %s", status, body)
	}
	gw.Stop()
	gw.Stop() // idempotent
	if _, err := http.Get(gw.URL + "/healthz"); err == nil {
		t.Errorf("a stopped gateway still answers")
	}
}

func TestGatewayProcess(t *testing.T) {
	t.Parallel()
	logs := &gwtest.LogBuffer{}
	sys := gwtest.Start(t, gwtest.Options{Gateways: -1, Log: logs})
	p := gwtest.StartGatewayProcess(t, sys, "proc-1", "AMS_GATEWAY_PUBLIC_URL=https://proc.example")
	_, cred := sys.CreateAccountAt(t, p.URL, "acme")
	status, body := gwtest.Do(t, http.MethodPost, p.URL+"/v1/acme/conversations", gwtest.Bearer(cred), `{"alias":"room"}`)
	if status != http.StatusCreated || !strings.Contains(string(body), `"magic_link":"https://proc.example/acme/conversations/room?t=`) {
		t.Errorf("mint on the process: %d %s", status, body)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	for _, want := range []string{`"gateway serving"`, `"gateway stopped"`, `"proc-1"`} {
		if !strings.Contains(p.Logs(), want) || !strings.Contains(logs.String(), want) {
			t.Errorf("process logs lack %s", want)
		}
	}
}
