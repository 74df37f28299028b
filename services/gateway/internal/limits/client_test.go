package limits

import (
	"strings"
	"testing"
)

func TestParseProxies(t *testing.T) {
	got, err := ParseProxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::ffff:198.51.100.1,, 172.16.5.4/12")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "198.51.100.1/32", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if got, err := ParseProxies(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "ingress", "10.0.0.1:80", "10.0.0.0/8,nope"} {
		if _, err := ParseProxies(bad); err == nil || !strings.Contains(err.Error(), "trusted proxy") {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestClientAddr(t *testing.T) {
	proxies, err := ParseProxies("10.0.0.0/8,2001:db8:1::/48")
	if err != nil {
		t.Fatal(err)
	}
	l := New(Config{TrustedProxies: proxies})
	long := strings.Repeat("10.1.1.1,", maxForwardedHops) + "10.1.1.1"
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client: the header is not read", "192.0.2.1:5000", []string{"198.51.100.9"}, "192.0.2.1:5000"},
		{"proxy without a header", "10.0.0.5:5000", nil, "10.0.0.5:5000"},
		{"one proxy", "10.0.0.5:5000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"a forged entry left of the real one", "10.0.0.5:5000", []string{"203.0.113.66, 198.51.100.9"}, "198.51.100.9"},
		{"two proxies", "10.0.0.5:5000", []string{"198.51.100.9, 10.2.3.4"}, "198.51.100.9"},
		{"two headers", "10.0.0.5:5000", []string{"203.0.113.66", "198.51.100.9,10.2.3.4"}, "198.51.100.9"},
		{"entry with a port", "10.0.0.5:5000", []string{"198.51.100.9:4711"}, "198.51.100.9"},
		{"IPv6 proxy and client", "[2001:db8:1::5]:443", []string{"[2001:db8:2::7]:1"}, "2001:db8:2::7"},
		{"IPv4-mapped client", "10.0.0.5:5000", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
		{"only proxies: the leftmost", "10.0.0.5:5000", []string{"10.9.9.9, 10.2.3.4"}, "10.9.9.9"},
		{"malformed entry: the peer", "10.0.0.5:5000", []string{"unknown, 10.2.3.4"}, "10.0.0.5:5000"},
		{"empty entry: the peer", "10.0.0.5:5000", []string{"198.51.100.9,,10.2.3.4"}, "10.0.0.5:5000"},
		{"overlong chain: the peer", "10.0.0.5:5000", []string{"198.51.100.9," + long}, "10.0.0.5:5000"},
		{"bare peer", "10.0.0.5", []string{"198.51.100.9"}, "198.51.100.9"},
	} {
		if got := l.ClientAddr(tc.remote, tc.xff); got != tc.want {
			t.Errorf("%s: ClientAddr(%q, %q) = %q, want %q", tc.name, tc.remote, tc.xff, got, tc.want)
		}
	}
	if got := New(Config{}).ClientAddr("10.0.0.5:1", []string{"198.51.100.9"}); got != "10.0.0.5:1" {
		t.Fatalf("no trusted proxies: %q", got)
	}
	var none *Limits
	if got := none.ClientAddr("10.0.0.5:1", []string{"198.51.100.9"}); got != "10.0.0.5:1" {
		t.Fatalf("nil limits: %q", got)
	}
}

// Behind a trusted proxy, clients keep budgets of their own and a forged
// header does not buy a fresh one.
func TestControlBehindProxy(t *testing.T) {
	proxies, err := ParseProxies("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := newAt(Config{ControlIP: Rate{PerSecond: 1, Burst: 1}, TrustedProxies: proxies})
	take := func(xff ...string) error { return l.Control(l.ClientAddr("10.0.0.5:5000", xff), "") }
	if err := take("198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if err := take("198.51.100.2"); err != nil {
		t.Fatalf("a second client behind the same proxy: %v", err)
	}
	if err := take("198.51.100.1"); err == nil {
		t.Fatal("the first client's second request passed")
	}
	if err := take("203.0.113.9, 198.51.100.1"); err == nil {
		t.Fatal("a forged leftmost entry bought a fresh budget")
	}
}
