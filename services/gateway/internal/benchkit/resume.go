package benchkit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amsrouter/ams/services/internal/config"
)

// ResumeParams configures the resume scenario.
type ResumeParams struct {
	// Reps is the number of resumes measured; Missed the tokens missed
	// before each.
	Reps, Missed int
}

type resumeFlags struct{ reps, missed int }

func (f *resumeFlags) register(fs *config.FlagSet) {
	fs.Int(&f.reps, "reps", 0, "resumes measured (default 100; -short 20)")
	fs.Int(&f.missed, "missed", 0, "tokens missed before each resume (default 1000)")
}

func (f *resumeFlags) params(sc Scale) ResumeParams {
	return ResumeParams{Reps: orInt(f.reps, sc.pick(100, 20, 3)), Missed: orInt(f.missed, sc.pick(1000, 1000, 100))}
}

// Resume measures, over Reps repetitions, the time from a reader's
// reconnect (dial with its cursor) to caught up, after its connection was
// lost and the writer wrote Missed tokens: writer on one gateway, reader
// on the other. The baseline is JetStream itself: a new NATS connection
// and an ordered consumer from the same position reading the same number
// of messages.
func Resume(ctx context.Context, env *Env, p ResumeParams) error {
	sys, err := env.StartSystem(ctx, 2)
	if err != nil {
		return err
	}
	defer sys.Close()
	gw0, gw1 := sys.Gateways[0], sys.Gateways[1]
	load := env.Load()

	ams, joinedAt, err := resumeAMS(ctx, env, sys, gw0, gw1, p)
	if err != nil {
		return err
	}
	raw, err := resumeJetStream(ctx, env, sys.NATSURL, p)
	if err != nil {
		return err
	}

	t := &Table{Title: fmt.Sprintf("resume: reconnect → caught up after %d missed tokens, %d repetitions (writer on gateway 1, reader on gateway 2)", p.Missed, p.Reps),
		Header: []string{"figure", "raw JetStream (new connection + ordered consumer)", "AMS (2 gateways)", "vs raw"}}
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50 ms", 0.5}, {"p90 ms", 0.9}, {"p99 ms", 0.99}} {
		t.Row(q.name, ms(Percentile(raw, q.p)), ms(Percentile(ams.times, q.p)), ratio(float64(Percentile(ams.times, q.p)), float64(Percentile(raw, q.p))))
	}
	t.Row("max ms", ms(Percentile(raw, 1)), ms(Percentile(ams.times, 1)), "")
	t.Row("of which dial → joined, p50 / p99 ms", "–", ms(Percentile(joinedAt, 0.5))+" / "+ms(Percentile(joinedAt, 0.99)), "")
	t.Row("lost / dup / order / app dup", "0 / 0 / 0 / 0", fmt.Sprintf("%d / %d / %d / %d", ams.totals.Lost, ams.totals.Dups, ams.totals.OrderViolations, ams.totals.AppDups), "")
	t.Note("load average before: %s, after: %s", load, env.Load())
	t.Print(env.Out)

	p99 := Percentile(ams.times, 0.99)
	env.Target(Target{
		Name:       "resume",
		Goal:       "resuming 1,000 missed tokens < 300 ms at p99",
		Measured:   fmt.Sprintf("p99 %s ms, p50 %s ms over %d resumes of %d tokens (raw JetStream p99 %s ms)", ms(p99), ms(Percentile(ams.times, 0.5)), p.Reps, p.Missed, ms(Percentile(raw, 0.99))),
		Met:        p99 < 300*time.Millisecond && ams.totals.Clean(),
		Undersized: p.Missed < 1000,
	})
	return nil
}

type resumeResult struct {
	times  []time.Duration
	totals Totals
}

