package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestAppendV2RoundTrip(t *testing.T) {
	cases := []struct{ src, dst string }{
		{"203.0.113.7:51234", "127.0.0.1:443"},
		{"[2001:db8::1]:4000", "[2001:db8::2]:443"},
		{"203.0.113.7:1", "[2001:db8::2]:443"}, // mixed families travel as IPv6
		{"[::ffff:198.51.100.1]:65535", "198.51.100.2:443"},
	}
	for _, c := range cases {
		src, dst := netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst)
		b := AppendV2([]byte("x"), src, dst)[1:]
		b = append(b, "payload"...)
		h, n, err := Parse(b)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if string(b[n:]) != "payload" {
			t.Errorf("%v: header length %d leaves %q", c, n, b[n:])
		}
		if h.Local || h.Source.Addr().Unmap() != src.Addr().Unmap() || h.Source.Port() != src.Port() ||
			h.Dest.Addr().Unmap() != dst.Addr().Unmap() || h.Dest.Port() != dst.Port() {
			t.Errorf("%v: parsed %+v", c, h)
		}
	}
}

func TestParseV1(t *testing.T) {
	h, n, err := Parse([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\nGET /"))
	if err != nil || n != 42 || h.Source != netip.MustParseAddrPort("192.0.2.1:56324") || h.Dest != netip.MustParseAddrPort("192.0.2.2:443") {
		t.Fatalf("v1 TCP4: %+v %d %v", h, n, err)
	}
	h, _, err = Parse([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"))
	if err != nil || h.Source != netip.MustParseAddrPort("[2001:db8::1]:1") {
		t.Fatalf("v1 TCP6: %+v %v", h, err)
	}
	h, _, err = Parse([]byte("PROXY UNKNOWN\r\n"))
	if err != nil || !h.Local {
		t.Fatalf("v1 UNKNOWN: %+v %v", h, err)
	}
}

func TestParseErrors(t *testing.T) {
	v2 := AppendV2(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"))
	badVersion := bytes.Clone(v2)
	badVersion[12] = 0x11
	badCmd := bytes.Clone(v2)
	badCmd[12] = 0x2f
	badFam := bytes.Clone(v2)
	badFam[13] = 0x31 // AF_UNIX is not a TCP client
	short := bytes.Clone(v2)
	short[15] = 4 // claims 4 bytes of IPv4 addresses
	huge := bytes.Clone(v2)
	huge[14], huge[15] = 0xff, 0xff
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrIncomplete},
		{"tls hello", []byte{0x16, 0x03, 0x01, 0x00}, ErrNoHeader},
		{"stun", []byte{0x00, 0x01, 0x00, 0x00}, ErrNoHeader},
		{"v2 prefix only", v2[:10], ErrIncomplete},
		{"v2 no addresses yet", v2[:20], ErrIncomplete},
		{"v2 wrong signature", append([]byte("\r\n\r\nX"), v2[5:]...), ErrNoHeader},
		{"v2 version 1", badVersion, ErrInvalid},
		{"v2 command 15", badCmd, ErrInvalid},
		{"v2 unix family", badFam, ErrInvalid},
		{"v2 short addresses", short[:20], ErrInvalid},
		{"v2 too long", huge, ErrInvalid},
		{"v1 partial", []byte("PROXY TCP4 1.2"), ErrIncomplete},
		{"v1 GET", []byte("GET / HTTP/1.1\r\n"), ErrNoHeader},
		{"v1 no CR", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"), ErrInvalid},
		{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n"), ErrInvalid},
		{"v1 leading zero port", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n"), ErrInvalid},
		{"v1 port too big", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n"), ErrInvalid},
		{"v1 too long", []byte("PROXY TCP4 " + strings.Repeat("1", 120)), ErrInvalid},
		{"v1 UDP", []byte("PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n"), ErrInvalid},
	}
	for _, c := range cases {
		_, _, err := Parse(c.in)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestReadHeaderLeavesPayload(t *testing.T) {
	b := AppendV2(nil, netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("192.0.2.2:443"))
	r := bufio.NewReaderSize(bytes.NewReader(append(b, "STUN"...)), MaxHeaderLen)
	h, err := ReadHeader(r)
	if err != nil || h.Source.Port() != 1000 {
		t.Fatalf("%+v %v", h, err)
	}
	rest := make([]byte, 8)
	n, _ := r.Read(rest)
	if string(rest[:n]) != "STUN" {
		t.Fatalf("payload after header: %q", rest[:n])
	}
	// A stream that ends inside the header is an error, not a hang.
	if _, err := ReadHeader(bufio.NewReader(bytes.NewReader(b[:20]))); err == nil {
		t.Fatal("truncated header accepted")
	}
}

// FuzzParse checks that no input panics Parse, that a header it accepts lies within the
// input, and that a v2 header it accepts re-encodes to the same addresses.
func FuzzParse(f *testing.F) {
	f.Add(AppendV2(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:443")))
	f.Add(AppendV2(nil, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:443")))
	f.Add([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if errors.Is(err, ErrIncomplete) {
			if n <= len(b) {
				t.Fatalf("incomplete asks for %d bytes but has %d", n, len(b))
			}
			return
		}
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) || n > MaxHeaderLen {
			t.Fatalf("header length %d of %d bytes", n, len(b))
		}
		if h.Local {
			return
		}
		h2, _, err := Parse(AppendV2(nil, h.Source, h.Dest))
		if err != nil || h2.Source.Addr().Unmap() != h.Source.Addr().Unmap() || h2.Dest.Port() != h.Dest.Port() {
			t.Fatalf("re-encoded %+v as %+v (%v)", h, h2, err)
		}
	})
}
