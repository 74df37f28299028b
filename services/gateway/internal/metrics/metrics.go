// Package metrics defines the gateway's Prometheus metrics (spec 3.8) on a
// private registry. Label values are fixed vocabularies (transports, frame
// types, close codes, route patterns): never ids, names, secrets or
// payloads.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/amsrouter/ams/services/internal/grpcmetrics"
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

	// Stream plane beyond spec 3.8.
	DeliveryLatency *prometheus.HistogramVec // transport
	QueueOverflows  *prometheus.CounterVec   // bound: frames|bytes
	ResumesStarted  prometheus.Counter
	ResumesEnded    *prometheus.CounterVec // result: completed|aborted
	PublishErrors   *prometheus.CounterVec // stage: publish|ack
	EventsResent    prometheus.Counter
	NATSStoreLost   *prometheus.CounterVec // part: events|presence
	PublishAck      prometheus.Histogram
	PresenceLag     prometheus.Histogram
	// GRPCServer and GRPCClient count the public gRPC API's calls and the
	// gateway's calls to the account and link services.
	GRPCServer *grpcmetrics.Handler
	GRPCClient *grpcmetrics.Handler

	// queuedBytes reads the sum of every connection's outbound queue
	// (ams_outbound_queue_bytes) at scrape time.
	queuedBytes atomic.Pointer[func() int64]
	// tailBytes reads the bytes of the streams' in-memory tails
	// (ams_resume_tail_bytes) at scrape time.
	tailBytes atomic.Pointer[func() int64]
	framesIn  map[string]prometheus.Counter
	framesOut [len(frameTypes)]prometheus.Counter
}

// frameTypes are the server frame types of spec 4.3 (and 5.1, 5.2), the
// label values of ams_frames_out_total.
var frameTypes = [...]string{"joined", "stream_joined", "stream_left", "token", "stream_metadata", "pong", "replay_gap", "subscribed", "other"}

