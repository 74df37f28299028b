package limits

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientKey: any remote address gives a key, whatever its port. An
// IPv4 address (or an IPv4-mapped IPv6 one) keys by itself; any other
// IPv6 address by its /64, so one client cannot spread its requests over
// keys by changing the low 64 bits (flip, an 8-byte mask, is applied to
// them and must give the same key). A remote that is not an IP keys by
// its host unchanged.
func FuzzClientKey(f *testing.F) {
	for _, s := range []string{"192.0.2.1:80", "[2001:db8::1]:443", "[::1]:1", "::ffff:1.2.3.4", "", "[", "x:y:z", "[fe80::1%eth0]:1",
		"[::ffff:192.0.2.1]:8080", "2001:db8::1", "[2001:db8::1]", "192.0.2.1", "0.0.0.0:0", "[::]:0", "256.1.1.1:1", "[2001:db8::1]:99999"} {
		f.Add(s, uint64(0xffffffffffffffff))
	}
	f.Fuzz(func(t *testing.T, remote string, flip uint64) {
		k := ClientKey(remote)
		host, port := remote, ""
		if h, p, err := net.SplitHostPort(remote); err == nil {
			host, port = h, p
		}
		host = strings.TrimPrefix(strings.TrimSuffix(host, "]"), "[")
		if port != "" {
			if k2 := ClientKey(net.JoinHostPort(host, "1")); k2 != k {
				t.Fatalf("%q keyed %q, with another port %q", remote, k, k2)
			}
		}
		ip := net.ParseIP(host)
		switch {
		case ip == nil:
			if k != host {
				t.Fatalf("%q (not an IP) keyed %q", remote, k)
			}
		case ip.To4() != nil:
			if k != ip.To4().String() {
				t.Fatalf("%q keyed %q", remote, k)
			}
		default:
			a := netip.AddrFrom16([16]byte(ip.To16()))
			p, _ := a.Prefix(64)
			if k != p.Addr().String()+"/64" {
				t.Fatalf("%q keyed %q, want %s", remote, k, p)
			}
			b := a.As16()
			for i := range 8 {
				b[8+i] ^= byte(flip >> (8 * i))
			}
			other := netip.AddrFrom16(b)
			if other.Is4In6() {
				return // the flip made an IPv4-mapped address: another client
			}
			if k2 := ClientKey("[" + other.String() + "]:443"); k2 != k {
				t.Fatalf("%q keyed %q, %s in the same /64 keyed %q", remote, k, other, k2)
			}
		}
	})
}
