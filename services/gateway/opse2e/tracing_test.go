package opse2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/telemetry"
)

// tracedSystem starts two gateways whose spans go to one in-memory
// exporter; each gateway is its own service instance (gw-0, gw-1).
// tweak, if not nil, adjusts each gateway's config too.
func tracedSystem(t *testing.T, tweak func(*gatewayd.Config)) (*gwtest.System, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Tracing = telemetry.NewWithExporter(exp, "ams-gateway", cfg.Name)
		if tweak != nil {
			tweak(cfg)
		}
	}})
	return sys, exp
}

// instanceOf is the gateway that recorded a span.
func instanceOf(s tracetest.SpanStub) string {
	v, _ := s.Resource.Set().Value(attribute.Key("service.instance.id"))
	return v.AsString()
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// findSpans polls the exporter until match picks spans that satisfy ok.
func findSpans(t *testing.T, exp *tracetest.InMemoryExporter, ok func(tracetest.SpanStubs) string) tracetest.SpanStubs {
	t.Helper()
	var got tracetest.SpanStubs
	eventually(t, func() string {
		got = exp.GetSpans()
		if msg := ok(got); msg != "" {
			names := make([]string, 0, len(got))
			for _, s := range got {
				names = append(names, s.Name+"@"+instanceOf(s))
			}
			return fmt.Sprintf("%s; spans: %s", msg, strings.Join(names, " "))
		}
		return ""
	})
	return got
}

// Issue 7: a token a WebSocket writer emits on gateway 0 and a reader
// receives on gateway 1 makes one trace: the "emit" span on gateway 0 is
// the parent of the "deliver" span on gateway 1, carried by the event's
// NATS headers.
func TestTraceOfOneTokenSpansEmittingAndDeliveringGateways(t *testing.T) {
	t.Parallel()
	sys, exp := tracedSystem(t, nil)
	_, credW := sys.CreateAccount(t, 0, "tracewriter")
	_, credR := sys.CreateAccount(t, 0, "tracereader")
	r := newRoom(t, sys, credW, "tracewriter", "traceroom")
	reader := r.dial(t, 1, credR, "reader", nil)
	reader.until(`{"type":"joined"`)
	writer := r.dial(t, 0, credW, "writer", nil)
	sid := member(t, writer.until(`{"type":"joined"`), "stream_id")
	reader.until(`{"type":"stream_joined"`)

	writer.send(`{"type":"token","data":"traced token"}`)
	reader.until(`{"type":"token"`)

	var emit, deliver tracetest.SpanStub
	findSpans(t, exp, func(spans tracetest.SpanStubs) string {
		emit, deliver = tracetest.SpanStub{}, tracetest.SpanStub{}
		for _, s := range spans {
			if s.Name == "emit" && instanceOf(s) == "gw-0" && attr(s, "ams.stream_id") == sid && attr(s, "ams.seq") == "1" {
				emit = s
			}
		}
		if !emit.SpanContext.IsValid() {
			return "no emit span of seq 1 on gw-0"
		}
		for _, s := range spans {
			if s.Name == "deliver" && instanceOf(s) == "gw-1" && s.SpanContext.TraceID() == emit.SpanContext.TraceID() {
				deliver = s
			}
		}
		if !deliver.SpanContext.IsValid() {
			return "no deliver span on gw-1 in the emit span's trace"
		}
		return ""
	})
	if deliver.Parent.SpanID() != emit.SpanContext.SpanID() || !deliver.Parent.IsRemote() {
		t.Errorf("deliver span's parent = %v (remote %v), want the emit span %v", deliver.Parent.SpanID(), deliver.Parent.IsRemote(), emit.SpanContext.SpanID())
	}
	if emit.SpanKind != trace.SpanKindProducer || deliver.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span kinds emit=%v deliver=%v, want producer and consumer", emit.SpanKind, deliver.SpanKind)
	}
	if got := attr(deliver, "ams.seq"); got != "1" {
		t.Errorf("deliver span ams.seq = %q, want 1", got)
	}
	for _, s := range exp.GetSpans() {
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.Emit(), "traced token") {
				t.Errorf("span %s attribute %s carries the token's data", s.Name, a.Key)
			}
		}
	}
	reader.close()
	writer.close()
}

