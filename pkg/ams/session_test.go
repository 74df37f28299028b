package ams_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/amsrouter/ams/pkg/ams"
	"github.com/amsrouter/ams/pkg/ams/amstest"
	"github.com/amsrouter/ams/pkg/wire"
)

// transports runs a test over WebSocket and over gRPC.
func transports(t *testing.T, f func(t *testing.T, via []ams.JoinOption)) {
	t.Run("ws", func(t *testing.T) { t.Parallel(); f(t, nil) })
	t.Run("grpc", func(t *testing.T) {
		t.Parallel()
		if grpcAddr == "" {
			t.Fatal("ams dev serves no gRPC public API (no -grpc-addr)")
		}
		f(t, []ams.JoinOption{ams.WithGRPC(grpcAddr)})
	})
}

func opts(via []ams.JoinOption, more ...ams.JoinOption) []ams.JoinOption {
	return append(append([]ams.JoinOption{}, via...), more...)
}

// TestExchange: two participants see each other join, exchange tokens and
// metadata byte for byte, never get their own tokens (C31, C32, C35), and
// a ping gets a pong (C41).
func TestExchange(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, via []ams.JoinOption) {
		ctx := t.Context()
		a, b := account(t, baseURL, "xa"), account(t, baseURL, "xb")
		link := conversation(t, a)
		id := wire.PeerIdentity{Kind: "agent", Model: "m1"}
		as := join(t, a, link, opts(via, ams.WithStreamName("alice"), ams.WithPeerIdentity(id), ams.WithMetadata(json.RawMessage(`{"role":"lead"}`)))...)
		bs := join(t, b, link, opts(via, ams.WithStreamName("bob"))...)

		j := waitFor[wire.Joined](t, bs, nil)
		if len(j.Peers) != 1 || j.Peers[0].StreamName != "alice" || string(j.Peers[0].Metadata) != `{"role":"lead"}` {
			t.Fatalf("bob's peers = %+v", j.Peers)
		}
		if j.Peers[0].PeerIdentity == nil || *j.Peers[0].PeerIdentity != id {
			t.Errorf("alice's identity = %v", j.Peers[0].PeerIdentity)
		}
		sj := waitFor[wire.StreamJoined](t, as, nil)
		if sj.StreamName != "bob" || sj.OwnerAccountID != bs.Joined().AccountID {
			t.Errorf("stream_joined = %+v", sj)
		}

		data := []string{"héllo", " <b>&</b>", "", "\u2028\"\\"}
		for _, d := range data {
			if err := as.Send(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		meta := json.RawMessage(`{"z":1,  "a":[true,null]}`)
		if err := as.SetMetadata(ctx, meta); err != nil {
			t.Fatal(err)
		}
		if err := bs.Send(ctx, "bob's"); err != nil {
			t.Fatal(err)
		}
		for i, d := range data {
			tok := waitFor[wire.Token](t, bs, nil)
			if tok.Data != d || tok.Seq != uint64(i+1) || tok.StreamName != "alice" {
				t.Errorf("token %d = %+v, want %q seq %d", i, tok, d, i+1)
			}
		}
		md := waitFor[wire.StreamMetadata](t, bs, nil)
		if string(md.Metadata) != string(meta) || md.Seq != uint64(len(data)+1) {
			t.Errorf("stream_metadata = %s seq %d", md.Metadata, md.Seq)
		}
		// Alice gets bob's token and not her own.
		tok := waitFor[wire.Token](t, as, nil)
		if tok.StreamName != "bob" || tok.Data != "bob's" {
			t.Errorf("alice got %+v", tok)
		}
		if err := as.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor[wire.Pong](t, as, nil)

		if err := as.Close(); err != nil {
			t.Fatal(err)
		}
		left := waitFor[wire.StreamLeft](t, bs, nil)
		if left.StreamName != "alice" || left.LastSeq != uint64(len(data)+1) {
			t.Errorf("stream_left = %+v", left)
		}
		if err := as.Send(ctx, "late"); !errors.Is(err, ams.ErrClosed) {
			t.Errorf("send after close: %v, want ErrClosed", err)
		}
	})
}

