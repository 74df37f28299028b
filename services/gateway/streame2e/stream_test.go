package streame2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }

// participant creates an account and returns its credential.
func account(t *testing.T, sys *gwtest.System, ns string) (string, string) {
	return sys.CreateAccount(t, 0, ns)
}

func TestBasicExchange(t *testing.T) {
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := account(t, sys, "alice")
	accB, credB := account(t, sys, "bob")
	conv := sys.Mint(t, 0, credA, "alice", `{"alias":"room"}`)
	link := conv["magic_link"].(string)

	t0 := time.Now()
	a := dial(t, link, dialOpts{credential: credA, streamName: "a"})
	ja := a.expect("joined")
	if ja["resumed"] != nil || len(ja["peers"].([]any)) != 0 {
		t.Fatalf("joined %v", ja)
	}
	b := dial(t, link, dialOpts{credential: credB, streamName: "b", metadata: `{"role": "critic"}`})
	jb := b.expect("joined")
	if peers := jb["peers"].([]any); len(peers) != 1 || peers[0].(map[string]any)["stream_name"] != "a" {
		t.Fatalf("b peers %v", jb["peers"])
	}
	sj := a.expect("stream_joined")
	if sj["stream_name"] != "b" || sj["owner_account_id"] != accB {
		t.Fatalf("stream_joined %v", sj)
	}
	for i := 0; i < 5; i++ {
		a.token(fmt.Sprintf("a%d", i))
		b.token(fmt.Sprintf("b%d", i))
	}
	for i := 0; i < 5; i++ {
		ta := b.expect("token")
		if ta["data"] != fmt.Sprintf("a%d", i) || ta["seq"].(float64) != float64(i+1) {
			t.Fatalf("b got %v", ta)
		}
		tb := a.expect("token")
		if tb["data"] != fmt.Sprintf("b%d", i) {
			t.Fatalf("a got %v", tb)
		}
	}
	t.Logf("exchange done at %s", time.Since(t0))
	b.close()
	sl := a.until("stream_left", 10*time.Second)
	if sl["stream_name"] != "b" || sl["last_seq"].(float64) != 5 {
		t.Fatalf("stream_left %v", sl)
	}
	t.Logf("left at %s", time.Since(t0))
}
