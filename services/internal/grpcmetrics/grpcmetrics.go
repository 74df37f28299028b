// Package grpcmetrics counts gRPC calls in Prometheus: a stats handler for
// servers and one for clients, by method and status code, with a latency
// histogram. A stats handler sees the final status of every call, after
// all interceptors (grpcx maps catalogue errors to statuses in one), and
// sees streams as well as unary calls.
//
// Label values are fixed vocabularies: full method names of the services
// registered and gRPC code names. A server reports no call to a method it
// does not have (gRPC answers it before the stats of a call begin), so
// clients cannot mint label values; a client counts the methods its code
// calls.
package grpcmetrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
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

func newHandler(reg prometheus.Registerer, side string) *Handler {
	h := &Handler{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_grpc_" + side + "_started_total", Help: "gRPC calls started, by full method.",
		}, []string{"method"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_grpc_" + side + "_handled_total", Help: "gRPC calls completed, by full method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ams_grpc_" + side + "_handling_seconds", Help: "Duration of completed gRPC calls, by full method.",
			Buckets: Buckets,
		}, []string{"method"}),
	}
	reg.MustRegister(h.started, h.handled, h.duration)
	return h
}

// NewServer registers the server metrics (ams_grpc_server_started_total,
// ams_grpc_server_handled_total{method,code},
// ams_grpc_server_handling_seconds{method}) on reg and returns their
// handler.
func NewServer(reg prometheus.Registerer) *Handler { return newHandler(reg, "server") }

// NewClient registers the client metrics (ams_grpc_client_*: the same
// families for calls this process makes) on reg and returns their handler.
func NewClient(reg prometheus.Registerer) *Handler { return newHandler(reg, "client") }

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
