package linkd_test

import (
	"crypto/ed25519"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/amsrouter/ams/services/internal/grpcmetrics/metricstest"
	"github.com/amsrouter/ams/services/link/linkd"
)

// Issue 7: the admin listener serves /metrics with the gRPC server's
// calls counted by method and code.
func TestAdminMetricsCountGRPCCalls(t *testing.T) {
	t.Parallel()
	s := start(t, linkd.Config{AdminAddr: "127.0.0.1:0", DatabaseURL: sqliteURL(t), SigningKeys: []ed25519.PrivateKey{newKey(t)}}, nil)
	for i := 0; i < 2; i++ {
		if _, err := s.health.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	metricstest.Await(t, "http://"+s.svc.AdminAddr()+"/metrics",
		`ams_grpc_server_handled_total{grpc_code="OK",grpc_method="/grpc.health.v1.Health/Check"} 2`,
		`ams_grpc_server_started_total{grpc_method="/grpc.health.v1.Health/Check"} 2`,
		`process_cpu_seconds_total `,
	)
}
