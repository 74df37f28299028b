package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/amsrouter/ams/pkg/ams"
	"github.com/amsrouter/ams/pkg/wire"
)

// runJoin is `ams join <magic link>`: a participant at the terminal.
// Lines of stdin become tokens of the own stream; the other streams'
// tokens print live on stdout, "name: text", one colour per stream;
// membership and connection events go to stderr. End of input or Ctrl-C
// leaves with close code 1000. The SDK reconnects and resumes after a
// lost connection.
func runJoin(ctx context.Context, e env, args []string) error {
	var (
		cf                       clientFlags
		name, metadata, identity string
		model, grpcAddr          string
		subscribe                optString
		self, observe, stay      bool
	)
	fs := newFlagSet(e, "join", " <magic link>",
		"Joins the conversation of a magic link with the configured account. Each line you type (stdin)\n"+
			"is sent as one token, newline included; the other participants' tokens print as they arrive,\n"+
			"\"name: text\", one colour per stream (none when stdout is not a terminal or NO_COLOR is set).\n"+
			"Joins, leaves and reconnects are reported on stderr. End of input (Ctrl-D) or Ctrl-C leaves.")
	cf.register(fs)
	fs.StringVar(&name, "name", "", "your stream's name (default: one the server draws); joining again with it resumes it")
	fs.BoolVar(&self, "self", false, "also print your own tokens (self-subscribe)")
	fs.StringVar(&metadata, "metadata", "", "your stream's metadata, a JSON object")
	fs.Var(&subscribe, "subscribe", "read only these streams: comma-separated stream names or ids (empty: none)")
	fs.StringVar(&identity, "identity", "human", "who writes the stream: human or agent")
	fs.StringVar(&model, "model", "", "the model behind an agent stream, declared to peers")
	fs.BoolVar(&observe, "observe", false, "join as a read-only observer: no stream, invisible to the others")
	fs.StringVar(&grpcAddr, "grpc", "", "join over the gRPC API at this host:port instead of WebSocket")
	fs.BoolVar(&stay, "stay", false, "keep reading after the end of input, until Ctrl-C")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return help(err)
	}
	if _, err := ams.ParseMagicLink(pos[0]); err != nil {
		return err
	}
	cfg, path, err := cf.load(e)
	if err != nil {
		return err
	}
	c, err := cfg.client(path, !observe)
	if err != nil {
		return err
	}
	opts := []ams.JoinOption{ams.WithPeerIdentity(wire.PeerIdentity{Kind: identity, Model: model, Client: "ams-cli"})}
	if name != "" {
		opts = append(opts, ams.WithStreamName(name))
	}
	if self {
		opts = append(opts, ams.WithSelfSubscribe())
	}
	if metadata != "" {
		md, err := jsonObject("-metadata", metadata)
		if err != nil {
			return err
		}
		opts = append(opts, ams.WithMetadata(md))
	}
	if subscribe.set {
		var items []string
		for it := range strings.SplitSeq(subscribe.v, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		opts = append(opts, ams.WithSubscribe(items...))
	}
	if observe {
		opts = append(opts, ams.WithObserve())
	}
	if grpcAddr != "" {
		opts = append(opts, ams.WithGRPC(grpcAddr))
	}

	s, err := c.Join(ctx, pos[0], opts...)
	if err != nil {
		return apiError(err)
	}
	defer s.Close()

	p := newPrinter(e)
	// Input: each line is a token. The reader goroutine ends with the
	// input; a blocked read of a terminal cannot be interrupted, so it is
	// not waited for at exit.
	inputDone := make(chan error, 1)
	if observe {
		inputDone = nil // nothing to send: wait for Ctrl-C
	} else {
		go func() { inputDone <- sendLines(ctx, s, e.stdin) }()
	}
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				p.endLine()
				return apiError(s.Err())
			}
			if c, isClose := ev.(ams.Closed); isClose {
				p.endLine()
				if c.Err != nil {
					return apiError(c.Err)
				}
				return nil
			}
			p.event(ev)
		case err := <-inputDone:
			if err != nil && !errors.Is(err, ams.ErrClosed) {
				p.endLine()
				return err
			}
			if stay {
				inputDone = nil
				continue
			}
			p.endLine()
			return s.Close()
		case <-ctx.Done(): // Ctrl-C
			p.endLine()
			return s.Close()
		}
	}
}

// sendLines sends each line of r as one token, its newline included.
func sendLines(ctx context.Context, s *ams.Session, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if serr := s.Send(ctx, line); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
	}
}

// optString is a string flag that knows whether it was given.
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Set(v string) error { o.v, o.set = v, true; return nil }

