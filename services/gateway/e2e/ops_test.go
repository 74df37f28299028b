package e2e

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// 3.1, C13: a body over 1 MiB is 413 payload_too_large on every route
// that reads one; 1 MiB itself is read.
func TestPayloadTooLarge(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
	// pad makes a JSON object of exactly n bytes around the given members.
	pad := func(members string, n int) string {
		s := `{` + members + `,"pad":""}`
		return `{` + members + `,"pad":"` + strings.Repeat("x", n-len(s)) + `"}`
	}
	const mib = 1 << 20
	u := sys.URL(0) + "/v1/"
	for _, tc := range []struct {
		name, path, members string
		header              map[string]string
	}{
		{"create account", "accounts", `"namespace":"big"`, nil},
		{"mint", "acme/conversations", `"alias":"big"`, bearer(cred)},
		{"create link", "acme/conversations/room/links", `"label":"big"`, bearer(cred)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, post, u+tc.path, tc.header, pad(tc.members, mib+1)), http.StatusRequestEntityTooLarge, "payload_too_large")
			wantError(t, call(t, post, u+tc.path, tc.header, strings.Repeat(" ", 3*mib)), http.StatusRequestEntityTooLarge, "payload_too_large")
			if r := call(t, post, u+tc.path, tc.header, pad(tc.members, mib)); r.Status != http.StatusCreated {
				t.Errorf("a body of exactly 1 MiB: %d %.300s, want 201", r.Status, r.Body)
			}
		})
	}
}

// C20, C13: unknown paths, and known paths with another method, are
// 404 not_found; one trailing slash is accepted on conversation paths only.
func TestC20NotFound(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	m := sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
	link := "/v1/acme/conversations/room/links/" + str(t, m, "link_id")
	tests := []struct{ method, path string }{
		{get, "/"},
		{get, "/nope"},
		{get, "/v1"},
		{get, "/v1/"},
		{get, "/v2/accounts"},
		{post, "/v1/accounts/"},
		{post, "/v1/accounts//"},
		{post, "/V1/accounts"},
		{get, "/v1/accounts"},
		{http.MethodPut, "/v1/accounts"},
		{http.MethodPatch, "/v1/accounts"},
		{"BREW", "/v1/accounts"},
		{post, "/healthz"},
		{http.MethodPut, "/healthz"},
		{get, "/healthz/"},
		{post, "/readyz"},
		{post, "/metrics"},
		{del, "/.well-known/jwks.json"},
		{get, "/.well-known/other.json"},
		{get, "/v1/acme/credentials/rotate"},
		{post, "/v1/acme/credentials/rotate/"},
		{post, "/v1/acme/credentials"},
		{get, "/v1/acme/conversations"},
		{del, "/v1/acme/conversations"},
		{post, "/v1/acme/conversations//"},
		{post, "/v1/acme/conversations/room"},
		{http.MethodPut, "/v1/acme/conversations/room"},
		{del, "/v1/acme/conversations/room"},
		{get, "/v1/acme/conversations/room//"},
		{get, "/v1/acme/conversations/room/extra"},
		{http.MethodPut, "/v1/acme/conversations/room/links"},
		{del, "/v1/acme/conversations/room/links"},
		{get, link},
		{post, link},
		{get, link + "/more"},
		{get, "/v1//conversations/room"},
		{get, "/acme"},
		{get, "/acme/conversations"},
		{post, "/acme/chats/room"},
		{get, "/mcp/"},
		{get, "/mcpx"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			wantError(t, call(t, tc.method, sys.URL(0)+tc.path, bearer(cred), ""), http.StatusNotFound, "not_found")
		})
	}
	// One trailing slash is fine on conversation paths.
	if r := call(t, post, sys.URL(0)+"/v1/acme/conversations/", bearer(cred), `{"alias":"slash"}`); r.Status != http.StatusCreated {
		t.Errorf("mint with trailing slash: %d %s", r.Status, r.Body)
	}
	for _, p := range []string{"/v1/acme/conversations/slash/", "/v1/acme/conversations/slash/links/"} {
		if r := call(t, get, sys.URL(0)+p, bearer(cred), ""); r.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, r.Status, r.Body)
		}
	}
}

