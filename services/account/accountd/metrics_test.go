package accountd_test

import (
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
)

// Issue 7: the admin listener serves /metrics with the gRPC server's
// calls counted by method and code after real calls; no label value
// carries the namespace or the credential.
func TestAdminMetricsCountGRPCCalls(t *testing.T) {
	t.Parallel()
	r := start(t, "sqlite:"+filepath.Join(t.TempDir(), "account.db"), slog.New(slog.DiscardHandler))
	created, err := r.client.CreateAccount(t.Context(), &accountv1.CreateAccountRequest{Namespace: "metricsns"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.health.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + r.svc.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`ams_grpc_server_handled_total{grpc_code="OK",grpc_method="/ams.account.v1.AccountService/CreateAccount"} 1`,
		`ams_grpc_server_handled_total{grpc_code="OK",grpc_method="/grpc.health.v1.Health/Check"} 1`,
		`ams_grpc_server_handling_seconds_count{grpc_method="/ams.account.v1.AccountService/CreateAccount"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, secret := range []string{"metricsns", created.GetCredential(), created.GetAccount().GetAccountId()} {
		if secret != "" && strings.Contains(body, secret) {
			t.Errorf("/metrics carries %q", secret)
		}
	}
}