var _ flag.Value = (*optString)(nil)

// printer writes tokens to stdout as "name: text" lines, starting a new
// line when another stream speaks, and events to stderr.
type printer struct {
	out, errw io.Writer
	color     bool

	mu        sync.Mutex
	last      string // stream whose text ends the current line
	midLine   bool
	colors    map[string]string
	ownStream string
}

// palette holds the ANSI colours given to streams in order of appearance.
var palette = []string{"\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[32m", "\x1b[34m", "\x1b[31m", "\x1b[96m", "\x1b[93m", "\x1b[95m", "\x1b[92m"}

const reset = "\x1b[0m"

func newPrinter(e env) *printer {
	return &printer{out: e.stdout, errw: e.stderr, color: colorOutput(e), colors: map[string]string{}}
}

// colorOutput reports whether stdout is a terminal and NO_COLOR is unset.
func colorOutput(e env) bool {
	if e.getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := e.stdout.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *printer) paint(streamID, s string) string {
	if !p.color {
		return s
	}
	c, ok := p.colors[streamID]
	if !ok {
		c = palette[len(p.colors)%len(palette)]
		p.colors[streamID] = c
	}
	return c + s + reset
}

// token prints data of a stream, prefixing each new line with its name.
func (p *printer) token(streamID, name, data string) {
	if p.midLine && p.last != streamID {
		fmt.Fprintln(p.out)
		p.midLine = false
	}
	p.last = streamID
	for data != "" {
		if !p.midLine {
			fmt.Fprint(p.out, p.paint(streamID, name+": "))
			p.midLine = true
		}
		line, rest, nl := strings.Cut(data, "\n")
		if line != "" {
			fmt.Fprint(p.out, p.paint(streamID, line))
		}
		if nl {
			fmt.Fprintln(p.out)
			p.midLine = false
		}
		data = rest
	}
}

// endLine ends a partial line of stdout, so that what follows starts clean.
func (p *printer) endLine() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.midLine {
		fmt.Fprintln(p.out)
		p.midLine = false
	}
}

// note prints an event line on stderr.
func (p *printer) note(format string, args ...any) {
	if p.midLine {
		fmt.Fprintln(p.out)
		p.midLine = false
	}
	fmt.Fprintf(p.errw, "* "+format+"\n", args...)
}

func (p *printer) event(ev wire.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case wire.Joined:
		p.ownStream = ev.StreamID
		names := make([]string, 0, len(ev.Peers))
		for _, peer := range ev.Peers {
			names = append(names, p.paint(peer.StreamID, peer.StreamName))
		}
		who := "as " + ev.StreamName
		if ev.Observer {
			who = "as an observer"
		}
		peers := "nobody else here yet"
		if len(names) > 0 {
			peers = "here: " + strings.Join(names, ", ")
		}
		p.note("joined %s (%s); %s", who, ev.StreamID, peers)
	case wire.Token:
		name := ev.StreamName
		if ev.StreamID == p.ownStream {
			name += " (you)"
		}
		p.token(ev.StreamID, name, ev.Data)
	case wire.StreamJoined:
		p.note("%s joined%s", p.paint(ev.StreamID, ev.StreamName), describe(ev.PeerIdentity))
	case wire.StreamLeft:
		p.note("%s left", p.paint(ev.StreamID, ev.StreamName))
	case wire.StreamMetadata:
		p.note("%s set metadata %s", p.paint(ev.StreamID, ev.StreamName), ev.Metadata)
	case wire.ReplayGap:
		p.note("%s: events %d to %d are no longer retained", p.paint(ev.StreamID, ev.StreamName), ev.RequestedSeq, ev.FirstAvailableSeq-1)
	case wire.Subscribed:
		p.note("reading %s", subscription(ev.Subscription))
	case ams.Reconnecting:
		if ev.Attempt == 1 {
			p.note("connection lost (%s); reconnecting", lostReason(ev))
		}
	case ams.Reconnected:
		p.note("reconnected")
	}
}

func describe(id *wire.PeerIdentity) string {
	if id == nil {
		return ""
	}
	s := " (" + id.Kind
	if id.Model != "" {
		s += ", " + id.Model
	}
	return s + ")"
}

func subscription(items []string) string {
	if items == nil {
		return "every stream"
	}
	if len(items) == 0 {
		return "no stream"
	}
	return strings.Join(items, ", ")
}

func lostReason(ev ams.Reconnecting) string {
	if ev.Reason != "" {
		return fmt.Sprintf("%d %s", ev.Code, ev.Reason)
	}
	if ev.Code == wire.CloseAbnormal {
		return "network"
	}
	return fmt.Sprint(ev.Code)
}
