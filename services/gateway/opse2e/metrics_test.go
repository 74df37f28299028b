package opse2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C19: after real traffic (a writer on gateway 0 publishing
// in JetStream mode, a live reader and a resuming reader on gateway 1, a
// ping, a public gRPC call), the counters and the publish-to-deliver
// latency histogram of /metrics moved on both gateways, and no label value
// carries an id, a name, a secret or a payload.
func TestC19MetricsMoveAfterTraffic(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(i int, cfg *gatewayd.Config) {
		if i == 0 {
			cfg.Data.Mode = dataplane.PublishJetStream // store acks to observe
		}
	}})
	accW, credW := sys.CreateAccount(t, 0, "metricswriter")
	accR, credR := sys.CreateAccount(t, 0, "metricsreader")
	r := newRoom(t, sys, credW, "metricswriter", "metricsroom")

	reader := r.dial(t, 1, credR, "reader-stream-name", nil)
	readerJoined := reader.until(`{"type":"joined"`)
	writer := r.dial(t, 0, credW, "writer-stream-name", nil)
	joined := writer.until(`{"type":"joined"`)
	sid := member(t, joined, "stream_id")
	convID := member(t, joined, "conversation_id")
	reader.until(`{"type":"stream_joined"`)

	const n = 20
	secrets := []string{accW, accR, credW, credR, "metricswriter", "metricsreader", "metricsroom",
		"reader-stream-name", "writer-stream-name", "resumer-stream-name", sid, convID,
		member(t, readerJoined, "stream_id"), gwtest.LinkToken(t, r.link)}
	for i := 0; i < n; i++ {
		payload := fmt.Sprintf("payload-%02d-secret", i)
		secrets = append(secrets, payload)
		writer.send(`{"type":"token","data":"` + payload + `"}`)
	}
	writer.send(`{"type":"ping"}`)
	writer.until(`{"type":"pong"`)
	for i := 0; i < n; i++ {
		reader.until(`{"type":"token"`)
	}

	// A reader that resumes from the start replays the n tokens.
	resumer := r.dial(t, 1, credR, "resumer-stream-name", map[string]string{"X-AMS-Resume": sid + ":0"})
	for i := 0; i < n; i++ {
		resumer.until(`{"type":"token"`)
	}

	// One call on the public gRPC API.
	cc, err := grpc.NewClient(sys.Gateways[1].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check on the public gRPC API: %v", err)
	}

	// The emitting gateway: frames in, store acknowledgements, and what it
	// wrote to its own writer.
	eventually(t, func() string {
		m := scrape(t, sys.URL(0))
		for _, msg := range []string{
			expectAtLeast(m, n, "ams_frames_in_total", "type=token"),
			expectAtLeast(m, 1, "ams_frames_in_total", "type=ping"),
			expectAtLeast(m, 1, "ams_frames_out_total", "type=pong"),
			expectAtLeast(m, 1, "ams_frames_out_total", "type=joined"),
			expectAtLeast(m, n, "ams_jetstream_publish_ack_seconds"),
			expectAtLeast(m, 1, "ams_connections", "transport=ws"),
			expectAtLeast(m, 1, "ams_streams_live"),
			expectAtLeast(m, 1, "ams_http_requests_total", "method=POST", "status=201"),
			expectAtLeast(m, 1, "ams_auth_cache_lookups_total", "result=miss"),
			expectAtLeast(m, 1, "ams_grpc_client_handled_total", "grpc_method=/ams.account.v1.AccountService/Authenticate", "grpc_code=OK"),
			expectAtLeast(m, 0, "ams_publish_errors_total", "stage=ack"),
			expectAtLeast(m, 0, "ams_outbound_queue_bytes"),
		} {
			if msg != "" {
				return "gateway 0: " + msg
			}
		}
		return ""
	})

	// The delivering gateway: tokens out, their latency, the resume.
	eventually(t, func() string {
		m := scrape(t, sys.URL(1))
		for _, msg := range []string{
			expectAtLeast(m, 2*n, "ams_frames_out_total", "type=token"),
			expectAtLeast(m, 1, "ams_frames_out_total", "type=stream_joined"),
			expectAtLeast(m, n, "ams_delivery_latency_seconds", "transport=ws"),
			expectAtLeast(m, 2, "ams_connections", "transport=ws"),
			expectAtLeast(m, n, "ams_replay_frames_total"),
			expectAtLeast(m, 1, "ams_resumes_started_total"),
			expectAtLeast(m, 1, "ams_resumes_finished_total", "result=completed"),
			expectAtLeast(m, 1, "ams_presence_watch_lag_seconds"),
			expectAtLeast(m, 1, "ams_grpc_server_handled_total", "grpc_method=/grpc.health.v1.Health/Check", "grpc_code=OK"),
			expectAtLeast(m, 1, "ams_grpc_server_handling_seconds", "grpc_method=/grpc.health.v1.Health/Check"),
		} {
			if msg != "" {
				return "gateway 1: " + msg
			}
		}
		return ""
	})

	// The latency histogram holds real durations: positive, and below the
	// time this test has run.
	m := scrape(t, sys.URL(1))
	for _, mf := range m["ams_delivery_latency_seconds"].GetMetric() {
		h := mf.GetHistogram()
		if h.GetSampleCount() == 0 {
			continue
		}
		if mean := h.GetSampleSum() / float64(h.GetSampleCount()); mean <= 0 || mean > wait.Seconds() {
			t.Errorf("mean delivery latency %vs, want a positive duration under %v", mean, wait)
		}
	}

	// C19: no label value is an id, a name, a secret or a payload.
	for i := range sys.Gateways {
		for name, f := range scrape(t, sys.URL(i)) {
			for _, mt := range f.GetMetric() {
				for _, lp := range mt.GetLabel() {
					for _, s := range secrets {
						if strings.Contains(lp.GetValue(), s) {
							t.Errorf("gateway %d: %s{%s=%q} carries %q", i, name, lp.GetName(), lp.GetValue(), s)
						}
					}
					for _, prefix := range []string{"acc_", "conv_", "str_", "lnk_", "ams_"} {
						if strings.HasPrefix(lp.GetValue(), prefix) {
							t.Errorf("gateway %d: %s{%s=%q} looks like an id", i, name, lp.GetName(), lp.GetValue())
						}
					}
				}
			}
		}
	}

	// Every metric the Grafana dashboard queries is exposed by the gateways
	// after this traffic (the account and link services expose the
	// ams_grpc_server_* families too).
	exposed := map[string]bool{}
	for i := range sys.Gateways {
		for name := range scrape(t, sys.URL(i)) {
			exposed[name] = true
		}
	}
	dash, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "dashboards", "ams.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`\bams_[a-z0-9_]+\b`).FindAllString(string(dash), -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && exposed[b] {
				base = b
			}
		}
		if !exposed[base] {
			t.Errorf("the dashboard queries %s, which no gateway exposes", name)
		}
	}
	resumer.close()
	reader.close()
	writer.close()
}
