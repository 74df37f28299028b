// Package grpcmetrics counts gRPC calls in Prometheus: a stats handler for
// servers and one for clients, by method and status code, with a latency
// histogram. A stats handler sees the final status of every call, after
// all interceptors (grpcx maps catalogue errors to statuses in one), and
// sees streams as well as unary calls.
//
// Labels are grpc_method and grpc_code (not method and code, which
// other AMS metrics use for HTTP methods and close codes). Label values
// are fixed vocabularies: full method names of the services
// registered and gRPC code names. A server reports no call to a method it
// does not have (gRPC answers it before the stats of a call begin), so
// clients cannot mint label values; a client counts the methods its code
// calls.
package grpcmetrics

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Handler is a grpc stats.Handler that counts calls.
type Handler struct {
	started  *prometheus.CounterVec   // method
	handled  *prometheus.CounterVec   // method, code
	duration *prometheus.HistogramVec // method
}

// Buckets of the call duration histogram, in seconds.
var Buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newHandler(reg prometheus.Registerer, started, handled prometheus.Opts, hist prometheus.HistogramOpts) *Handler {
	h := &Handler{
		started:  prometheus.NewCounterVec(prometheus.CounterOpts(started), []string{"grpc_method"}),
		handled:  prometheus.NewCounterVec(prometheus.CounterOpts(handled), []string{"grpc_method", "grpc_code"}),
		duration: prometheus.NewHistogramVec(hist, []string{"grpc_method"}),
	}
	reg.MustRegister(h.started, h.handled, h.duration)
	return h
}

// NewServer registers the server metrics
// (ams_grpc_server_started_total{grpc_method},
// ams_grpc_server_handled_total{grpc_method,grpc_code},
// ams_grpc_server_handling_seconds{grpc_method}) on reg and returns their
// handler.
func NewServer(reg prometheus.Registerer) *Handler {
	return newHandler(reg,
		prometheus.Opts{Name: "ams_grpc_server_started_total", Help: "gRPC calls started on this server, by full method."},
		prometheus.Opts{Name: "ams_grpc_server_handled_total", Help: "gRPC calls completed on this server, by full method and status code."},
		prometheus.HistogramOpts{Name: "ams_grpc_server_handling_seconds", Help: "Duration of gRPC calls completed on this server, by full method.", Buckets: Buckets})
}

// NewClient registers the client metrics (ams_grpc_client_*: the same
// families for calls this process makes) on reg and returns their handler.
func NewClient(reg prometheus.Registerer) *Handler {
	return newHandler(reg,
		prometheus.Opts{Name: "ams_grpc_client_started_total", Help: "gRPC calls this process started, by full method."},
		prometheus.Opts{Name: "ams_grpc_client_handled_total", Help: "gRPC calls this process completed, by full method and status code."},
		prometheus.HistogramOpts{Name: "ams_grpc_client_handling_seconds", Help: "Duration of gRPC calls this process completed, by full method.", Buckets: Buckets})
}

// ServerOption installs h on a server.
func (h *Handler) ServerOption() grpc.ServerOption { return grpc.StatsHandler(h) }

// DialOption installs h on a client connection.
func (h *Handler) DialOption() grpc.DialOption { return grpc.WithStatsHandler(h) }

type methodKey struct{}

// TagRPC implements stats.Handler.
func (h *Handler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

// HandleRPC implements stats.Handler.
func (h *Handler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	method, _ := ctx.Value(methodKey{}).(string)
	if method == "" {
		return
	}
	switch s := s.(type) {
	case *stats.Begin:
		h.started.WithLabelValues(method).Inc()
	case *stats.End:
		h.handled.WithLabelValues(method, status.Code(s.Error).String()).Inc()
		h.duration.WithLabelValues(method).Observe(s.EndTime.Sub(s.BeginTime).Seconds())
	}
}

// TagConn implements stats.Handler.
func (h *Handler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (h *Handler) HandleConn(context.Context, stats.ConnStats) {}

var _ stats.Handler = (*Handler)(nil)

// Service is the Prometheus registry of a gRPC service (account, link):
// the Go and process collectors and the server's call metrics.
type Service struct {
	Registry *prometheus.Registry
	Server   *Handler
}

// NewService returns a fresh private registry with the server metrics.
func NewService() *Service {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Service{Registry: r, Server: NewServer(r)}
}

// Handler serves the registry in the Prometheus text format (GET
// /metrics on the service's admin listener).
func (s *Service) Handler() http.Handler {
	return promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})
}
