package peerpolicy

import (
	"net/netip"
	"testing"
)

func TestDefaultPolicy(t *testing.T) {
	p := New(nil, nil)
	cases := []struct {
		ip    string
		allow bool
	}{
		// public addresses pass
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"::ffff:8.8.8.8", true},
		// 6to4 / NAT64 / compat encodings of a public address are still denied: the whole
		// transition prefix is on the deny list
		{"2002:808:808::", false},
		{"64:ff9b::808:808", false},
		// IPv4 deny list
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.0.0.1", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"100.128.0.1", true},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"169.254.169.254", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"172.32.0.1", true},
		{"192.0.0.8", false},
		{"192.0.2.1", false},
		{"192.88.99.1", false},
		{"192.168.1.1", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"198.51.100.7", false},
		{"203.0.113.9", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"168.63.129.16", false},
		// IPv4 in IPv6 encodings
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.1.2.3", false},
		{"::127.0.0.1", false},
		{"64:ff9b::7f00:1", false},
		{"64:ff9b::a00:1", false},
		{"2002:7f00:1::", false},
		{"2002:a9fe:a9fe::1", false},
		// IPv6 deny list
		{"::", false},
		{"::1", false},
		{"64:ff9b:1::1", false},
		{"100::1", false},
		{"2001::1", false},
		{"2001:2::1", false},
		{"2001:10::1", false},
		{"2001:20::1", false},
		{"2001:db8::1", false},
		{"3fff::1", false},
		{"5f00::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fec0::1", false},
		{"ff02::1", false},
		{"ff0e::1", false},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		if got := p.Allowed(ip); got != c.allow {
			t.Errorf("Allowed(%s) = %v, want %v", c.ip, got, c.allow)
		}
	}
	if p.Allowed(netip.Addr{}) {
		t.Error("the zero Addr must be refused")
	}
}

func TestAllowExceptionsAndExtraDeny(t *testing.T) {
	allow, err := ParseList("127.0.0.0/8, ::1/128")
	if err != nil {
		t.Fatal(err)
	}
	deny, err := ParseList("8.8.8.0/24,2606:4700::/32,9.9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	p := New(deny, allow)
	cases := []struct {
		ip    string
		allow bool
	}{
		{"127.0.0.1", true},
		{"::ffff:127.0.0.1", true}, // the same address on the wire
		{"::1", true},
		// an exception names an encoding: these embed 127.0.0.1 but their IPv6 form is denied
		{"::127.0.0.1", false},
		{"64:ff9b::7f00:1", false},
		{"2002:7f00:1::", false},
		{"10.0.0.1", false},
		{"8.8.8.8", false},
		{"8.8.4.4", true},
		{"9.9.9.9", false},
		{"9.9.9.10", true},
		{"2606:4700:4700::1111", false},
	}
	for _, c := range cases {
		if got := p.Allowed(netip.MustParseAddr(c.ip)); got != c.allow {
			t.Errorf("Allowed(%s) = %v, want %v", c.ip, got, c.allow)
		}
	}
}

func TestMappedPrefixInList(t *testing.T) {
	allow, err := ParseList("::ffff:10.1.0.0/112")
	if err != nil {
		t.Fatal(err)
	}
	p := New(nil, allow)
	if !p.Allowed(netip.MustParseAddr("10.1.2.3")) {
		t.Error("a mapped allow prefix must match the IPv4 address")
	}
	if p.Allowed(netip.MustParseAddr("10.2.0.1")) {
		t.Error("outside the mapped allow prefix must stay denied")
	}
	// An operator's ::ffff:0:0/96 must not turn into 0.0.0.0/0.
	deny, _ := ParseList("::ffff:0:0/96")
	if !New(deny, nil).Allowed(netip.MustParseAddr("8.8.8.8")) {
		t.Error("::ffff:0:0/96 in the deny list must not deny every IPv4 peer")
	}
}

func TestForms(t *testing.T) {
	cases := map[string][]string{
		"1.2.3.4":          {"1.2.3.4"},
		"::ffff:1.2.3.4":   {"1.2.3.4"},
		"::1.2.3.4":        {"::102:304", "1.2.3.4"},
		"64:ff9b::1.2.3.4": {"64:ff9b::102:304", "1.2.3.4"},
		"2002:102:304::5":  {"2002:102:304::5", "1.2.3.4"},
		"::1":              {"::1"},
		"::":               {"::"},
		"fe80::1%lo":       {"fe80::1"},
	}
	for in, want := range cases {
		got := Forms(netip.MustParseAddr(in))
		if len(got) != len(want) {
			t.Errorf("Forms(%s) = %v, want %v", in, got, want)
			continue
		}
		for i := range got {
			if got[i].String() != want[i] {
				t.Errorf("Forms(%s) = %v, want %v", in, got, want)
			}
		}
	}
}

func TestParseListErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0/8", "::1/129"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q) accepted a bad entry", bad)
		}
	}
	got, err := ParseList(" , 10.0.0.0/8 ,,")
	if err != nil || len(got) != 1 {
		t.Errorf("ParseList with empty items = %v, %v", got, err)
	}
}

func FuzzAllowed(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add(netip.MustParseAddr("2002:7f00:1::").AsSlice())
	p := New(nil, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		// Whatever the encoding, an address whose IPv4 form is loopback or private is refused.
		for _, form := range Forms(ip) {
			if form.Is4() && (form.IsLoopback() || form.IsPrivate()) && p.Allowed(ip) {
				t.Fatalf("%s (form %s) allowed", ip, form)
			}
		}
	})
}