// C20: a preflight on any route answers 204 with the CORS headers of
// 3.1, allowing every header it asked for; other answers carry them too.
func TestC20CORS(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
	wantCORS := func(t *testing.T, h http.Header) {
		t.Helper()
		for k, v := range map[string]string{
			"Access-Control-Allow-Origin":   "*",
			"Access-Control-Allow-Methods":  "GET, HEAD, POST, PUT, DELETE, OPTIONS",
			"Access-Control-Expose-Headers": "mcp-session-id",
			"Access-Control-Max-Age":        "86400",
		} {
			if got := h.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	}
	asked := []string{"authorization", "content-type", "x-ams-stream-name", "mcp-session-id"}
	for _, path := range []string{"/v1/accounts", "/v1/acme/conversations", "/v1/acme/conversations/room",
		"/v1/acme/conversations/room/links", "/v1/acme/credentials/rotate", "/healthz", "/readyz", "/metrics",
		"/.well-known/jwks.json", "/acme/conversations/room/connect"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			r := call(t, http.MethodOptions, sys.URL(0)+path, map[string]string{
				"Origin":                         "https://app.example",
				"Access-Control-Request-Method":  "POST",
				"Access-Control-Request-Headers": strings.Join(asked, ", "),
			}, "")
			if r.Status != http.StatusNoContent || len(r.Body) != 0 {
				t.Errorf("preflight: %d %q, want 204 without a body", r.Status, r.Body)
			}
			wantCORS(t, r.Header)
			var allowed []string
			for _, h := range strings.Split(r.Header.Get("Access-Control-Allow-Headers"), ",") {
				allowed = append(allowed, strings.ToLower(strings.TrimSpace(h)))
			}
			for _, h := range asked {
				if !slices.Contains(allowed, h) {
					t.Errorf("Access-Control-Allow-Headers = %q lacks %s", r.Header.Get("Access-Control-Allow-Headers"), h)
				}
			}
		})
	}
	t.Run("on answers", func(t *testing.T) {
		wantCORS(t, call(t, post, sys.URL(0)+"/v1/accounts", nil, `{"namespace":"cors"}`).Header)
		wantCORS(t, call(t, get, sys.URL(0)+"/nope", nil, "").Header)
		wantCORS(t, call(t, get, sys.URL(0)+"/v1/acme/conversations/room", bearer(cred), "").Header)
	})
}