// Issue 7: an HTTP emit that arrives with a W3C traceparent continues the
// caller's trace through the gateway's HTTP span, the emit span and, over
// NATS, the deliver span on the reader's gateway; the gateway's calls to
// the account service are in the trace too (otelgrpc).
func TestTraceOfHTTPEmitContinuesCallersTraceAcrossGateways(t *testing.T) {
	t.Parallel()
	// No credential cache: the emit authenticates with the account
	// service inside the trace.
	sys, exp := tracedSystem(t, func(cfg *gatewayd.Config) { cfg.AuthCacheTTL = time.Nanosecond })
	_, credW := sys.CreateAccount(t, 0, "httptracewriter")
	_, credR := sys.CreateAccount(t, 0, "httptracereader")
	r := newRoom(t, sys, credW, "httptracewriter", "httptraceroom")
	reader := r.dial(t, 1, credR, "reader", nil)
	reader.until(`{"type":"joined"`)
	writer := r.dial(t, 0, credW, "writer", nil)
	writer.until(`{"type":"joined"`)
	reader.until(`{"type":"stream_joined"`)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	link := r.linkAt(0)
	q := strings.Index(link, "?")
	h := gwtest.Bearer(credW)
	h["traceparent"] = "00-" + traceID + "-00f067aa0ba902b7-01"
	resp := gwtest.DoResponse(t, http.MethodPost, link[:q]+"/streams/writer/tokens"+link[q:], h, `{"data":"over http"}`)
	if resp.Status != http.StatusAccepted {
		t.Fatalf("emit: %d %s", resp.Status, resp.Body)
	}
	reader.until(`{"type":"token"`)

	findSpans(t, exp, func(spans tracetest.SpanStubs) string {
		var server, emit, deliver, auth bool
		for _, s := range spans {
			if s.SpanContext.TraceID().String() != traceID {
				continue
			}
			switch {
			case s.SpanKind == trace.SpanKindServer && instanceOf(s) == "gw-0" && s.Parent.IsRemote():
				server = true
			case s.Name == "emit" && instanceOf(s) == "gw-0":
				emit = true
			case s.Name == "deliver" && instanceOf(s) == "gw-1":
				deliver = true
			case s.SpanKind == trace.SpanKindClient && strings.Contains(s.Name, "AccountService"):
				auth = true
			}
		}
		if !server || !emit || !deliver || !auth {
			return fmt.Sprintf("in trace %s: http server span %v, emit %v, deliver on gw-1 %v, account call %v", traceID, server, emit, deliver, auth)
		}
		return ""
	})
	reader.close()
	writer.close()
}

// Issue 7: a gateway with tracing off (no provider) publishes events
// without a trace context, and a tracing gateway delivering them starts no
// span for them.
func TestUntracedEventsStartNoDeliverSpans(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	// Gateway 1 traces, gateway 0 does not: what gateway 0 emits reaches
	// gateway 1 without a trace context, and gateway 1 starts no span for
	// it.
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(i int, cfg *gatewayd.Config) {
		if i == 1 {
			cfg.Tracing = telemetry.NewWithExporter(exp, "ams-gateway", cfg.Name)
		}
	}})
	_, credW := sys.CreateAccount(t, 0, "untracedwriter")
	_, credR := sys.CreateAccount(t, 0, "untracedreader")
	r := newRoom(t, sys, credW, "untracedwriter", "untracedroom")
	reader := r.dial(t, 1, credR, "reader", nil)
	reader.until(`{"type":"joined"`)
	writer := r.dial(t, 0, credW, "writer", nil)
	writer.until(`{"type":"joined"`)
	reader.until(`{"type":"stream_joined"`)
	for i := 0; i < 5; i++ {
		writer.send(`{"type":"token","data":"x"}`)
	}
	for i := 0; i < 5; i++ {
		reader.until(`{"type":"token"`)
	}
	// A token that gateway 1 itself emits is traced: once its deliver span
	// is recorded, any deliver span of gateway 0's tokens would be too.
	reader.send(`{"type":"token","data":"y"}`)
	writer.until(`{"type":"token"`)
	spans := findSpans(t, exp, func(spans tracetest.SpanStubs) string {
		for _, s := range spans {
			if s.Name == "deliver" && instanceOf(s) == "gw-1" {
				return ""
			}
		}
		return "no deliver span of gateway 1's own token"
	})
	emits := map[trace.TraceID]bool{}
	for _, s := range spans {
		if s.Name == "emit" {
			emits[s.SpanContext.TraceID()] = true
		}
	}
	for _, s := range spans {
		if s.Name == "deliver" && !emits[s.SpanContext.TraceID()] {
			t.Errorf("deliver span in trace %s without an emit span: an untraced event was traced", s.SpanContext.TraceID())
		}
	}
	reader.close()
	writer.close()
}

var _ sdktrace.SpanExporter = (*tracetest.InMemoryExporter)(nil)