// TestSelfSubscribeAndFilter: self_subscribe delivers the own tokens
// (C32); an empty filter delivers nothing until Subscribe(nil) (C59, C61).
func TestSelfSubscribeAndFilter(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, via []ams.JoinOption) {
		ctx := t.Context()
		a, b := account(t, baseURL, "fa"), account(t, baseURL, "fb")
		link := conversation(t, a)
		as := join(t, a, link, opts(via, ams.WithStreamName("alice"), ams.WithSelfSubscribe())...)
		bs := join(t, b, link, opts(via, ams.WithStreamName("bob"), ams.WithSubscribe())...)
		if j := waitFor[wire.Joined](t, bs, nil); j.Subscription == nil || len(j.Subscription) != 0 {
			t.Fatalf("subscription = %#v, want empty", j.Subscription)
		}
		waitFor[wire.StreamJoined](t, as, nil)

		if err := as.Send(ctx, "unheard"); err != nil {
			t.Fatal(err)
		}
		if tok := waitFor[wire.Token](t, as, nil); tok.Data != "unheard" || tok.StreamName != "alice" {
			t.Fatalf("alice's own token = %+v", tok)
		}
		if err := bs.Subscribe(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if sub := waitFor[wire.Subscribed](t, bs, nil); sub.Subscription != nil {
			t.Errorf("subscribed = %+v, want all", sub)
		}
		if err := as.Send(ctx, "heard"); err != nil {
			t.Fatal(err)
		}
		if tok := waitFor[wire.Token](t, bs, nil); tok.Data != "heard" || tok.Seq != 2 {
			t.Errorf("bob's first token = %+v, want heard #2", tok)
		}
	})
}

// TestRefused: refused joins return an *ams.Error with the close code and
// reason of spec 4.2 (C23, C24).
func TestRefused(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, via []ams.JoinOption) {
		ctx := t.Context()
		a := account(t, baseURL, "ref")
		link := conversation(t, a)
		l, err := ams.ParseMagicLink(link)
		if err != nil {
			t.Fatal(err)
		}
		otherAlias := strings.Replace(link, "/conversations/"+l.Alias, "/conversations/nope-1234", 1)
		for _, tc := range []struct {
			name  string
			link  string
			opts  []ams.JoinOption
			close int
			code  wire.Code
		}{
			{"no credential", link, nil, 4002, wire.CodeInvalidCredential},
			{"bad credential", link, []ams.JoinOption{ams.WithCredential("ams_sk_" + strings.Repeat("A", 43))}, 4002, wire.CodeInvalidCredential},
			{"unknown alias", otherAlias, []ams.JoinOption{ams.WithCredential(a.Credential)}, 4005, wire.CodeConversationNotFound},
			{"bad name", link, []ams.JoinOption{ams.WithCredential(a.Credential), ams.WithStreamName("no spaces")}, 4400, wire.CodeInvalidStreamNameHeader},
		} {
			_, err := ams.Join(ctx, tc.link, opts(via, tc.opts...)...)
			var e *ams.Error
			if !errors.As(err, &e) || e.Close != tc.close || e.Code != tc.code {
				t.Errorf("%s: %v (%#v), want %d %s", tc.name, err, e, tc.close, tc.code)
			}
		}
		if _, err := ams.Join(ctx, "http://example.com/not/a/link"); !errors.Is(err, ams.ErrInvalidMagicLink) {
			t.Errorf("bad link: %v", err)
		}
	})
}