// LatencyBuckets of ams_delivery_latency_seconds, from 50 µs to 10 s.
var LatencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

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
		DeliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ams_delivery_latency_seconds",
			Help:    "Time from an event's ingest at the emitting gateway to its write to a reader, by the reader's transport.",
			Buckets: LatencyBuckets,
		}, []string{"transport"}),
		QueueOverflows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_outbound_queue_overflows_total", Help: "Outbound queues that overflowed (the reader is closed 4290), by the bound reached (frames, bytes).",
		}, []string{"bound"}),
		ResumesStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ams_resumes_started_total", Help: "Connections that asked for a replay from a cursor.",
		}),
		ResumesEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_resumes_finished_total", Help: "Replays finished, by result (completed: handed over to live delivery; aborted: the connection closed first).",
		}, []string{"result"}),
		PublishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_publish_errors_total", Help: "Event publishes that failed, by stage (publish: refused at once; ack: JetStream did not store it).",
		}, []string{"stage"}),
		EventsResent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ams_events_resent_total", Help: "Events published again after a NATS reconnect, because their first publish may not have reached the server.",
		}),
		NATSStoreLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ams_nats_store_lost_total", Help: "NATS reconnects after which a JetStream stream was found created again: the server lost its store (part events: the retained events; presence: the presence records, which the gateway writes again for the streams it holds).",
		}, []string{"part"}),
		PublishAck: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ams_jetstream_publish_ack_seconds",
			Help:    "Time from an event's ingest to JetStream's store acknowledgement (publish mode jetstream).",
			Buckets: LatencyBuckets,
		}),
		PresenceLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ams_presence_watch_lag_seconds",
			Help:    "Time from a presence record's write to its delivery by the KV watch on this gateway.",
			Buckets: LatencyBuckets,
		}),
		framesIn: map[string]prometheus.Counter{},
	}
	r.MustRegister(m.Connections, m.StreamsLive, m.FramesIn, m.FramesOut, m.Closes, m.ReplayFrames,
		m.HTTPRequests, m.HTTPDuration, m.AuthCacheLookup,
		m.DeliveryLatency, m.QueueOverflows, m.ResumesStarted, m.ResumesEnded, m.PublishErrors, m.EventsResent, m.NATSStoreLost, m.PublishAck, m.PresenceLag,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ams_outbound_queue_bytes", Help: "Bytes of frames queued for readers and not yet written, over every connection.",
		}, read(&m.queuedBytes)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ams_resume_tail_bytes", Help: "Bytes of frames the streams' in-memory tails hold for resumes, over every stream.",
		}, read(&m.tailBytes)),
	)
	m.GRPCServer = grpcmetrics.NewServer(r)
	m.GRPCClient = grpcmetrics.NewClient(r)
	// Every family of spec 3.8 is exposed from the start, also before any
	// stream traffic: the known label values begin at zero.
	for _, t := range []string{"ws", "sse", "grpc", "mcp"} {
		m.Connections.WithLabelValues(t)
	}
	for _, t := range []string{"token", "set_metadata", "ping", "subscribe"} { // spec 4.4
		m.framesIn[t] = m.FramesIn.WithLabelValues(t)
	}
	for i, t := range frameTypes {
		m.framesOut[i] = m.FramesOut.WithLabelValues(t)
	}
	for _, t := range []string{"ws", "sse", "grpc", "mcp"} {
		m.DeliveryLatency.WithLabelValues(t)
	}
	for _, b := range []string{"frames", "bytes"} {
		m.QueueOverflows.WithLabelValues(b)
	}
	for _, r := range []string{"completed", "aborted"} {
		m.ResumesEnded.WithLabelValues(r)
	}
	for _, s := range []string{"publish", "ack"} {
		m.PublishErrors.WithLabelValues(s)
	}
	for _, p := range []string{"events", "presence"} {
		m.NATSStoreLost.WithLabelValues(p)
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

// FrameIn counts a client frame of a type of spec 4.4.
func (m *Metrics) FrameIn(typ string) { m.FrameInN(typ, 1) }

// FrameInN counts n client frames of a type of spec 4.4.
func (m *Metrics) FrameInN(typ string, n int) {
	if c := m.framesIn[typ]; c != nil {
		c.Add(float64(n))
	}
}

// FrameCounts tallies server frames written to clients by type, for
// AddFramesOut: a writer counts a write's frames locally and adds them
// with one atomic add per type, not one per frame on counters every
// connection shares.
type FrameCounts [len(frameTypes)]int

// Count tallies one frame, by the type its bytes start with. It does not
// allocate.
func (fc *FrameCounts) Count(f []byte) { fc[frameOutIndex(f)]++ }

// AddFramesOut adds tallied frames to the written-frames counters.
func (m *Metrics) AddFramesOut(fc *FrameCounts) {
	for i, n := range fc {
		if n > 0 {
			m.framesOut[i].Add(float64(n))
		}
	}
}

// frameOutIndex is the index in frameTypes of a frame's type.
func frameOutIndex(f []byte) int {
	const prefix = `{"type":"`
	if len(f) < len(prefix) || string(f[:len(prefix)]) != prefix {
		return len(frameTypes) - 1
	}
	f = f[len(prefix):]
	end := 0
	for end < len(f) && end < 16 && f[end] != '"' {
		end++
	}
	switch string(f[:end]) { // compared without a copy
	case "joined":
		return 0
	case "stream_joined":
		return 1
	case "stream_left":
		return 2
	case "token":
		return 3
	case "stream_metadata":
		return 4
	case "pong":
		return 5
	case "replay_gap":
		return 6
	case "subscribed":
		return 7
	}
	return len(frameTypes) - 1
}

// SetQueuedBytes sets the source of ams_outbound_queue_bytes, read at
// each scrape (the hub's QueuedBytes).
func (m *Metrics) SetQueuedBytes(fn func() int64) { m.queuedBytes.Store(&fn) }

// SetTailBytes sets the source of ams_resume_tail_bytes, read at each
// scrape (the hub's TailBytes).
func (m *Metrics) SetTailBytes(fn func() int64) { m.tailBytes.Store(&fn) }

// read returns a gauge's function that calls the source src holds, or
// reads 0 while none is set.
func read(src *atomic.Pointer[func() int64]) func() float64 {
	return func() float64 {
		if fn := src.Load(); fn != nil {
			return float64((*fn)())
		}
		return 0
	}
}

// PublishError counts a failed event publish at a stage: "publish" or
// "ack".
func (m *Metrics) PublishError(stage string) { m.PublishErrors.WithLabelValues(stage).Inc() }

// PublishAcked observes the time from an event's ingest to its store
// acknowledgement.
func (m *Metrics) PublishAcked(d time.Duration) { m.PublishAck.Observe(max(d, 0).Seconds()) }
