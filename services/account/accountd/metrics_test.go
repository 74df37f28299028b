package accountd_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	"github.com/amsrouter/ams/services/internal/grpcmetrics/metricstest"
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
	body := metricstest.Await(t, "http://"+r.svc.AdminAddr()+"/metrics",
		`ams_grpc_server_handled_total{grpc_code="OK",grpc_method="/ams.account.v1.AccountService/CreateAccount"} 1`,
		`ams_grpc_server_handled_total{grpc_code="OK",grpc_method="/grpc.health.v1.Health/Check"} 1`,
		`ams_grpc_server_handling_seconds_count{grpc_method="/ams.account.v1.AccountService/CreateAccount"} 1`,
		`go_goroutines `,
	)
	for _, secret := range []string{"metricsns", created.GetCredential(), created.GetAccount().GetAccountId()} {
		if secret != "" && strings.Contains(body, secret) {
			t.Errorf("/metrics carries %q", secret)
		}
	}
}
