package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Sink is what a transport gives the hub for one connection.
type Sink interface {
	// Wake tells the transport's writer that frames are queued. It must
	// not block.
	Wake()
	// Close ends the connection with a close code and reason. It may be
	// called from any goroutine, more than once (the first wins), and must
	// not block on I/O.
	Close(code int, reason string)
}

// Item is one queued outbound frame. Event frames are shared by every
// reader: the bytes are never modified after they are queued.
type Item struct {
	Frame []byte
	// Stream and Seq identify an event frame (token or stream_metadata);
	// Stream is nil for other frames.
	Stream *stream
	Seq    uint64
	// Ingest is when the emitting gateway took a live event from its
	// writer (Unix ns, from the event's Ams-Ingest header), 0 for other
	// frames and replayed events: Delivered observes the latency from it.
	Ingest int64
}

// StreamID of an event item, "" for other frames.
func (it *Item) StreamID() string {
	if it.Stream == nil {
		return ""
	}
	return it.Stream.info.ID
}

// Conn is one client connection on this gateway: a WebSocket, an SSE
// response, a gRPC Connect call or an MCP session. It owns at most one
// stream (none for an observer) and reads the streams of its read set.
type Conn struct {
	id        uint64
	conv      *conv
	sink      Sink
	transport string

	accountID string
	linkID    string
	observer  bool
	batch     bool

	// Guarded by conv.mu.
	own     *stream // nil for observers
	selfSub bool
	filter  *filter // nil: every stream
	reads   map[*stream]struct{}
	// displaced: a newer connection of its stream took the stream over;
	// set by that join while this connection may be closing.
	displaced atomic.Bool
	// ownFrom: with self_subscribe, own events up to this seq were already
	// published when the connection joined and are not delivered.
	ownFrom uint64
	// replaying holds, per stream being replayed to this connection, the
	// live events that arrive meanwhile; they follow the replay.
	replaying map[*stream]*replayBuf
	// resume is the cursor the connection joined with (nil: none), and
	// resumed the streams it was used for: a stream of the cursor that
	// this gateway announces only after the join is replayed from its
	// position then (resumeLate).
	resume      *connreq.Cursor
	resumed     map[string]struct{}
	resumeUntil time.Time // resumeLate's window

	// ctx ends when the connection closes (it stops a replay).
	ctx    context.Context
	cancel context.CancelFunc
	space  chan struct{} // signalled when the writer takes frames

	// The outbound queue; guarded by qmu.
	qmu       sync.Mutex
	q         []Item
	qBytes    int
	maxFrames int
	maxBytes  int
	delivered map[string]uint64 // stream id -> highest seq written
	// base is, per stream read, the seq the client was told it starts
	// after: last_seq in peers or stream_joined, or a replay's start - 1.
	base   map[string]uint64
	closed bool

	closeOnce sync.Once
	done      atomic.Bool
	lastWrite atomic.Int64
	// latency observes publish-to-deliver latency (nil without metrics).
	latency prometheus.Observer
}

// ID is the connection's id on this gateway.
func (c *Conn) ID() uint64 { return c.id }

// Context ends when the connection closes.
func (c *Conn) Context() context.Context { return c.ctx }

// AccountID is the connection's account ("" for an anonymous observer).
func (c *Conn) AccountID() string { return c.accountID }

// Batch reports whether the client enabled batching.
func (c *Conn) Batch() bool { return c.batch }

// enqueue adds a frame; on overflow the connection is closed with 4290
// slow_consumer and the frame dropped. It never blocks.
func (c *Conn) enqueue(it Item) {
	c.qmu.Lock()
	if c.closed {
		c.qmu.Unlock()
		return
	}
	if len(c.q) >= c.maxFrames || c.qBytes+len(it.Frame) > c.maxBytes {
		bound := "bytes"
		if len(c.q) >= c.maxFrames {
			bound = "frames"
		}
		c.closed = true
		c.q = nil
		c.qBytes = 0
		c.qmu.Unlock()
		c.conv.hub.metrics.slowConsumer(bound)
		go c.closeWith(wireerr.SlowConsumer)
		return
	}
	wake := len(c.q) == 0
	c.q = append(c.q, it)
	c.qBytes += len(it.Frame)
	c.qmu.Unlock()
	if wake {
		c.sink.Wake()
	}
}

// Take batch bounds: a writer takes at most this much per socket write,
// so frames it has not written stay in the queue and count against the
// queue's bound (a slow reader overflows it and is closed, instead of
// the writer holding an unbounded batch).
const (
	TakeFrames = 256
	TakeBytes  = 256 << 10
)

// Take moves up to TakeFrames / TakeBytes of the oldest queued frames into
// dst (reused by the caller) and returns it, with more = true when frames
// remain queued. The writer calls it after each Wake and until more is
// false.
func (c *Conn) Take(dst []Item) (items []Item, more bool) {
	c.qmu.Lock()
	n, size := 0, 0
	for n < len(c.q) && n < TakeFrames && (n == 0 || size+len(c.q[n].Frame) <= TakeBytes) {
		size += len(c.q[n].Frame)
		n++
	}
	dst = append(dst[:0], c.q[:n]...)
	rest := copy(c.q, c.q[n:])
	clear(c.q[rest:])
	c.q = c.q[:rest]
	c.qBytes -= size
	more = rest > 0
	c.qmu.Unlock()
	select {
	case c.space <- struct{}{}:
	default:
	}
	return dst, more
}

