// Package opse2e tests what operators see of a running system: the
// Prometheus metrics of /metrics after real traffic and the traces of
// tokens across gateways.
package opse2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }

// wait bounds every wait for a frame or a metric.
const wait = 15 * time.Second

// room is a conversation minted for a test, with its magic link through
// gateway 0.
type room struct {
	sys  *gwtest.System
	link string
}

func newRoom(t *testing.T, sys *gwtest.System, cred, ns, alias string) *room {
	t.Helper()
	m := sys.Mint(t, 0, cred, ns, `{"alias":"`+alias+`"}`)
	return &room{sys: sys, link: m["magic_link"].(string)}
}

// linkAt is the magic link pointed at gateway i.
func (r *room) linkAt(i int) string {
	return r.sys.URL(i) + strings.TrimPrefix(r.link, r.sys.URL(0))
}

// wsClient is a WebSocket connection of a test.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

// dial connects to the room on gateway i as the account of cred with a
// stream of the given name; header adds request headers.
func (r *room) dial(t *testing.T, i int, cred, name string, header map[string]string) *wsClient {
	t.Helper()
	link := r.linkAt(i)
	q := strings.Index(link, "?")
	u := strings.Replace(link[:q], "http://", "ws://", 1) + "/connect" + link[q:]
	h := http.Header{}
	h.Set("Authorization", "Bearer "+cred)
	h.Set("X-AMS-Stream-Name", name)
	for k, v := range header {
		h.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial %s on gateway %d: %v", name, i, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: t, c: c}
}

// send writes one text frame.
func (w *wsClient) send(frame string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// until reads frames until one starts with prefix and returns it.
func (w *wsClient) until(prefix string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		_, m, err := w.c.Read(ctx)
		if err != nil {
			w.t.Fatalf("waiting for %s: %v", prefix, err)
		}
		if strings.HasPrefix(string(m), prefix) {
			return string(m)
		}
	}
}

// close ends the connection with a normal close.
func (w *wsClient) close() { _ = w.c.Close(websocket.StatusNormalClosure, "") }

// member returns a string member of a JSON frame (the frames are flat
// enough for this).
func member(t *testing.T, frame, name string) string {
	t.Helper()
	k := `"` + name + `":"`
	i := strings.Index(frame, k)
	if i < 0 {
		t.Fatalf("no %s in %s", name, frame)
	}
	rest := frame[i+len(k):]
	return rest[:strings.IndexByte(rest, '"')]
}

// scrape reads base/metrics and parses the Prometheus text format.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", base, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("scrape %s: Content-Type %q, want the text format 0.0.4", base, ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatalf("parse scrape of %s: %v", base, err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// every pair of labels ("k=v"), summed over the samples that match; for a
// histogram, its sample count. ok is false when no sample matches.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for _, l := range labels {
			k, want, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == want {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v, ok
}

// eventually polls check until it returns "" or the wait is over, then
// fails with its last complaint.
func eventually(t *testing.T, check func() string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		<-tick.C
	}
}

// expectAtLeast is a check that family name (with labels) is at least min.
func expectAtLeast(fams map[string]*dto.MetricFamily, min float64, name string, labels ...string) string {
	v, ok := value(fams, name, labels...)
	if !ok {
		return fmt.Sprintf("%s%v: no sample", name, labels)
	}
	if v < min {
		return fmt.Sprintf("%s%v = %v, want at least %v", name, labels, v, min)
	}
	return ""
}

// drain discards a response body.
func drain(r io.ReadCloser) {
	_, _ = io.Copy(io.Discard, r)
	_ = r.Close()
}
