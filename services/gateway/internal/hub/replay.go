package hub

import (
	"context"
	"errors"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// maxReplayBuffer bounds the live events held for one stream while it is
// replayed to a connection; past it the connection is a slow consumer.
const maxReplayBuffer = 8192

// replayBuf is one stream's replay to one connection.
type replayBuf struct {
	first    uint64 // first wanted seq
	snapshot uint64 // newest seq delivered here when the replay was planned
	live     []Item // live events that arrived during the replay
	overflow bool
	late     bool // planned by resumeLate, which runs it (not replay)
}

// resumeLateWindow is how long after its join a connection's cursor
// still applies to streams this gateway announces: their records reach
// it within moments of the join (a writer reconnecting at the same time,
// say), not minutes.
const resumeLateWindow = 30 * time.Second

// takeResume reports whether the connection's cursor names the stream
// and was not used for it yet, and marks it used; c.mu is held.
func (conn *Conn) takeResume(streamID string) bool {
	if conn.resume == nil {
		return false
	}
	if _, ok := conn.resume.Positions[streamID]; !ok {
		return false
	}
	if _, used := conn.resumed[streamID]; used {
		return false
	}
	conn.markResumed(streamID)
	return true
}

// markResumed records that the cursor was used for the stream; c.mu is
// held.
func (conn *Conn) markResumed(streamID string) {
	if conn.resumed == nil {
		conn.resumed = map[string]struct{}{}
	}
	conn.resumed[streamID] = struct{}{}
}

// resumeLate replays a stream this gateway announced after conn joined
// from the position conn's cursor gives it, as the join's replay does for
// the streams announced then; c.mu is held, and s was just registered.
// Without it the connection would go on from the stream's announced
// last_seq and miss what came between its cursor and that. A stream the
// cursor does not name is new to the client: it starts at last_seq, as
// stream_joined says.
func (c *conv) resumeLate(conn *Conn, s *stream) {
	if conn.resume == nil || time.Now().After(conn.resumeUntil) || !conn.takeResume(s.info.ID) {
		return
	}
	c.planReplay(conn, s, conn.resume, 0)
	rb := conn.replaying[s]
	if rb == nil {
		return // nothing missed
	}
	rb.late = true
	c.hub.wg.Add(1)
	go func() {
		defer c.hub.wg.Done()
		c.replayOne(conn, s, rb)
	}()
}

// planReplay marks a stream of conn's read set for replay from the
// cursor's first wanted seq (spec 5.1); c.mu is held.
func (c *conv) planReplay(conn *Conn, s *stream, cursor *connreq.Cursor, ownLast uint64) {
	first := uint64(1)
	if !cursor.All {
		if pos, ok := cursor.Positions[s.info.ID]; ok {
			first = min(pos, max(s.info.LastSeq, ownLastOf(conn, s, ownLast))) + 1
		}
	}
	snapshot := s.info.LastSeq
	if s == conn.own {
		snapshot = max(snapshot, ownLast)
	}
	if first > snapshot {
		return // nothing missed: live from the next seq
	}
	conn.qmu.Lock()
	if conn.base == nil {
		conn.base = map[string]uint64{}
	}
	conn.base[s.info.ID] = first - 1
	conn.qmu.Unlock()
	if c.serveFromTail(conn, s, first, snapshot) {
		return
	}
	if conn.replaying == nil {
		conn.replaying = map[*stream]*replayBuf{}
	}
	conn.replaying[s] = &replayBuf{first: first, snapshot: snapshot}
}

func ownLastOf(conn *Conn, s *stream, ownLast uint64) uint64 {
	if s == conn.own {
		return ownLast
	}
	return 0
}

// buffer holds a live event of a stream being replayed to conn; c.mu is
// held. It reports false when conn is not replaying s.
func (rb *replayBuf) buffer(it Item) {
	if len(rb.live) >= maxReplayBuffer {
		rb.overflow = true
		return
	}
	rb.live = append(rb.live, it)
}

// replay sends conn what it missed: for each planned stream the retained
// events from its first wanted seq (after a replay_gap when some are gone),
// then the live events that arrived meanwhile; then the streams of the
// cursor that are no longer live, each followed by stream_left. It
// reports whether it finished (false: the connection closed first).
func (c *conv) replay(conn *Conn, cursor *connreq.Cursor) bool {
	c.mu.Lock()
	planned := make(map[*stream]*replayBuf, len(conn.replaying))
	for s, rb := range conn.replaying {
		if !rb.late {
			planned[s] = rb
		}
	}
	c.mu.Unlock()

	n := 0
	for s, rb := range planned {
		sent, ok := c.replayOne(conn, s, rb)
		n += sent
		if !ok {
			return false
		}
	}
	c.hub.metrics.replay(n)
	if cursor.All {
		return true
	}
	// Streams in the cursor that are no longer live here.
	for _, id := range cursor.Order {
		c.mu.Lock()
		s := c.streams[id]
		live := s != nil && s.announced
		c.mu.Unlock()
		if live {
			continue
		}
		if err := c.replayLeft(conn, id, cursor.Positions[id]+1); err != nil {
			return false
		}
	}
	return true
}

// replayOne replays one planned stream to conn, then what arrived live
// meanwhile, and switches the stream to direct delivery. It returns how
// many retained events it sent and false if the connection closed first.
func (c *conv) replayOne(conn *Conn, s *stream, rb *replayBuf) (int, bool) {
	n := 0
	last, err := c.replayStream(conn, s.subj, &s.info, rb.first, rb.snapshot, s)
	if last >= rb.first {
		n = int(last - rb.first + 1)
	}
	if err != nil {
		return n, false // the connection closed
	}
	// Drain what arrived live meanwhile, paced like the replay; switch the
	// stream to direct delivery once the buffer is empty under the lock,
	// so nothing slips between.
	for {
		c.mu.Lock()
		if rb.overflow {
			delete(conn.replaying, s)
			c.mu.Unlock()
			go conn.closeWith(slowConsumer)
			return n, false
		}
		batch := rb.live
		rb.live = nil
		if len(batch) == 0 {
			delete(conn.replaying, s)
			c.mu.Unlock()
			return n, true
		}
		c.mu.Unlock()
		for _, it := range batch {
			if it.Stream != nil && it.Seq <= last {
				continue
			}
			if err := conn.enqueueWait(it); err != nil {
				return n, false
			}
			if it.Stream != nil {
				last = it.Seq
			}
		}
	}
}

// replayTries is how many times a replay that NATS failed is tried.
const replayTries = 3

// storeWait is how long a replay waits for JetStream to store events the
// gateway delivered live, without any progress, before it reports them as
// a replay_gap.
const storeWait = 2 * time.Second

// replayChunk is the most events one read of a replay takes from
// JetStream before it hands them to the connection: the read holds one of
// the hub's MaxReplaying slots, and a client slow to take its frames must
// not hold a slot while it is.
const replayChunk = 256

var (
	errStop  = errors.New("stop")
	errChunk = errors.New("chunk full")
)

// replayStream enqueues the retained events of one stream from first up
// to snapshot (0: to the newest retained) and returns the last seq sent.
// JetStream stores an event just after live subscribers get it, so when
// the newest events are not stored yet it waits a little for them.
func (c *conv) replayStream(conn *Conn, subj string, info *frame.Stream, first, snapshot uint64, s *stream) (uint64, error) {
	last := first - 1
	gapSent := false
	failures := 0
	deadline := time.Now().Add(storeWait)
	progress := last
	var out []Item
	for {
		// Read a chunk into out within a slot; last follows what was read.
		out = out[:0]
		var began time.Time
		err := c.hub.readBack(conn.ctx, func() error {
			began = time.Now()
			ctx, cancel := context.WithTimeout(conn.ctx, 10*time.Second)
			defer cancel()
			_, err := c.hub.plane.Replay(ctx, subj, last+1,
				func(firstAvailable uint64) error {
					if gapSent || last+1 >= firstAvailable && firstAvailable != 0 {
						return nil
					}
					avail := firstAvailable
					if avail == 0 { // nothing retained
						if snapshot == 0 || snapshot < last+1 {
							return nil
						}
						avail = snapshot + 1
					}
					gapSent = true
					out = append(out, Item{Frame: frame.AppendReplayGap(nil, info, last+1, avail)})
					last = avail - 1
					return nil
				},
				func(f []byte, seq uint64) error {
					if snapshot != 0 && seq > snapshot {
						return errStop
					}
					if len(out) >= replayChunk {
						return errChunk
					}
					if seq > last+1 {
						// Evicted from the middle (the total byte cap).
						out = append(out, Item{Frame: frame.AppendReplayGap(nil, info, last+1, seq)})
					}
					out = append(out, Item{Frame: f, Stream: s, Seq: seq})
					last = seq
					return nil
				})
			return err
		})
		// What was read goes out, whatever ended the read.
		for _, it := range out {
			if qerr := conn.enqueueWait(it); qerr != nil {
				return last, qerr
			}
		}
		clear(out)
		if errors.Is(err, errChunk) {
			continue
		}
		if err != nil && !errors.Is(err, errStop) {
			if conn.ctx.Err() != nil {
				return last, err
			}
			// NATS did not answer (a reconnect storm, a restart): try
			// again from where the replay stopped, and failing that close
			// the connection so that the client resumes again from its
			// cursor. Going on live would skip what was not replayed.
			if failures++; failures < replayTries {
				c.hub.log.Warn("replay interrupted; retrying", "conversation_id", c.id, "stream_id", info.ID, "from_seq", last+1,
					"after", time.Since(began).Round(time.Millisecond), "err", err)
				select {
				case <-conn.ctx.Done():
					return last, conn.ctx.Err()
				case <-time.After(time.Duration(failures) * 250 * time.Millisecond):
				}
				continue
			}
			c.hub.log.Warn("replay failed; closing the connection", "conversation_id", c.id, "stream_id", info.ID, "from_seq", last+1,
				"after", time.Since(began).Round(time.Millisecond), "err", err)
			go conn.closeWith(wireerr.Internal)
			return last, err
		}
		if last > progress {
			// Storing lags (a loaded server) but goes on: keep waiting.
			progress, deadline = last, time.Now().Add(storeWait)
		}
		if snapshot == 0 || last >= snapshot || time.Now().After(deadline) {
			if snapshot != 0 && last < snapshot {
				// Never stored: say so rather than skip silently.
				g := frame.AppendReplayGap(nil, info, last+1, snapshot+1)
				if err := conn.enqueueWait(Item{Frame: g}); err != nil {
					return last, err
				}
				last = snapshot
			}
			return last, nil
		}
		select {
		case <-conn.ctx.Done():
			return last, conn.ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readBack runs read, a read of JetStream, in one of the MaxReplaying
// slots, waiting for one until ctx ends.
func (h *Hub) readBack(ctx context.Context, read func() error) error {
	select {
	case h.replaying <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-h.replaying }()
	return read()
}

// replayLeft replays a stream of the cursor that is no longer live, if it
// passes exclusion and the filter, then announces its stream_left.
func (c *conv) replayLeft(conn *Conn, streamID string, first uint64) error {
	key, err := subject.PresenceKey(c.id, streamID)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(conn.ctx, 5*time.Second)
	rec, _, ok, err := presence.Get(ctx, c.hub.plane.Presence, key)
	cancel()
	if err != nil || !ok || rec.State != presence.Left {
		// Unknown ids are ignored; a live stream this gateway has not
		// announced yet is replayed when it is (resumeLate).
		return nil
	}
	info := frame.Stream{ID: rec.StreamID, Name: rec.Name, Owner: rec.Owner, Metadata: rec.Metadata,
		PeerIdentity: rec.PeerIdentity, LastSeq: rec.LastSeq}
	c.mu.Lock()
	own := conn.own != nil && conn.own.info.ID == streamID
	wanted := (!own || conn.selfSub) && conn.filter.matchInfo(&info) && conn.takeResume(streamID)
	c.mu.Unlock()
	if !wanted {
		return nil
	}
	subj, _ := subject.Event(c.id, streamID)
	if first <= rec.LastSeq {
		if _, err := c.replayStream(conn, subj, &info, first, rec.LastSeq, nil); err != nil {
			return err
		}
	}
	return conn.enqueueWait(Item{Frame: frame.AppendStreamLeft(nil, &info)})
}

func (f *filter) matchInfo(s *frame.Stream) bool {
	if f == nil {
		return true
	}
	if _, ok := f.ids[s.ID]; ok {
		return true
	}
	_, ok := f.names[s.Name]
	return ok
}