var errConnClosed = wireerr.New(wireerr.GoingAway, "connection closed")

// enqueueWait adds a frame, waiting while the queue is over half full: a
// replay paces itself to the client and leaves room for live events.
func (c *Conn) enqueueWait(it Item) error {
	for {
		c.qmu.Lock()
		if c.closed {
			c.qmu.Unlock()
			return errConnClosed
		}
		if len(c.q) < c.maxFrames/2 && c.qBytes+len(it.Frame) <= c.maxBytes/2 || len(c.q) == 0 {
			wake := len(c.q) == 0
			c.q = append(c.q, it)
			c.qBytes += len(it.Frame)
			c.qmu.Unlock()
			if wake {
				c.sink.Wake()
			}
			return nil
		}
		c.qmu.Unlock()
		select {
		case <-c.space:
		case <-c.ctx.Done():
			return errConnClosed
		}
	}
}

// Delivered records that the items were written to the client, for the
// cursor a slow consumer is given, and counts them in the metrics (frames
// out, publish-to-deliver latency).
func (c *Conn) Delivered(items []Item) {
	c.qmu.Lock()
	for i := range items {
		// The map ends with each stream's last item of the batch either
		// way; one write per run of a stream's items is enough.
		if items[i].Stream != nil && (i+1 == len(items) || items[i+1].Stream != items[i].Stream) {
			if c.delivered == nil {
				c.delivered = map[string]uint64{}
			}
			c.delivered[items[i].StreamID()] = items[i].Seq
		}
	}
	c.qmu.Unlock()
	now := time.Now().UnixNano()
	c.lastWrite.Store(now)
	c.conv.hub.metrics.delivered(c.latency, items, now)
}

// Cursor returns the connection's resume cursor (spec 5.1): per stream
// read, the seq of the last frame written to the client, else the last_seq
// it was announced. Resuming from it loses nothing still retained.
func (c *Conn) Cursor() map[string]uint64 {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	out := make(map[string]uint64, len(c.base)+len(c.delivered))
	for k, v := range c.base {
		out[k] = v
	}
	for k, v := range c.delivered {
		out[k] = max(out[k], v)
	}
	return out
}

// setBase records the announced start of a stream for the cursor.
func (c *Conn) setBase(streamID string, seq uint64) {
	c.qmu.Lock()
	if c.base == nil {
		c.base = map[string]uint64{}
	}
	if _, ok := c.base[streamID]; !ok {
		c.base[streamID] = seq
	}
	c.qmu.Unlock()
}

// closeWith closes the connection with a catalogue code: the hub forgets
// it first (leave or grace as the code implies), then the transport closes.
func (c *Conn) closeWith(code wireerr.Code) {
	c.closeOnce.Do(func() {
		c.cancel()
		if code.Close == wireerr.GoingAway.Close {
			// 1001 (a draining gateway): the stream keeps its grace, so
			// the client resumes it on another gateway unseen (spec 4.5).
			c.conv.hub.detachLost(c)
		} else {
			c.conv.hub.detach(c, code)
		}
		c.conv.hub.metrics.closed(code.Close)
		c.sink.Close(code.Close, code.Name)
	})
}

// Close ends the connection from the transport's side: code is what ended
// it (the client's close code, or the AMS code the transport is sending).
// Lost is true when the connection broke without a close handshake; the
// stream then stays present for the grace period.
func (c *Conn) Close(code int, lost bool) {
	c.closeOnce.Do(func() {
		c.cancel()
		c.qmu.Lock()
		c.closed = true
		c.q = nil
		c.qmu.Unlock()
		if lost {
			c.conv.hub.detachLost(c)
		} else {
			c.conv.hub.detach(c, wireerr.Code{Close: code})
		}
		c.conv.hub.metrics.closed(code)
	})
}

// Fail closes the connection with a catalogue error (from the transport:
// a bad frame, an oversized message).
func (c *Conn) Fail(code wireerr.Code) { c.closeWith(code) }

// Ping answers a ping with a pong to this connection only.
func (c *Conn) Ping() {
	c.conv.hub.metrics.frameIn("ping")
	c.enqueue(Item{Frame: frame.Pong})
}

// filter is a read filter (spec 5.2): stream ids and names.
type filter struct {
	items []string
	ids   map[string]struct{}
	names map[string]struct{}
}

func newFilter(items []string) *filter {
	f := &filter{items: items, ids: map[string]struct{}{}, names: map[string]struct{}{}}
	for _, it := range items {
		if len(it) == 30 && it[:4] == "str_" {
			f.ids[it] = struct{}{}
		} else {
			f.names[it] = struct{}{}
		}
	}
	return f
}

func (f *filter) match(s *stream) bool {
	if f == nil {
		return true
	}
	if _, ok := f.ids[s.info.ID]; ok {
		return true
	}
	_, ok := f.names[s.info.Name]
	return ok
}