// TestDisplacedDoesNotReconnect: a session displaced by another of the
// same account and name ends with 4001 stream_displaced and does not
// reconnect (spec 5.3 rule; C44).
func TestDisplacedDoesNotReconnect(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, via []ams.JoinOption) {
		a := account(t, baseURL, "disp")
		link := conversation(t, a)
		first := join(t, a, link, opts(via, ams.WithStreamName("same"))...)
		second := join(t, a, link, opts(via, ams.WithStreamName("same"))...)
		if !second.Joined().Resumed || second.Joined().StreamID != first.Joined().StreamID {
			t.Errorf("second joined = %+v", second.Joined())
		}
		var got []wire.Event
		for ev := range first.Events() {
			got = append(got, ev)
		}
		last, ok := got[len(got)-1].(ams.Closed)
		if !ok || last.Code != 4001 || last.Reason != wire.CodeStreamDisplaced {
			t.Fatalf("events = %v, want Closed 4001 stream_displaced last", got)
		}
		for _, ev := range got {
			if _, re := ev.(ams.Reconnecting); re {
				t.Errorf("displaced session tried to reconnect: %v", got)
			}
		}
		if !ams.IsCode(first.Err(), wire.CodeStreamDisplaced) {
			t.Errorf("Err = %v", first.Err())
		}
		if err := second.Send(t.Context(), "still here"); err != nil {
			t.Errorf("the new session: %v", err)
		}
	})
}

// TestRevokedLinkCloses: revoking the link closes its sessions with 4001
// link_revoked, for good (C15).
func TestRevokedLinkCloses(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, via []ams.JoinOption) {
		a := account(t, baseURL, "rev")
		conv, err := a.CreateConversation(t.Context(), ams.ConversationOptions{Alias: "r"})
		if err != nil {
			t.Fatal(err)
		}
		guest, err := a.CreateLink(t.Context(), "r", ams.LinkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := join(t, a, guest.MagicLink, via...)
		keep := join(t, a, conv.MagicLink, via...)
		if _, err := a.RevokeLink(t.Context(), "r", guest.LinkID); err != nil {
			t.Fatal(err)
		}
		c := waitFor[ams.Closed](t, s, nil)
		if c.Code != 4001 || c.Reason != wire.CodeLinkRevoked {
			t.Errorf("closed = %+v", c)
		}
		if err := keep.Ping(t.Context()); err != nil {
			t.Errorf("session of the other link: %v", err)
		}
	})
}

// TestObserver: an observer needs no credential, reads every stream and
// cannot write (C87, C88).
func TestObserver(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, via []ams.JoinOption) {
		a := account(t, baseURL, "obs")
		link := conversation(t, a)
		obs, err := ams.Join(t.Context(), link, opts(via, ams.WithObserve())...)
		if err != nil {
			t.Fatal(err)
		}
		defer obs.Close()
		if j := obs.Joined(); !j.Observer || j.StreamID != "" {
			t.Errorf("observer joined = %+v", j)
		}
		w := join(t, a, link, opts(via, ams.WithStreamName("w"))...)
		if err := w.Send(t.Context(), "seen"); err != nil {
			t.Fatal(err)
		}
		if tok := waitFor[wire.Token](t, obs, nil); tok.Data != "seen" {
			t.Errorf("observer got %+v", tok)
		}
		if err := obs.Send(t.Context(), "x"); !errors.Is(err, ams.ErrReadOnly) {
			t.Errorf("observer send: %v", err)
		}
	})
}

// TestBatch: SendMany with batching sends arrays of frames and the reader
// decodes batched messages; order and content are kept (C48).
func TestBatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := account(t, baseURL, "batch")
	link := conversation(t, a)
	r := join(t, a, link, ams.WithStreamName("r"), ams.WithBatch())
	w := join(t, a, link, ams.WithStreamName("w"), ams.WithBatch())
	waitFor[wire.StreamJoined](t, r, nil)
	var want []string
	for i := range 600 {
		want = append(want, fmt.Sprint("t", i))
	}
	if err := w.SendMany(ctx, want...); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < len(want) {
		got = append(got, waitFor[wire.Token](t, r, nil).Data)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
}

