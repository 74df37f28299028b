// Package viewere2e tests the live browser view (spec 3.7, C89) end to end:
// a real system (gwtest), real WebSocket participants, and Debian's
// headless Chromium driven over the DevTools protocol. The Chromium tests
// fail, never skip, when chromium is missing: .ci/run installs it.
package viewere2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }

// streamText is the expression yielding the text shown for the stream
// named name (null while there is no such stream).
func streamText(name string) string {
	return fmt.Sprintf(`(() => { const s = [...document.querySelectorAll("section.stream")].find((e) => e.querySelector(".name").textContent === %q); return s ? s.querySelector(".text").textContent : null; })()`, name)
}

// streamField is the text of one field (a class: state, owner, metadata,
// identity, seq) of the stream named name.
func streamField(name, field string) string {
	return fmt.Sprintf(`(() => { const s = [...document.querySelectorAll("section.stream")].find((e) => e.querySelector(".name").textContent === %q); return s ? s.querySelector(".%s").textContent : null; })()`, name, field)
}

const statusExpr = `document.getElementById("status").dataset.state`

// C89, C87: the magic link opened in headless Chromium shows the
// conversation live through an observer connection: tokens sent before
// (replayed) and after the page opened, exactly as sent and as text (HTML
// in a token stays text), metadata, identity and join / leave; the
// observer appears to no participant; a reload and a network blip lose
// nothing. A screenshot is written as an artifact.
func TestC89ViewerShowsStreamsLive(t *testing.T) {
	t.Parallel()
	b := startBrowser(t)
	sys := gwtest.Start(t, gwtest.Options{})
	accA, cred := sys.CreateAccount(t, 0, "alice")
	conv := sys.Mint(t, 0, cred, "alice", `{"alias":"room"}`)
	link := conv["magic_link"].(string)
	// The browser goes through a relay, so that the test can cut it off.
	px := startProxy(t, strings.TrimPrefix(sys.URL(0), "http://"))
	pageURL := px.URL() + strings.TrimPrefix(link, sys.URL(0))

	w, _ := join(t, link, cred, "writer", map[string]string{"X-AMS-Stream-Metadata": `{"role":"writer","n":1}`})
	sent := []string{"Hello, ", "wörld! "} // before the page opens: replayed
	w.send(sent...)

	b.navigate(pageURL)
	var status int
	if err := json.Unmarshal(b.eval(`performance.getEntriesByType("navigation")[0].responseStatus`), &status); err != nil || status != http.StatusOK {
		t.Fatalf("page status %d (%v), want 200: %s", status, err, b.evalString(`document.body.textContent`))
	}
	b.waitFor("the observer to join", statusExpr, "live")
	if got := b.evalString(`document.getElementById("title").textContent`); got != "alice / room" {
		t.Errorf("title %q, want alice / room", got)
	}
	if got := b.evalString(`document.getElementById("conversation").textContent`); got != conv["conversation_id"] {
		t.Errorf("conversation %q, want %v", got, conv["conversation_id"])
	}

	// C87: the page's observer appears to nobody. A new participant's
	// peers list only the writer; the writer's next frame announces the
	// reader, not the observer; inspect lists two streams.
	r, jr := join(t, link, cred, "reader", map[string]string{"X-AMS-Peer-Identity": `{"kind":"human","client":"viewer-test"}`})
	if got := fmt.Sprint(peerNames(jr)); got != "[writer]" {
		t.Errorf("reader's peers %s, want [writer]", got)
	}
	if f := w.next(); f["type"] != "stream_joined" || f["stream_name"] != "reader" {
		t.Errorf("writer's next frame %v, want stream_joined of reader", f)
	}
	insp := gwtest.DoResponse(t, http.MethodGet, sys.URL(0)+"/v1/alice/conversations/room?t="+gwtest.LinkToken(t, link), nil, "")
	if n := len(insp.JSON(t)["streams"].([]any)); n != 2 {
		t.Errorf("inspect lists %d streams, want 2: %s", n, insp.Body)
	}

	// Live tokens, Unicode and HTML-looking ones included.
	live := []string{"naïve café — ", "日本語 ", "🚀✨ ", "<b>x</b>", ` &amp; <img src=x onerror="alert(1)">`, "\nline two\t|"}
	w.send(live...)
	sent = append(sent, live...)
	want := strings.Join(sent, "")
	b.waitFor("the writer's text", streamText("writer"), want)
	if got := b.evalString(streamText("writer")); got != want {
		t.Fatalf("page text %q, want %q", got, want)
	}
	if n := b.eval(`document.querySelectorAll("section.stream .text *, section.stream b, section.stream img").length`); string(n) != "0" {
		t.Errorf("%s elements were made from payloads, want 0", n)
	}
	for field, want := range map[string]string{
		"metadata": `{"role":"writer","n":1}`, "owner": accA, "state": "live", "seq": fmt.Sprintf("seq %d", len(sent)),
	} {
		if got := b.evalString(streamField("writer", field)); got != want {
			t.Errorf("writer's %s %q, want %q", field, got, want)
		}
	}
	r.send("reply")
	b.waitFor("the reader's text", streamText("reader"), "reply")
	if got := b.evalString(streamField("reader", "identity")); got != "human · viewer-test" {
		t.Errorf("reader's identity %q, want %q", got, "human · viewer-test")
	}
	// The policy admitted everything the page does.
	if logs := b.Logs(); strings.Contains(logs, "Content Security Policy") {
		t.Errorf("the page broke its Content-Security-Policy:\n%s", logs)
	}

	png := b.screenshot()
	t.Logf("screenshot: %s", writeArtifact(t, "viewer-C89.png", png))

	// Leave.
	r.close()
	b.waitFor("the reader to leave", streamField("reader", "state"), "left")

	// A reload replays what is retained of the live streams.
	b.reload()
	b.waitFor("the writer's text after a reload", streamText("writer"), want)
	b.waitFor("the observer to join again", statusExpr, "live")

	// A network blip: the relay cuts the page off and refuses it while
	// the writer goes on; back, the page resumes from its cursor.
	px.setDown(true)
	px.cut()
	b.waitFor("the page to notice the cut", statusExpr+` !== "live"`, true)
	more := []string{" after", " the", " blip"}
	w.send(more...)
	px.setDown(false)
	want += strings.Join(more, "")
	b.waitFor("the writer's text after the blip", streamText("writer"), want)
	b.waitFor("the observer to resume", statusExpr, "live")
	if got := b.evalString(streamField("writer", "seq")); got != fmt.Sprintf("seq %d", len(sent)+len(more)) {
		t.Errorf("writer's seq after the blip %q, want seq %d", got, len(sent)+len(more))
	}
}
