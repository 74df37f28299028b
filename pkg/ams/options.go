package ams

import (
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/amsrouter/ams/pkg/wire"
)

// JoinOption sets an input of Join. Most map to a connect header of spec
// 4.1 (or its gRPC metadata, 5.4).
type JoinOption func(*joinConfig)

type joinConfig struct {
	credential    string
	streamName    string
	metadata      json.RawMessage
	selfSubscribe bool
	subscribe     []string
	subscribeSet  bool
	peerIdentity  *wire.PeerIdentity
	batch         bool
	observe       bool
	resume        wire.Cursor
	httpClient    *http.Client
	grpcAddr      string
	grpcConn      *grpc.ClientConn
	reconnect     ReconnectPolicy
	bufferSize    int
}

// WithCredential authenticates the connection with the account's bearer
// credential (`Authorization`). Required unless observing.
func WithCredential(credential string) JoinOption {
	return func(c *joinConfig) { c.credential = credential }
}

// WithStreamName names the stream the session owns
// (`X-AMS-Stream-Name`); without it the server draws a default name, which
// the session keeps across reconnects. Joining again with the same account
// and name takes the stream over (displace-and-resume).
func WithStreamName(name string) JoinOption {
	return func(c *joinConfig) { c.streamName = name }
}

// WithMetadata sets the stream's metadata, a JSON object of at most 16 KiB
// (`X-AMS-Stream-Metadata`). Peers see it in `peers` and `stream_joined`.
func WithMetadata(metadata json.RawMessage) JoinOption {
	return func(c *joinConfig) { c.metadata = metadata }
}

// WithSelfSubscribe makes the session read its own stream's events too
// (`X-AMS-Self-Subscribe`).
func WithSelfSubscribe() JoinOption {
	return func(c *joinConfig) { c.selfSubscribe = true }
}

// WithSubscribe sets the read filter (`X-AMS-Subscribe-Streams`, spec
// 5.2): stream ids, or stream names matching every stream of that name.
// No items means no streams (membership events still arrive); without
// this option the session reads every peer.
func WithSubscribe(streams ...string) JoinOption {
	return func(c *joinConfig) {
		c.subscribe = append([]string{}, streams...)
		c.subscribeSet = true
	}
}

// WithPeerIdentity declares who writes the stream
// (`X-AMS-Peer-Identity`): kind "agent" or "human", optional model and
// client.
func WithPeerIdentity(id wire.PeerIdentity) JoinOption {
	return func(c *joinConfig) { c.peerIdentity = &id }
}

// WithBatch lets both sides pack several frames into one message
// (`X-AMS-Batch`, spec 4.6); SendMany then sends its tokens in one
// message. WebSocket only.
func WithBatch() JoinOption {
	return func(c *joinConfig) { c.batch = true }
}

// WithObserve joins as a read-only observer (`X-AMS-Observe`, spec 4.7):
// no stream of its own, invisible to the participants, every stream read.
// The credential is optional.
func WithObserve() JoinOption {
	return func(c *joinConfig) { c.observe = true }
}

// WithResume starts the session from a cursor saved earlier (Session.Cursor):
// the events it names as received are not delivered again, the others that
// are still retained are replayed first (spec 5.1).
func WithResume(cursor wire.Cursor) JoinOption {
	return func(c *joinConfig) {
		c.resume = wire.Cursor{}
		for id, seq := range cursor {
			c.resume[id] = seq
		}
	}
}

// WithHTTPClient makes the WebSocket handshakes with the client.
func WithHTTPClient(hc *http.Client) JoinOption {
	return func(c *joinConfig) { c.httpClient = hc }
}

// WithGRPC joins over the gRPC public API (spec 5.4) of the gateway at
// addr (host:port, plaintext HTTP/2) instead of WebSocket. The session
// behaves the same. For TLS or other dial options, use WithGRPCConn.
func WithGRPC(addr string) JoinOption {
	return func(c *joinConfig) { c.grpcAddr = addr }
}

// WithGRPCConn joins over the gRPC public API through a connection the
// caller made and closes.
func WithGRPCConn(cc *grpc.ClientConn) JoinOption {
	return func(c *joinConfig) { c.grpcConn = cc }
}

// ReconnectPolicy bounds the reconnections of a session after its
// connection was lost or ended with a retryable close code
// (wire.Retryable). Delays grow from MinDelay to MaxDelay, doubling, each
// with random jitter; after MaxAttempts consecutive failures the session
// ends.
type ReconnectPolicy struct {
	// MaxAttempts is the number of consecutive failed attempts after which
	// the session gives up; 0 means 10, negative means never reconnect.
	MaxAttempts int
	// MinDelay is the delay before the first attempt; 0 means 100 ms.
	MinDelay time.Duration
	// MaxDelay caps the delay between attempts; 0 means 5 s.
	MaxDelay time.Duration
}

func (p ReconnectPolicy) withDefaults() ReconnectPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 10
	}
	if p.MinDelay <= 0 {
		p.MinDelay = 100 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 5 * time.Second
	}
	if p.MaxDelay < p.MinDelay {
		p.MaxDelay = p.MinDelay
	}
	return p
}

// WithReconnect sets the reconnect policy.
func WithReconnect(p ReconnectPolicy) JoinOption {
	return func(c *joinConfig) { c.reconnect = p }
}

// WithoutReconnect ends the session at the first lost connection.
func WithoutReconnect() JoinOption {
	return func(c *joinConfig) { c.reconnect = ReconnectPolicy{MaxAttempts: -1} }
}

// WithEventBuffer sets how many events may wait in Events for the
// application (default 256). When it is full the session stops reading
// from the server, which eventually closes a very slow reader with 4290
// slow_consumer; the session then reconnects and resumes without loss.
func WithEventBuffer(n int) JoinOption {
	return func(c *joinConfig) { c.bufferSize = n }
}
