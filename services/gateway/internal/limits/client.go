package limits

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries ClientAddr
// walks: more proxies than this in front of a gateway is a forged chain.
const maxForwardedHops = 16

// ParseProxies parses a comma-separated list of CIDR prefixes and bare
// addresses (a bare address is its own /32 or /128).
func ParseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not a CIDR prefix", f)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ClientAddr is the address whose control-plane budget a request draws
// on: the TCP peer remote ("host:port" or a bare host), unless the peer is
// one of the trusted proxies (Config.TrustedProxies). Then it is the
// nearest address in the X-Forwarded-For values that is not a trusted
// proxy, read from the right, since each proxy appends the peer it saw
// and only the entries the trusted proxies appended can be believed. A
// chain whose entries are all trusted gives its leftmost; a malformed or
// overlong one gives the peer, so a forged header never escapes the
// proxy's own budget.
func (l *Limits) ClientAddr(remote string, forwardedFor []string) string {
	if l == nil || len(l.cfg.TrustedProxies) == 0 || !l.trusted(hostOf(remote)) {
		return remote
	}
	var last netip.Addr
	hops := 0
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		v := forwardedFor[i]
		for v != "" {
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			if hops++; hops > maxForwardedHops {
				return remote
			}
			a, err := netip.ParseAddr(hostOf(strings.TrimSpace(entry)))
			if err != nil {
				return remote
			}
			a = a.Unmap()
			if !l.trustedAddr(a) {
				return a.String()
			}
			last = a
		}
	}
	if last.IsValid() {
		return last.String()
	}
	return remote
}

// hostOf strips a port and IPv6 brackets: "[::1]:80" → "::1",
// "10.0.0.1:80" → "10.0.0.1", "10.0.0.1" → "10.0.0.1".
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
}

func (l *Limits) trusted(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && l.trustedAddr(a.Unmap())
}

func (l *Limits) trustedAddr(a netip.Addr) bool {
	for _, p := range l.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
