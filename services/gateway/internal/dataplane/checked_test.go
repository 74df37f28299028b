package dataplane

import (
	"net"
	"testing"
	"time"
)

// After a reconnect, events wait for Recreate on the new connection (a
// server that lost its store has no events stream until then), or for
// CheckWait after the dial, whichever comes first.
func TestCheckedAfterReconnect(t *testing.T) {
	d := &Dialer{}
	p := startPlane(t, Config{Memory: true, Dialer: d})
	gen := p.ConnGen()
	if !p.Checked(gen) {
		t.Fatalf("connection %d not checked after Open", gen)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reconnect := func() uint64 {
		t.Helper()
		c, err := d.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return p.ConnGen()
	}
	gen = reconnect()
	if p.Checked(gen) {
		t.Fatalf("connection %d checked before Recreate", gen)
	}
	lost, err := p.Recreate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if lost {
		t.Error("Recreate reported the events stream lost; it was there")
	}
	if !p.Checked(gen) {
		t.Fatalf("connection %d not checked after Recreate", gen)
	}
	gen = reconnect()
	if p.Checked(gen) {
		t.Fatalf("connection %d checked before Recreate", gen)
	}
	d.dialed.Store(time.Now().Add(-CheckWait - time.Second).UnixNano())
	if !p.Checked(gen) {
		t.Fatalf("connection %d not checked %s after its dial", gen, CheckWait+time.Second)
	}
}

// Recreate reports a lost events stream: one created again since.
func TestRecreateReportsLostEvents(t *testing.T) {
	p := startPlane(t, Config{Memory: true})
	if err := p.js.DeleteStream(t.Context(), EventsStream); err != nil {
		t.Fatal(err)
	}
	lost, err := p.Recreate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !lost {
		t.Error("Recreate did not report the events stream lost")
	}
	if lost, err = p.Recreate(t.Context()); err != nil || lost {
		t.Errorf("a second Recreate: lost %v, err %v; want false, nil", lost, err)
	}
}
