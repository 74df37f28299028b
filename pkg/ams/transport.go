package ams

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/pkg/wire"
)

// transport is one connection of a session: a WebSocket or a gRPC Connect
// call. recv is called by one goroutine at a time; send may be called
// concurrently; close and abort are idempotent.
type transport interface {
	// recv returns the next server frame, or the error that ended the
	// connection.
	recv() (wire.Event, error)
	// send writes a client frame.
	send(ctx context.Context, f clientFrame) error
	// status tells the close code and reason of an error of recv: 1006
	// when the connection was lost without one.
	status(err error) (code int, reason wire.Code)
	// close leaves with 1000 and waits (bounded) for the server's answer.
	close()
	// abort drops the connection at once.
	abort()
	// broken is closed once the connection is closed or aborted.
	broken() <-chan struct{}
}

type frameKind int

const (
	frameToken frameKind = iota
	frameSetMetadata
	framePing
	frameSubscribe
)

// clientFrame is a client frame of spec 4.4 (several tokens for SendMany).
type clientFrame struct {
	kind     frameKind
	data     []string
	metadata json.RawMessage
	streams  []string // nil = all
}

// dialInputs are the per-connection connect inputs; the rest comes from
// the joinConfig.
type dialInputs struct {
	streamName string
	metadata   json.RawMessage
	filter     []string
	filterOn   bool
	resume     string
}

// closeTimeout bounds the wait for the server's answer to a close.
const closeTimeout = 5 * time.Second

// wsReadLimit bounds a server message: a joined frame with 100 peers and
// their metadata, or a batch of 256 large tokens.
const (
	wsReadLimit      = 8 << 20
	wsBatchReadLimit = 128 << 20
)

type wsTransport struct {
	c       *websocket.Conn
	batch   bool
	pending []wire.Event

	brokenOnce sync.Once
	brokenCh   chan struct{}
}

func dialWS(ctx context.Context, cfg *joinConfig, link MagicLink, in dialInputs) (transport, error) {
	h := http.Header{}
	if cfg.credential != "" {
		h.Set("Authorization", "Bearer "+cfg.credential)
	}
	if in.streamName != "" && !cfg.observe {
		h.Set("X-AMS-Stream-Name", in.streamName)
	}
	if in.metadata != nil && !cfg.observe {
		h.Set("X-AMS-Stream-Metadata", base64.StdEncoding.EncodeToString(in.metadata))
	}
	if cfg.selfSubscribe {
		h.Set("X-AMS-Self-Subscribe", "true")
	}
	if in.filterOn {
		h.Set("X-AMS-Subscribe-Streams", strings.Join(in.filter, ","))
	}
	if cfg.peerIdentity != nil {
		b, _ := json.Marshal(cfg.peerIdentity)
		h.Set("X-AMS-Peer-Identity", base64.StdEncoding.EncodeToString(b))
	}
	if in.resume != "" {
		h.Set("X-AMS-Resume", in.resume)
	}
	if cfg.batch {
		h.Set("X-AMS-Batch", "true")
	}
	if cfg.observe {
		h.Set("X-AMS-Observe", "true")
	}
	c, resp, err := websocket.Dial(ctx, link.connectURL(), &websocket.DialOptions{
		HTTPHeader: h,
		HTTPClient: cfg.httpClient,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var body []byte
			if resp.Body != nil {
				body = make([]byte, 1024)
				n, _ := resp.Body.Read(body)
				body = body[:n]
			}
			return nil, httpError(resp.StatusCode, body)
		}
		// The error text of a failed handshake names the URL, whose query
		// holds the link token.
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("ams: join: %s %s: %w", ue.Op, redact(ue.URL), ue.Err)
		}
		return nil, fmt.Errorf("ams: join: %w", err)
	}
	if cfg.batch {
		c.SetReadLimit(wsBatchReadLimit)
	} else {
		c.SetReadLimit(wsReadLimit)
	}
	return &wsTransport{c: c, batch: cfg.batch, brokenCh: make(chan struct{})}, nil
}

func (t *wsTransport) recv() (wire.Event, error) {
	for len(t.pending) == 0 {
		// Reads have no deadline: the server pings every 30 s and the
		// library answers; a dead peer surfaces as an error here.
		typ, b, err := t.c.Read(context.Background())
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageText {
			continue
		}
		evs, err := wire.DecodeMessage(b)
		if err != nil {
			_ = t.c.Close(websocket.StatusUnsupportedData, "malformed frame")
			return nil, err
		}
		t.pending = evs
	}
	ev := t.pending[0]
	t.pending[0] = nil
	t.pending = t.pending[1:]
	return ev, nil
}

func (t *wsTransport) send(ctx context.Context, f clientFrame) error {
	var msgs [][]byte
	switch f.kind {
	case frameToken:
		if t.batch && len(f.data) > 1 {
			b := []byte{'['}
			for i, d := range f.data {
				if i > 0 {
					b = append(b, ',')
				}
				b = wire.AppendTokenFrame(b, d)
			}
			msgs = append(msgs, append(b, ']'))
		} else {
			for _, d := range f.data {
				msgs = append(msgs, wire.AppendTokenFrame(nil, d))
			}
		}
	case frameSetMetadata:
		msgs = append(msgs, wire.AppendSetMetadataFrame(nil, f.metadata))
	case framePing:
		msgs = append(msgs, wire.PingFrame)
	case frameSubscribe:
		msgs = append(msgs, wire.AppendSubscribeFrame(nil, f.streams))
	}
	for _, m := range msgs {
		if err := t.c.Write(ctx, websocket.MessageText, m); err != nil {
			return err
		}
	}
	return nil
}

func (t *wsTransport) status(err error) (int, wire.Code) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code), wire.Code(ce.Reason)
	}
	if errors.Is(err, wire.ErrMalformedFrame) {
		return int(websocket.StatusUnsupportedData), ""
	}
	return wire.CloseAbnormal, ""
}

func (t *wsTransport) close() {
	_ = t.c.Close(websocket.StatusNormalClosure, "")
	t.markBroken()
}

func (t *wsTransport) abort() {
	_ = t.c.CloseNow()
	t.markBroken()
}

func (t *wsTransport) markBroken()             { t.brokenOnce.Do(func() { close(t.brokenCh) }) }
func (t *wsTransport) broken() <-chan struct{} { return t.brokenCh }