// TestReconnectResume cuts the reader's TCP connection mid-stream (no
// close frame): the session reconnects through the same address with its
// cursor and the application gets every token once, in order (C53).
// Then the connection is held down while the writer finishes and leaves:
// after the reconnect the reader gets the missed tokens, then stream_left,
// each once.
func TestReconnectResume(t *testing.T) {
	t.Parallel()
	transports(t, func(t *testing.T, via []ams.JoinOption) {
		ctx := t.Context()
		wc, rc := account(t, baseURL, "rw"), account(t, baseURL, "rr")
		link := conversation(t, wc)

		target := hostPort(t, baseURL)
		var readerVia []ams.JoinOption
		if len(via) > 0 {
			target = grpcAddr
		}
		p := newProxy(t, target)
		readerLink := link
		if len(via) > 0 {
			readerVia = []ams.JoinOption{ams.WithGRPC(p.addr())}
		} else {
			readerLink = strings.Replace(link, hostPort(t, baseURL), p.addr(), 1)
		}
		fast := ams.WithReconnect(ams.ReconnectPolicy{MinDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxAttempts: 1000})
		r := join(t, rc, readerLink, opts(readerVia, ams.WithStreamName("reader"), fast)...)
		w := join(t, wc, link, opts(via, ams.WithStreamName("writer"))...)
		waitFor[wire.StreamJoined](t, r, nil)

		const first, cutAt, n, phase2 = 200, 50, 300, 100
		send := func(from, to int) {
			t.Helper()
			for i := from; i <= to; i++ {
				if err := w.Send(ctx, fmt.Sprint("tok-", i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		send(1, first)

		var reconnects, reconnected int
		next := 1
		check := func(tok wire.Token) {
			t.Helper()
			if want := fmt.Sprint("tok-", next); tok.Data != want || tok.Seq != uint64(next) {
				t.Fatalf("got %q seq %d, want %q seq %d", tok.Data, tok.Seq, want, next)
			}
			next++
		}
		deadline := time.After(60 * time.Second)
	phase1:
		for next <= n {
			select {
			case ev := <-r.Events():
				switch ev := ev.(type) {
				case wire.Token:
					check(ev)
					if next == cutAt+1 {
						// Cut mid-stream and stay down while more is sent:
						// only a resume can bring it.
						p.cut(true)
						send(first+1, n)
						p.release()
					}
				case ams.Reconnecting:
					reconnects++
				case ams.Reconnected:
					reconnected++
				case wire.ReplayGap, wire.StreamLeft, ams.Closed:
					t.Fatalf("unexpected %#v", ev)
				}
			case <-deadline:
				break phase1
			}
		}
		if next != n+1 || reconnected == 0 || reconnects == 0 {
			t.Fatalf("phase 1: got %d tokens, %d reconnecting, %d reconnected", next-1, reconnects, reconnected)
		}

		// Phase 2: down while the writer sends more and leaves.
		p.cut(true)
		send(n+1, n+phase2)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		p.release()
		lefts := 0
		for lefts == 0 {
			select {
			case ev := <-r.Events():
				switch ev := ev.(type) {
				case wire.Token:
					check(ev)
				case wire.StreamLeft:
					lefts++
					if ev.StreamName != "writer" {
						t.Errorf("stream_left = %+v", ev)
					}
				case wire.ReplayGap, ams.Closed:
					t.Fatalf("unexpected %#v", ev)
				}
			case <-deadline:
				t.Fatalf("phase 2: got %d tokens, no stream_left", next-1)
			}
		}
		if next != n+phase2+1 {
			t.Errorf("phase 2: got %d tokens, want %d", next-1, n+phase2)
		}
		// Nothing more about the writer: a ping's pong comes next.
		if err := r.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		for {
			ev := <-r.Events()
			if _, ok := ev.(wire.Pong); ok {
				break
			}
			switch ev.(type) {
			case wire.Token, wire.StreamLeft, wire.StreamJoined:
				t.Fatalf("after stream_left: %#v", ev)
			}
		}
	})
}

// TestReconnectAfterCrash kills the whole system (SIGKILL) while tokens
// flow and starts it again on the same port and data: both sessions
// reconnect by themselves; the reader gets a gap-free, duplicate-free run
// of seqs up to the writer's last token.
func TestReconnectAfterCrash(t *testing.T) {
	t.Parallel()
	sys := amstest.Start(t)
	ctx := t.Context()
	wc, rc := account(t, sys.URL, "cw"), account(t, sys.URL, "cr")
	link := conversation(t, wc)
	fast := ams.WithReconnect(ams.ReconnectPolicy{MinDelay: 50 * time.Millisecond, MaxDelay: 500 * time.Millisecond, MaxAttempts: 200})
	r := join(t, rc, link, ams.WithStreamName("reader"), fast)
	w := join(t, wc, link, ams.WithStreamName("writer"), fast)
	waitFor[wire.StreamJoined](t, r, nil)

	for i := 1; i <= 100; i++ {
		if err := w.Send(ctx, fmt.Sprint("before-", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Crash once the reader has seen part of it.
	var last uint64
	for last < 30 {
		last = waitFor[wire.Token](t, r, nil).Seq
	}
	sys.Kill()
	if err := sys.Restart(); err != nil {
		t.Fatal(err)
	}
	// Send blocks until the writer is back.
	if err := w.Send(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev := <-r.Events():
			switch ev := ev.(type) {
			case wire.Token:
				if ev.Seq != last+1 {
					t.Fatalf("seq %d after %d (%q)", ev.Seq, last, ev.Data)
				}
				last = ev.Seq
				if ev.Data == "after" {
					return
				}
			case wire.ReplayGap:
				t.Fatalf("replay gap %+v", ev)
			case ams.Closed:
				t.Fatalf("closed %+v", ev)
			}
		case <-timeout:
			t.Fatalf("no token 'after' within 60 s; last seq %d", last)
		}
	}
}

func hostPort(t testing.TB, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// proxy forwards TCP connections to a target and can cut them all at
// once, like a network failure: no close frame reaches either side.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	held  bool
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut(false)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.held {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(up, c); _ = up.Close(); _ = c.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, up); _ = up.Close(); _ = c.Close() })
	}
}

// cut drops every connection; with hold, new ones are refused until
// release.
func (p *proxy) cut(hold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = hold
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST: the peer learns nothing graceful
		}
		_ = c.Close()
	}
	p.conns = nil
}

func (p *proxy) release() {
	p.mu.Lock()
	p.held = false
	p.mu.Unlock()
}

// TestSlowConsumerResumes: an application that stops reading makes the
// session stop reading the socket; the server closes it with 4290
// slow_consumer (C46); the session reconnects with its cursor and the
// application still gets every token once, in order.
func TestSlowConsumerResumes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := account(t, baseURL, "slow")
	link := conversation(t, a)
	fast := ams.WithReconnect(ams.ReconnectPolicy{MinDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxAttempts: 100})
	r := join(t, a, link, ams.WithStreamName("r"), ams.WithEventBuffer(1), fast)
	w := join(t, a, link, ams.WithStreamName("w"))
	waitFor[wire.StreamJoined](t, r, nil)

	// Far more than the server's send queue (8 MiB) and the socket buffers.
	const n = 600
	pad := strings.Repeat("x", 60<<10)
	for i := 1; i <= n; i++ {
		if err := w.Send(ctx, fmt.Sprint(i, pad)); err != nil {
			t.Fatal(err)
		}
	}
	slow := 0
	next := 1
	var log []string // what happened, for a failure
	start := time.Now()
	for next <= n {
		var ev wire.Event
		select {
		case ev = <-r.Events():
		case <-time.After(60 * time.Second):
			t.Fatalf("no event within 60 s after token %d; events:\n%s", next-1, strings.Join(log, "\n"))
		}
		if _, tok := ev.(wire.Token); !tok {
			log = append(log, fmt.Sprintf("%v %T %+v (after token %d)", time.Since(start).Round(time.Millisecond), ev, ev, next-1))
		}
		switch ev := ev.(type) {
		case wire.Token:
			if want := fmt.Sprint(next, pad); ev.Data != want || ev.Seq != uint64(next) {
				t.Fatalf("token seq %d (%d bytes), want seq %d", ev.Seq, len(ev.Data), next)
			}
			next++
		case ams.Reconnecting:
			if ev.Code == wire.CloseSlowConsumer && ev.Attempt == 1 {
				slow++
			}
		case wire.ReplayGap:
			t.Fatalf("replay gap %+v", ev)
		case ams.Closed:
			t.Fatalf("closed %+v; events:\n%s", ev, strings.Join(log, "\n"))
		}
	}
	if slow == 0 {
		t.Errorf("the server never closed the reader with 4290")
	}
}
