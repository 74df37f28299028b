package grpcmetrics_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/amsrouter/ams/services/internal/grpcmetrics"
	"github.com/amsrouter/ams/services/internal/grpcx"
)

// Real calls over a socket: the server and the client count each call by
// method and final status code (also a status set by an interceptor or a
// missing service), with its duration; a method the server does not have
// mints no label value on the server.
func TestCallsCountedByMethodAndCode(t *testing.T) {
	t.Parallel()
	svc := grpcmetrics.NewService()
	srv, err := grpcx.NewServer("127.0.0.1:0", slog.New(slog.DiscardHandler), svc.Server.ServerOption())
	if err != nil {
		t.Fatal(err)
	}
	srv.Health.SetServingStatus("known", healthpb.HealthCheckResponse_SERVING)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })

	client := grpcmetrics.NewService()
	clientHandler := grpcmetrics.NewClient(client.Registry)
	cc, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()), clientHandler.DialOption())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	for i := 0; i < 3; i++ {
		if _, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: "known"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: "missing"}); status.Code(err) != codes.NotFound {
		t.Fatalf("check of a missing service: %v, want NotFound", err)
	}
	err = cc.Invoke(cctx, "/no.such.Service/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method: %v, want Unimplemented", err)
	}

	const check = "/grpc.health.v1.Health/Check"
	// The server counts a call's end after the client has its reply: wait
	// until the four checks are all counted before reading the figures.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if value(t, svc, "ams_grpc_server_handled_total", []string{"grpc_code", "OK", "grpc_method", check})+
			value(t, svc, "ams_grpc_server_handled_total", []string{"grpc_code", "NotFound", "grpc_method", check}) >= 4 {
			break
		}
	}
	for _, c := range []struct {
		reg  string
		name string
		lv   []string // name, value, … in name order
		want float64
	}{
		{"server", "ams_grpc_server_started_total", []string{"grpc_method", check}, 4},
		{"server", "ams_grpc_server_handled_total", []string{"grpc_code", "OK", "grpc_method", check}, 3},
		{"server", "ams_grpc_server_handled_total", []string{"grpc_code", "NotFound", "grpc_method", check}, 1},
		{"client", "ams_grpc_client_handled_total", []string{"grpc_code", "OK", "grpc_method", check}, 3},
		{"client", "ams_grpc_client_handled_total", []string{"grpc_code", "Unimplemented", "grpc_method", "/no.such.Service/Method"}, 1},
	} {
		h := svc
		if c.reg == "client" {
			h = client
		}
		got := value(t, h, c.name, c.lv)
		if got != c.want {
			t.Errorf("%s %s%v = %v, want %v", c.reg, c.name, c.lv, got, c.want)
		}
	}
	// The server saw nothing of the unknown method.
	fams, _ := svc.Registry.Gather()
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "/no.such.Service/Method" {
					t.Errorf("server %s has label value %q", f.GetName(), l.GetValue())
				}
			}
		}
	}
	if n := testutil.CollectAndCount(svc.Registry, "ams_grpc_server_handling_seconds"); n != 1 {
		t.Errorf("server duration histograms: %d, want 1 (one method)", n)
	}
}

func value(t *testing.T, s *grpcmetrics.Service, name string, lv []string) float64 {
	t.Helper()
	fams, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel())*2 != len(lv) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetName() != lv[2*i] || l.GetValue() != lv[2*i+1] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
