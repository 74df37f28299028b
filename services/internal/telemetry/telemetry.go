// Package telemetry is the tracing of an AMS service: OpenTelemetry spans
// exported over OTLP when an endpoint is configured, and nothing at all
// otherwise.
//
// A nil *Provider is tracing off, and every method is safe on it: Tracer
// returns a no-op tracer, HTTPHandler returns the handler unchanged, the
// gRPC options are empty, Shutdown does nothing. Code on a hot path checks
// Enabled (or keeps the nil Tracer it was given) and skips its tracing
// work entirely, so an AMS without an OTLP endpoint pays nothing: no span,
// no context, no header.
//
// Traces cross services through W3C trace context: HTTP headers (otelhttp
// on the gateway's public handler), gRPC metadata (otelgrpc stats handlers
// on servers and clients), and the NATS headers of stream events (the
// gateway's hub injects on publish and extracts on delivery).
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/amsrouter/ams/services/internal/config"
)

// Protocols of the OTLP exporter.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// DefaultSampleRatio is the share of new traces sampled by default: every
// token is the root of its own trace, so a busy gateway samples a few.
const DefaultSampleRatio = 0.1

// Config configures tracing.
type Config struct {
	// Endpoint is the OTLP collector URL: http://host:4317 (gRPC) or
	// http://host:4318 (HTTP; the path defaults to /v1/traces). An http
	// scheme exports in plain text, https with TLS. Empty: tracing off.
	Endpoint string
	// Protocol is ProtocolGRPC (the default) or ProtocolHTTP.
	Protocol string
	// SampleRatio is the share of new traces sampled, 0 to 1. A span
	// whose parent came from another service follows the parent's
	// decision.
	SampleRatio float64
}

// RegisterFlags adds -otlp-endpoint, -otlp-protocol and
// -trace-sample-ratio (and their AMS_<SVC>_* variables) to fs.
func RegisterFlags(fs *config.FlagSet, c *Config) {
	fs.String(&c.Endpoint, "otlp-endpoint", "", "OTLP trace collector URL, e.g. http://otel-collector:4317; empty: tracing off")
	fs.String(&c.Protocol, "otlp-protocol", ProtocolGRPC, "OTLP protocol: grpc or http/protobuf")
	fs.Float64(&c.SampleRatio, "trace-sample-ratio", DefaultSampleRatio, "share of new traces sampled, 0 to 1")
}

// Validate reports the first configuration error.
func (c Config) Validate() error {
	switch {
	case c.Endpoint == "":
		return nil
	case c.Protocol != "" && c.Protocol != ProtocolGRPC && c.Protocol != ProtocolHTTP:
		return fmt.Errorf("otlp protocol %q: want %s or %s", c.Protocol, ProtocolGRPC, ProtocolHTTP)
	case c.SampleRatio < 0 || c.SampleRatio > 1:
		return fmt.Errorf("trace sample ratio %v: want 0 to 1", c.SampleRatio)
	case !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://"):
		return fmt.Errorf("otlp endpoint %q: want an http:// or https:// URL", c.Endpoint)
	}
	return nil
}

// Provider is the tracing of one service; nil is tracing off.
type Provider struct {
	sdk  *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
}

// New returns the service's tracing: nil (off) without an endpoint, else
// spans batched to the OTLP exporter. service names the service
// (service.name, e.g. "ams-gateway"); instance the replica
// (service.instance.id). The exporter connects lazily: an unreachable
// collector loses spans, never delays the service.
func New(ctx context.Context, cfg Config, service, instance string) (*Provider, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if cfg.Protocol == ProtocolHTTP {
		endpoint := cfg.Endpoint
		if u, perr := url.Parse(endpoint); perr == nil && (u.Path == "" || u.Path == "/") {
			u.Path = "/v1/traces" // the OTLP/HTTP traces path
			endpoint = u.String()
		}
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	} else {
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	}
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	return newProvider(sdktrace.WithBatcher(exp), sdktrace.TraceIDRatioBased(cfg.SampleRatio), service, instance), nil
}

// NewWithExporter returns tracing that samples every trace and hands each
// span to exp as it ends (tests: tracetest.NewInMemoryExporter).
func NewWithExporter(exp sdktrace.SpanExporter, service, instance string) *Provider {
	return newProvider(sdktrace.WithSyncer(exp), sdktrace.AlwaysSample(), service, instance)
}

func newProvider(export sdktrace.TracerProviderOption, sampler sdktrace.Sampler, service, instance string) *Provider {
	attrs := []attribute.KeyValue{attribute.String("service.name", service)}
	if instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", instance))
	}
	return &Provider{
		sdk: sdktrace.NewTracerProvider(
			export,
			sdktrace.WithSampler(sdktrace.ParentBased(sampler)),
			sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		),
		prop: propagation.TraceContext{},
	}
}

// Enabled reports whether spans are recorded at all.
func (p *Provider) Enabled() bool { return p != nil }

// TracerProvider is the OpenTelemetry provider (a no-op one when off).
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return noop.NewTracerProvider()
	}
	return p.sdk
}

// Tracer returns a named tracer; nil when tracing is off, so that callers
// test one pointer before doing any tracing work.
func (p *Provider) Tracer(name string) trace.Tracer {
	if p == nil {
		return nil
	}
	return p.sdk.Tracer(name)
}

// Propagator is the W3C trace-context propagator (nil when off).
func (p *Provider) Propagator() propagation.TextMapPropagator {
	if p == nil {
		return nil
	}
	return p.prop
}

// Shutdown flushes the spans not yet exported and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// ForceFlush exports the spans ended so far.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// untraced are paths probed by orchestrators and scrapers: no spans.
var untraced = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// HTTPHandler wraps h in a server span per request, continuing a trace
// context the client sent. Health, readiness and metrics requests are not
// traced. Off: h itself.
func (p *Provider) HTTPHandler(h http.Handler, operation string) http.Handler {
	if p == nil {
		return h
	}
	return otelhttp.NewHandler(h, operation,
		otelhttp.WithTracerProvider(p.sdk),
		otelhttp.WithPropagators(p.prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool { return !untraced[r.URL.Path] }),
	)
}

// healthMethod tells gRPC health checks, which are not traced.
func healthMethod(info *stats.RPCTagInfo) bool {
	return !strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.Health/")
}

// ServerOptions trace a gRPC server's calls (none when off).
func (p *Provider) ServerOptions() []grpc.ServerOption {
	if p == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(p.sdk),
		otelgrpc.WithPropagators(p.prop),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(healthMethod),
	))}
}

// DialOptions trace a gRPC client's calls (none when off).
func (p *Provider) DialOptions() []grpc.DialOption {
	if p == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(p.sdk),
		otelgrpc.WithPropagators(p.prop),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(healthMethod),
	))}
}

// Inject writes the trace context of ctx into a header map (HTTP or NATS
// headers: both are map[string][]string) when ctx holds a sampled span.
// It reports whether it wrote anything.
func (p *Provider) Inject(ctx context.Context, header map[string][]string) bool {
	if p == nil || !trace.SpanContextFromContext(ctx).IsSampled() {
		return false
	}
	p.prop.Inject(ctx, propagation.HeaderCarrier(header))
	return true
}

// Extract returns ctx with the remote span context found in header, and
// whether there was a valid one.
func (p *Provider) Extract(ctx context.Context, header map[string][]string) (context.Context, bool) {
	if p == nil || len(header) == 0 {
		return ctx, false
	}
	ctx = p.prop.Extract(ctx, propagation.HeaderCarrier(header))
	return ctx, trace.SpanContextFromContext(ctx).IsValid()
}
