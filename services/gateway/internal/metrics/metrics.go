// Package metrics defines the gateway's Prometheus metrics (spec 3.8) on a
// private registry. Label values are fixed vocabularies (transports, frame
// types, close codes, route patterns): never ids, names, secrets or
// payloads.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every gateway metric.
type Metrics struct {
	Registry *prometheus.Registry

	Connections     *prometheus.GaugeVec   // transport
	StreamsLive     prometheus.Gauge       //
	FramesIn        *prometheus.CounterVec // type
	FramesOut       *prometheus.CounterVec // type
	Closes          *prometheus.CounterVec // code
	ReplayFrames    prometheus.Counter
	HTTPRequests    *prometheus.CounterVec // route, method, status
	HTTPDuration    *prometheus.HistogramVec
	AuthCacheLookup *prometheus.CounterVec // result: hit|miss
}

// New registers the metrics on a fresh registry, with the Go and process
// collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ams_connections", Help: "Open client connections by transport (ws, sse, grpc, mcp).",
		}, []string{"transport"}),
		StreamsLive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ams_streams_live", Help: "Live streams attached to this gateway.",
		}),
		FramesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_frames_in_total", Help: "Client frames received, by type.",
		}, []string{"type"}),
		FramesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_frames_out_total", Help: "Server frames sent, by type.",
		}, []string{"type"}),
		Closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_closes_total", Help: "Connections closed, by close code.",
		}, []string{"code"}),
		ReplayFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ams_replay_frames_total", Help: "Frames replayed from retention.",
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ams_http_request_duration_seconds", Help: "HTTP request duration by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		AuthCacheLookup: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_auth_cache_lookups_total", Help: "Credential cache lookups by result (hit, miss).",
		}, []string{"result"}),
	}
	r.MustRegister(m.Connections, m.StreamsLive, m.FramesIn, m.FramesOut, m.Closes, m.ReplayFrames,
		m.HTTPRequests, m.HTTPDuration, m.AuthCacheLookup)
	// Every family of spec 3.8 is exposed from the start, also before any
	// stream traffic: the known label values begin at zero.
	for _, t := range []string{"ws", "sse", "grpc", "mcp"} {
		m.Connections.WithLabelValues(t)
	}
	for _, t := range []string{"token", "set_metadata", "ping", "subscribe"} { // spec 4.4
		m.FramesIn.WithLabelValues(t)
	}
	for _, t := range []string{"joined", "stream_joined", "stream_left", "token", "stream_metadata", "pong", "replay_gap", "subscribed"} { // spec 4.3
		m.FramesOut.WithLabelValues(t)
	}
	for _, c := range []int{1000, 1001, 1009, 4001, 4002, 4003, 4004, 4005, 4290, 4400, 4500} { // spec 4.2
		m.Closes.WithLabelValues(strconv.Itoa(c))
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Close counts a connection close with its code.
func (m *Metrics) Close(code int) { m.Closes.WithLabelValues(strconv.Itoa(code)).Inc() }
