// Package peerpolicy decides which peer addresses a TURN allocation may relay to. It is pure:
// no sockets, no clocks, so that every rule can be proven by a table test.
package peerpolicy

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultDeny lists every range the relay refuses unless an operator allows it: this-network,
// private, shared (CGNAT), loopback, link-local, documentation, benchmarking, multicast,
// reserved, the cloud metadata address, and the IPv6 equivalents including every transition
// prefix that can smuggle an IPv4 address. docs/turn.md ("Peer policy") lists what each is.
var DefaultDeny = mustPrefixes(
	// IPv4
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"168.63.129.16/32",
	// IPv6
	"::/128", "::1/128", "::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
	"100::/64", "2001::/32", "2001:2::/48", "2001:10::/28", "2001:20::/28", "2001:db8::/32",
	"2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)

// Policy is an immutable peer filter; safe for concurrent use.
type Policy struct {
	deny  []netip.Prefix
	allow []netip.Prefix
}

// New returns a policy that denies DefaultDeny plus extraDeny, except addresses in allow.
func New(extraDeny, allow []netip.Prefix) *Policy {
	deny := append(append([]netip.Prefix(nil), DefaultDeny...), extraDeny...)
	return &Policy{deny: masked(deny), allow: masked(allow)}
}

// Allowed reports whether a peer may be relayed to. Every form of the address (the address
// itself with any ::ffff: mapping removed, and the IPv4 address embedded by an IPv4-compatible,
// NAT64 or 6to4 encoding) must pass: a form passes when it is explicitly allowed or not denied.
// So an allow exception for 127.0.0.0/8 does not open ::127.0.0.1 or 64:ff9b::7f00:1.
func (p *Policy) Allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, form := range Forms(ip) {
		if !p.formAllowed(form) {
			return false
		}
	}
	return true
}

func (p *Policy) formAllowed(ip netip.Addr) bool {
	for _, pr := range p.allow {
		if pr.Contains(ip) {
			return true
		}
	}
	for _, pr := range p.deny {
		if pr.Contains(ip) {
			return false
		}
	}
	return true
}

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	compat4 = netip.MustParsePrefix("::/96")

	ipv6Unspecified = netip.IPv6Unspecified()
	ipv6Loopback    = netip.IPv6Loopback()
)

// Forms returns the canonical address (unmapped, zone removed) followed by the IPv4 address it
// embeds, if any.
func Forms(ip netip.Addr) []netip.Addr {
	ip = ip.Unmap().WithZone("")
	forms := []netip.Addr{ip}
	if !ip.Is6() {
		return forms
	}
	b := ip.As16()
	switch {
	case ip == ipv6Unspecified || ip == ipv6Loopback:
		// :: and ::1 sit inside ::/96 but are IPv6's own addresses, not IPv4-compatible ones.
	case nat64.Contains(ip), compat4.Contains(ip):
		forms = append(forms, netip.AddrFrom4([4]byte(b[12:16])))
	case sixTo4.Contains(ip):
		forms = append(forms, netip.AddrFrom4([4]byte(b[2:6])))
	}
	return forms
}

// ParseList parses a comma-separated list of CIDR prefixes or single addresses, as operators
// write them in TURN_DENY_PEERS and TURN_ALLOW_PEERS.
func ParseList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR prefix", item)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix such as 10.0.0.0/8", item)
		}
		out = append(out, pr)
	}
	return out, nil
}

// masked normalises prefixes (host bits cleared, IPv4-mapped prefixes longer than /96 turned
// into IPv4 ones) so that Contains matches canonical addresses. ::ffff:0:0/96 itself stays as
// it is: canonical addresses are never mapped, so it never matches, while turning it into
// 0.0.0.0/0 would deny every IPv4 peer.
func masked(in []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		a := p.Addr()
		if a.Is4In6() && p.Bits() > 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

func mustPrefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, v := range s {
		out[i] = netip.MustParsePrefix(v)
	}
	return out
}