func resumeAMS(ctx context.Context, env *Env, sys *System, gw0, gw1 *Gateway, p ResumeParams) (*resumeResult, []time.Duration, error) {
	id := randomHex(3)
	wa, err := env.API.CreateAccount(ctx, gw0.URL, "rw"+id)
	if err != nil {
		return nil, nil, err
	}
	ra, err := env.API.CreateAccount(ctx, gw1.URL, "rr"+id)
	if err != nil {
		return nil, nil, err
	}
	conv, err := env.API.Mint(ctx, gw0.URL, wa, "resume")
	if err != nil {
		return nil, nil, err
	}
	empty := ""
	w, wj, err := dialJoined(ctx, DialOptions{URL: conv.ConnectURL(gw0.URL), Credential: wa.Credential, StreamName: "writer", Subscribe: &empty, Batch: true})
	if err != nil {
		return nil, nil, fmt.Errorf("writer: %w", err)
	}
	defer w.Close()
	go func() {
		for {
			if _, err := w.ReadMessage(); err != nil {
				return
			}
		}
	}()
	sid := wj.StreamID
	readerOpts := DialOptions{URL: conv.ConnectURL(gw1.URL), Credential: ra.Credential, StreamName: "reader", Batch: true}
	r, _, err := dialJoined(ctx, readerOpts)
	if err != nil {
		return nil, nil, fmt.Errorf("reader: %w", err)
	}

	var tally Tally
	tally.Start(0)
	res := &resumeResult{}
	var joinedAt []time.Duration
	buf := make([]byte, 0, 64<<10)
	data := make([]byte, 0, 64)
	var k int64
	for rep := range p.Reps {
		// The reader's connection is lost; the writer writes on.
		_ = r.Abort()
		target := k + int64(p.Missed)
		for k < target {
			n := min(target-k, maxBatch)
			buf = append(buf[:0], '[')
			for i := range n {
				if i > 0 {
					buf = append(buf, ',')
				}
				data = AppendData(data[:0], 0, k+1+i, time.Now().UnixNano(), 64)
				buf = AppendTokenFrame(buf, data)
			}
			buf = append(buf, ']')
			if err := w.WriteText(buf); err != nil {
				return nil, nil, fmt.Errorf("writer: %w", err)
			}
			k += n
		}
		if err := waitFor(ctx, 30*time.Second, func() bool {
			m, err := env.API.LastSeqs(ctx, gw0.URL, conv)
			return err == nil && m["writer"] >= target
		}); err != nil {
			return nil, nil, fmt.Errorf("the writer's tokens were not all accepted: %w", err)
		}

		// Reconnect with the cursor and read until caught up.
		o := readerOpts
		o.Resume = fmt.Sprintf("%s:%d", sid, tally.Cursor)
		start := time.Now()
		var j Joined
		r, j, err = dialJoined(ctx, o)
		if err != nil {
			return nil, nil, fmt.Errorf("resume %d: %w", rep, err)
		}
		joinedAt = append(joinedAt, time.Since(start))
		_ = j
		_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
		for tally.Cursor < target {
			msg, err := r.ReadMessage()
			if err != nil {
				return nil, nil, fmt.Errorf("resume %d: at %d of %d: %w", rep, tally.Cursor, target, err)
			}
			EachToken(msg, func(f []byte, tok *Token) bool {
				if tok == nil {
					if string(FrameType(f)) == "replay_gap" {
						var g ReplayGap
						if decodeFrame(f, &g) == nil && g.StreamID == sid {
							tally.Gap(g.RequestedSeq, g.FirstAvailableSeq)
						}
					}
					return true
				}
				if string(tok.StreamID) != sid {
					return true
				}
				_, kk, _, _ := ParseData(tok.Data)
				tally.Observe(tok.Seq, kk)
				return true
			})
		}
		res.times = append(res.times, time.Since(start))
		_ = r.SetReadDeadline(time.Time{})
		if (rep+1)%max(1, p.Reps/10) == 0 {
			env.Progress.Printf("resume: %d of %d, last %s ms", rep+1, p.Reps, ms(res.times[len(res.times)-1]))
		}
	}
	_ = r.Close()
	res.totals.Add(&tally, k)
	return res, joinedAt, nil
}

// resumeJetStream is the baseline: messages published to a JetStream
// stream, then read back from a sequence by a fresh connection's ordered
// consumer.
func resumeJetStream(ctx context.Context, env *Env, url string, p ResumeParams) ([]time.Duration, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	name := "BENCHRESUME" + randomHex(3)
	subj := "benchresume." + name
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("create stream: %w", err)
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), name)
	data := make([]byte, 0, 64)
	var times []time.Duration
	var seq uint64
	for rep := range p.Reps {
		for i := 0; i < p.Missed; i++ {
			data = AppendData(data[:0], 0, int64(seq)+int64(i)+1, time.Now().UnixNano(), 64)
			if _, err := js.PublishAsync(subj, data); err != nil {
				return nil, fmt.Errorf("publish: %w", err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			return nil, errors.New("jetstream publish acks did not arrive")
		}
		start := time.Now()
		got, err := readFrom(ctx, url, name, subj, seq+1, p.Missed)
		if err != nil {
			return nil, fmt.Errorf("resume %d: %w", rep, err)
		}
		times = append(times, time.Since(start))
		_ = got
		seq += uint64(p.Missed)
	}
	env.Progress.Printf("resume: raw JetStream p99 %s ms", ms(Percentile(times, 0.99)))
	return times, nil
}

// readFrom connects, reads n messages of subj from stream sequence seq
// with an ordered consumer, and disconnects.
func readFrom(ctx context.Context, url, stream, subj string, seq uint64, n int) (int, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq})
	if err != nil {
		return 0, err
	}
	it, err := c.Messages(jetstream.PullMaxMessages(n))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	got := 0
	for got < n {
		if _, err := it.Next(); err != nil {
			return got, err
		}
		got++
	}
	return got, nil
}
