package telemetry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// Off is nil: every method is safe and does nothing, and the HTTP handler
// is the one given, unwrapped.
func TestOffWithoutEndpointCostsNothing(t *testing.T) {
	t.Parallel()
	p, err := New(context.Background(), Config{Protocol: "nonsense"}, "svc", "")
	if err != nil || p != nil {
		t.Fatalf("New without endpoint = %v, %v; want nil, nil", p, err)
	}
	if p.Enabled() || p.Tracer("x") != nil || p.Propagator() != nil || p.ServerOptions() != nil || p.DialOptions() != nil {
		t.Error("a nil provider offers tracing")
	}
	var hh http.Handler = &nopHandler{}
	if got := p.HTTPHandler(hh, "op"); got != hh {
		t.Error("tracing off wrapped the HTTP handler")
	}
	hdr := map[string][]string{}
	if p.Inject(context.Background(), hdr) || len(hdr) != 0 {
		t.Errorf("nil provider injected %v", hdr)
	}
	if _, ok := p.Extract(context.Background(), map[string][]string{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}); ok {
		t.Error("nil provider extracted a span context")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if _, ok := p.TracerProvider().Tracer("x").Start(context.Background(), "s"); ok.IsRecording() {
		t.Error("no-op provider records")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Endpoint: "http://collector:4317", SampleRatio: 0.5}, true},
		{Config{Endpoint: "https://collector:4318", Protocol: ProtocolHTTP, SampleRatio: 1}, true},
		{Config{Endpoint: "collector:4317"}, false},
		{Config{Endpoint: "http://c:4317", Protocol: "thrift"}, false},
		{Config{Endpoint: "http://c:4317", SampleRatio: 1.5}, false},
		{Config{Endpoint: "http://c:4317", SampleRatio: -0.1}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", c.cfg, err, c.ok)
		}
	}
}

// With an endpoint, New builds an exporter that connects lazily: nothing
// listens on the port, yet New and Shutdown return promptly.
func TestOTLPExporterIsLazy(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		p, err := New(context.Background(), Config{Endpoint: "http://127.0.0.1:1", Protocol: proto, SampleRatio: 1}, "svc", "i")
		if err != nil || !p.Enabled() {
			t.Fatalf("%s: New = %v, %v", proto, p, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		_ = p.Shutdown(ctx) // the unsent spans may fail; it must return
		cancel()
		if d := time.Since(start); d >= 5*time.Second {
			t.Errorf("%s: Shutdown took %v", proto, d)
		}
	}
}

// A sampled span's context goes into a NATS-style header map and comes
// back out as the remote parent of the next span, with the same trace id.
func TestInjectExtractRoundTripThroughHeaders(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	p := NewWithExporter(exp, "svc", "a")
	ctx, span := p.Tracer("t").Start(context.Background(), "emit")
	hdr := map[string][]string{"Nats-Msg-Id": {"str_x:1"}}
	if !p.Inject(ctx, hdr) {
		t.Fatal("sampled span not injected")
	}
	span.End()
	rctx, ok := p.Extract(context.Background(), hdr)
	if !ok {
		t.Fatalf("no span context in %v", hdr)
	}
	_, child := p.Tracer("t").Start(rctx, "deliver")
	child.End()
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	if spans[1].SpanContext.TraceID() != spans[0].SpanContext.TraceID() || spans[1].Parent.SpanID() != spans[0].SpanContext.SpanID() {
		t.Errorf("deliver span %v is not a child of emit %v", spans[1].Parent, spans[0].SpanContext)
	}
	if !trace.SpanContextFromContext(rctx).IsRemote() {
		t.Error("extracted span context is not remote")
	}
	// An unsampled context is not injected: nothing travels.
	if p.Inject(context.Background(), map[string][]string{}) {
		t.Error("injected without a span")
	}
}

// The HTTP handler continues a client's trace and leaves health,
// readiness and metrics untraced.
func TestHTTPHandlerTracesRequestsButNotProbes(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	p := NewWithExporter(exp, "svc", "a")
	h := p.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !trace.SpanContextFromContext(r.Context()).IsValid() && r.URL.Path == "/v1/accounts" {
			t.Error("no span in the request context")
		}
	}), "gateway")
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/accounts"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 (probes untraced)", len(spans))
	}
	if got := spans[0].SpanContext.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %s, want the client's", got)
	}
}

// nopHandler is a comparable handler for identity checks.
type nopHandler struct{ _ int }

func (*nopHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// Spans reach an OTLP/HTTP collector at the configured URL (POST
// /v1/traces), here a test server standing in for the collector.
func TestOTLPHTTPExportReachesCollector(t *testing.T) {
	t.Parallel()
	got := make(chan string, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	p, err := New(context.Background(), Config{Endpoint: srv.URL, Protocol: ProtocolHTTP, SampleRatio: 1}, "ams-test", "i")
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer("t").Start(context.Background(), "emit")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	_ = p.Shutdown(ctx)
	select {
	case req := <-got:
		if req != "POST /v1/traces application/x-protobuf" {
			t.Errorf("collector got %q, want POST /v1/traces application/x-protobuf", req)
		}
	case <-ctx.Done():
		t.Fatal("no export reached the collector")
	}
}

type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	got chan string
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.got <- s.GetName()
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// Spans reach an OTLP/gRPC collector (a real gRPC server implementing the
// collector's TraceService) at the configured URL.
func TestOTLPGRPCExportReachesCollector(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{got: make(chan string, 8)}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, c)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	p, err := New(context.Background(), Config{Endpoint: "http://" + lis.Addr().String(), SampleRatio: 1}, "ams-test", "i")
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer("t").Start(context.Background(), "deliver")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	_ = p.Shutdown(ctx)
	select {
	case name := <-c.got:
		if name != "deliver" {
			t.Errorf("collector got span %q, want deliver", name)
		}
	case <-ctx.Done():
		t.Fatal("no export reached the collector")
	}
}