// C18: /healthz answers 200 {ok,host,ts} whatever the dependencies;
// /readyz is 200 with every check ok, then 503 naming each dependency
// that went down; calls needing a dead service answer 503 unavailable.
func TestC18HealthAndReadiness(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	base := sys.URL(0)
	healthy := func(t *testing.T) {
		t.Helper()
		r := call(t, get, base+"/healthz", map[string]string{"Host": "ams.example:8443"}, "")
		if r.Status != http.StatusOK {
			t.Fatalf("healthz: %d %s", r.Status, r.Body)
		}
		wantKeys(t, r.Body, "ok", "host", "ts")
		m := r.JSON(t)
		if m["ok"] != true || m["host"] != "ams.example:8443" {
			t.Errorf("healthz = %s", r.Body)
		}
		wantRecent(t, "ts", str(t, m, "ts"))
		r = call(t, http.MethodHead, base+"/healthz", nil, "")
		if r.Status != http.StatusOK || len(r.Body) != 0 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("HEAD healthz: %d %q %q", r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		if r := call(t, http.MethodOptions, base+"/healthz", nil, ""); r.Status != http.StatusNoContent {
			t.Errorf("OPTIONS healthz: %d", r.Status)
		}
	}
	readiness := func() (int, map[string]any) {
		r := call(t, get, base+"/readyz", nil, "")
		wantKeys(t, r.Body, "ok", "checks")
		m := r.JSON(t)
		checks, _ := m["checks"].(map[string]any)
		if (r.Status == http.StatusOK) != (m["ok"] == true) {
			t.Errorf("readyz: status %d with ok %v", r.Status, m["ok"])
		}
		return r.Status, checks
	}
	wantChecks := func(t *testing.T, checks map[string]any, down ...string) {
		t.Helper()
		for _, name := range []string{"nats", "account_service", "link_service"} {
			v, ok := checks[name].(string)
			switch {
			case !ok:
				t.Errorf("readyz checks lack %s: %v", name, checks)
			case slices.Contains(down, name) && v == "ok":
				t.Errorf("check %s = ok with it down", name)
			case !slices.Contains(down, name) && v != "ok":
				t.Errorf("check %s = %q, want ok", name, v)
			}
		}
	}

	healthy(t)
	status, checks := readiness()
	if status != http.StatusOK {
		t.Fatalf("readyz with everything up: %d %v", status, checks)
	}
	wantChecks(t, checks)
	_, cred := sys.CreateAccount(t, 0, "acme")
	m := sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)

	t.Run("account service down", func(t *testing.T) {
		sys.StopAccount()
		eventually(t, 10*time.Second, "readyz 503", func() bool { s, _ := readiness(); return s == http.StatusServiceUnavailable })
		_, checks := readiness()
		wantChecks(t, checks, "account_service")
		healthy(t)
		wantError(t, call(t, post, base+"/v1/accounts", nil, `{"namespace":"late"}`), http.StatusServiceUnavailable, "unavailable")
		wantError(t, call(t, post, base+"/v1/acme/conversations", bearer("ams_sk_"+strings.Repeat("E", 43)), ``), http.StatusServiceUnavailable, "unavailable")
		// Admission needs no account service.
		if r := call(t, get, base+"/v1/acme/conversations/room?t="+gwtest.LinkToken(t, m), nil, ""); r.Status != http.StatusOK {
			t.Errorf("inspect with t, account service down: %d %s", r.Status, r.Body)
		}
	})
	t.Run("link service down", func(t *testing.T) {
		sys.StopLink()
		eventually(t, 10*time.Second, "link_service not ok", func() bool { _, c := readiness(); return c["link_service"] != "ok" })
		_, checks := readiness()
		wantChecks(t, checks, "account_service", "link_service")
		healthy(t)
		wantError(t, call(t, get, base+"/v1/acme/conversations/unseen?t=x", nil, ""), http.StatusServiceUnavailable, "unavailable")
	})
	t.Run("NATS down", func(t *testing.T) {
		sys.StopNATS()
		eventually(t, 10*time.Second, "nats not ok", func() bool { _, c := readiness(); return c["nats"] != "ok" })
		status, checks := readiness()
		if status != http.StatusServiceUnavailable {
			t.Errorf("readyz = %d, want 503", status)
		}
		wantChecks(t, checks, "account_service", "link_service", "nats")
		healthy(t)
	})
}

// Route patterns of spec 3.1: the only values of the route label.
var routeLabels = []string{"/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/v1/accounts",
	"/v1/{ns}/credentials/rotate", "/v1/{ns}/conversations", "/v1/{ns}/conversations/{alias}",
	"/v1/{ns}/conversations/{alias}/links", "/v1/{ns}/conversations/{alias}/links/{link_id}",
	"/{ns}/conversations/{alias}/connect", "/{ns}/conversations/{alias}/streams/{stream_name}/tokens",
	"/{ns}/conversations/{alias}/streams/{stream_name}/metadata", "/mcp", "/{ns}/conversations/{alias}", "other"}

