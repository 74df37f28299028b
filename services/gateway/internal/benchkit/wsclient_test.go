package benchkit

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// A batching connection's first message may carry a resume's replayed
// tokens after joined: ReadJoined must leave them for ReadMessage. The kit
// used to drop them, and a resumed reader then counted them lost.
func TestReadJoinedKeepsTheFramesAfterIt(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	msgs := []string{
		`[{"type":"joined","last_seq":7,"peers":[]},{"type":"token","stream_id":"s","data":"a","seq":401},{"type":"token","stream_id":"s","data":"b","seq":402}]`,
		`[{"type":"token","stream_id":"s","data":"c","seq":403}]`,
		`{"type":"joined","last_seq":9,"peers":[]}`,
	}
	go func() {
		for _, m := range msgs {
			if err := ws.WriteFrame(server, ws.NewTextFrame([]byte(m))); err != nil {
				return
			}
		}
	}()
	c := &WSConn{nc: client, br: bufio.NewReader(client), bw: bufio.NewWriter(client)}
	j, err := c.ReadJoined(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if j.LastSeq != 7 {
		t.Fatalf("joined last_seq %d, want 7", j.LastSeq)
	}
	var seqs []int64
	for range 2 {
		m, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		EachFrame(m, func(f []byte) bool {
			_, seq, _, ok := ParseToken(f)
			if !ok {
				t.Errorf("not a token: %s", f)
			}
			seqs = append(seqs, seq)
			return true
		})
	}
	if len(seqs) != 3 || seqs[0] != 401 || seqs[1] != 402 || seqs[2] != 403 {
		t.Fatalf("tokens after joined: %v, want [401 402 403]", seqs)
	}
	// Nothing was left behind twice: the next message is the next joined.
	if j, err = c.ReadJoined(5 * time.Second); err != nil || j.LastSeq != 9 {
		t.Fatalf("second joined: %+v, %v", j, err)
	}
}
