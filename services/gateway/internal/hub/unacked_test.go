package hub

import (
	"bytes"
	"fmt"
	"testing"
)

// held lists the log's frames, oldest first.
func held(u *unacked) []string {
	var out []string
	_ = u.each(func(f []byte, seq uint64) error {
		out = append(out, fmt.Sprintf("%d=%s", seq, f))
		return nil
	})
	return out
}

func TestUnackedTrimAndReuse(t *testing.T) {
	var u unacked
	for seq := uint64(1); seq <= 5; seq++ {
		u.commit(fmt.Appendf(u.begin(), "f%d", seq), seq, 0)
	}
	if got := string(u.newest()); got != "f5" {
		t.Fatalf("newest = %q", got)
	}
	u.trim(3, 1, false)
	if got := fmt.Sprint(held(&u)); got != "[4=f4 5=f5]" {
		t.Fatalf("after trim(3): %s", got)
	}
	if u.len() != 2 || u.size() != 4 {
		t.Fatalf("len %d size %d, want 2 and 4", u.len(), u.size())
	}
	u.trim(5, 1, false)
	if u.len() != 0 || u.size() != 0 || len(u.buf) != 0 {
		t.Fatalf("after trim(5): len %d size %d buf %d", u.len(), u.size(), len(u.buf))
	}
	// The emptied buffer is reused: no allocation for the next frames.
	allocs := testing.AllocsPerRun(100, func() {
		u.commit(append(u.begin(), "0123456789"...), 6, 0)
		u.trim(6, 1, false)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per logged and echoed frame, want 0", allocs)
	}
}

// The echo lags while frames keep coming: the log compacts instead of
// growing, and keeps the unechoed frames intact.
func TestUnackedCompacts(t *testing.T) {
	var u unacked
	const lag = 10
	for seq := uint64(1); seq <= 10_000; seq++ {
		u.commit(fmt.Appendf(u.begin(), "frame-%05d", seq), seq, 0)
		if seq > lag {
			u.trim(seq-lag, 1, false)
		}
	}
	if u.len() != lag {
		t.Fatalf("len %d, want %d", u.len(), lag)
	}
	if len(u.buf) > 200*len("frame-00000") {
		t.Errorf("buffer holds %d bytes for %d frames: not compacted", len(u.buf), lag)
	}
	want := 9991
	_ = u.each(func(f []byte, seq uint64) error {
		if seq != uint64(want) || !bytes.Equal(f, fmt.Appendf(nil, "frame-%05d", want)) {
			t.Fatalf("frame %d = %q", seq, f)
		}
		want++
		return nil
	})
}

// Past maxUnacked a forced trim drops the oldest frames; dropNewest and
// dropFrom take back what was not taken.
func TestUnackedBounds(t *testing.T) {
	var u unacked
	big := bytes.Repeat([]byte("x"), 64<<10)
	for seq := uint64(1); seq <= 20; seq++ {
		u.add(big, seq, 0)
	}
	u.trim(0, 1, false)
	if u.len() != 20 {
		t.Fatalf("unforced trim dropped frames: %d left", u.len())
	}
	u.trim(0, 1, true)
	if u.size() > maxUnacked {
		t.Fatalf("size %d after a forced trim, want ≤ %d", u.size(), maxUnacked)
	}
	if got := u.ents[u.head].seq; got != 5 {
		t.Fatalf("oldest kept is %d, want 5", got)
	}
	u.dropNewest()
	u.dropFrom(18)
	if got := u.ents[len(u.ents)-1].seq; got != 17 {
		t.Fatalf("newest is %d, want 17", got)
	}
	u.reset()
	if u.len() != 0 {
		t.Fatalf("reset left %d frames", u.len())
	}
	u.shrink()
	if u.buf != nil {
		t.Fatalf("shrink kept a buffer of %d bytes", cap(u.buf))
	}
}

// An echoed frame is kept while it is recent: the events stream stores it
// a moment after the echo, and a server stopping between loses it.
func TestUnackedKeepsRecentEchoes(t *testing.T) {
	var u unacked
	u.add([]byte("old"), 1, 100)
	u.add([]byte("new"), 2, 200)
	u.trim(2, 150, false)
	if got := fmt.Sprint(held(&u)); got != "[2=new]" {
		t.Fatalf("after trim(2, before 150): %s", got)
	}
	u.trim(2, 201, false)
	if u.len() != 0 {
		t.Fatalf("%d frames left once every echo is old", u.len())
	}
}