// C19: /metrics is Prometheus text with the 3.8 names, and after traffic
// no label value carries an id, a namespace, an alias, a name or a secret.
func TestC19Metrics(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	base := sys.URL(0)

	// Traffic with distinctive names and every kind of outcome.
	accID, cred := sys.CreateAccount(t, 0, "metricsns")
	m := sys.Mint(t, 0, cred, "metricsns", `{"alias":"metricsalias","stream_name":"MetricsStream","metadata":{"m":"metricsmeta"}}`)
	tok := gwtest.LinkToken(t, m)
	call(t, get, base+"/v1/metricsns/conversations/metricsalias?t="+tok, nil, "")
	call(t, get, base+"/v1/metricsns/conversations/metricsalias?t=metricsbadtoken", nil, "")
	call(t, get, base+"/v1/metricsns/conversations/metricsnowhere", bearer(cred), "")
	lr := call(t, post, base+"/v1/metricsns/conversations/metricsalias/links", bearer(cred), `{"label":"metricslabel"}`).JSON(t)
	call(t, del, base+"/v1/metricsns/conversations/metricsalias/links/"+str(t, lr, "link_id"), bearer(cred), "")
	call(t, get, base+"/metricsns/conversations/metricsalias/streams/MetricsStream/tokens", nil, "")
	call(t, post, base+"/metricsns/conversations/metricsalias/streams/MetricsStream/tokens", nil, "")
	call(t, get, base+"/metricsns/metricsunknown/path", nil, "")
	call(t, "METRICSVERB", base+"/v1/accounts", nil, "")
	rot := call(t, post, base+"/v1/metricsns/credentials/rotate", bearer(cred), "").JSON(t)
	call(t, post, base+"/v1/metricsns/conversations", bearer(cred), `{"alias":"Metrics-Bad"}`)

	r := call(t, get, base+"/metrics", nil, "")
	if r.Status != http.StatusOK {
		t.Fatalf("metrics: %d %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "version=0.0.4") {
		t.Errorf("Content-Type = %q, want Prometheus text 0.0.4", ct)
	}
	text := string(r.Body)
	for name, typ := range map[string]string{
		"ams_connections": "gauge", "ams_streams_live": "gauge", "ams_frames_in_total": "counter",
		"ams_frames_out_total": "counter", "ams_closes_total": "counter", "ams_replay_frames_total": "counter",
		"ams_http_requests_total": "counter", "ams_http_request_duration_seconds": "histogram",
	} {
		if !strings.Contains(text, "\n# TYPE "+name+" "+typ+"\n") {
			t.Errorf("metrics lack %s (%s)", name, typ)
		}
	}
	for _, tr := range []string{"ws", "sse", "grpc", "mcp"} {
		if !strings.Contains(text, `ams_connections{transport="`+tr+`"}`) {
			t.Errorf("metrics lack ams_connections{transport=%q}", tr)
		}
	}
	if !regexp.MustCompile(`(?m)^ams_http_requests_total\{method="POST",route="/v1/\{ns\}/conversations",status="201"\} 1$`).MatchString(text) {
		t.Errorf("the mint is not counted under its route pattern")
	}

	forbidden := []string{accID, cred, str(t, rot, "credential"), tok, str(t, m, "conversation_id"), str(t, m, "link_id"),
		str(t, lr, "link_id"), str(t, m, "stream_id"), "metricsns", "metricsalias", "MetricsStream", "metricsmeta",
		"metricslabel", "metricsbadtoken", "metricsnowhere", "metricsunknown", "METRICSVERB", "?", "acc_", "conv_", "lnk_", "str_", "ams_sk_"}
	labelRe := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	samples := 0
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		samples++
		for _, lv := range labelRe.FindAllStringSubmatch(line, -1) {
			name, value := lv[1], lv[2]
			for _, f := range forbidden {
				if strings.Contains(value, f) {
					t.Errorf("label %s=%q carries %q: %s", name, value, f, line)
				}
			}
			if name == "route" && !slices.Contains(routeLabels, value) {
				t.Errorf("route label %q is not a route pattern", value)
			}
			if name == "method" && !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "other"}, value) {
				t.Errorf("method label %q is not a fixed method", value)
			}
		}
	}
	if samples < 50 {
		t.Errorf("only %d samples: the check saw little", samples)
	}
}
