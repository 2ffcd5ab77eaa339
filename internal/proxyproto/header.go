// Package proxyproto writes and reads PROXY protocol headers (HAProxy's PROXY protocol,
// versions 1 and 2), which carry a client's real address across a TCP hop that terminates
// the client's connection, such as the edge handing TURN over TLS to turnsvc.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Header is what a PROXY header says about the original connection.
type Header struct {
	// Source is the client's address, Dest the address the client connected to. Both are
	// invalid when Local is set.
	Source, Dest netip.AddrPort
	// Local marks a connection made by the proxy itself (v2 LOCAL, v1 UNKNOWN): the receiver
	// keeps the connection's own addresses.
	Local bool
}

// v2Signature opens every version 2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// v1Prefix opens every version 1 header.
var v1Prefix = []byte("PROXY ")

const (
	// v2HeaderLen is the fixed part of a v2 header: signature, version/command, family and
	// the length of what follows.
	v2HeaderLen = 16
	// MaxHeaderLen bounds a header, TLVs included. The edge sends no TLVs; HAProxy's common
	// ones (unique id, TLS details) fit with room to spare.
	MaxHeaderLen = 4096
	// v1MaxLen is the longest v1 line the specification allows, CRLF included.
	v1MaxLen = 107
)

// Errors of Parse.
var (
	// ErrIncomplete means more bytes are needed; Parse's n says at least how many in total.
	ErrIncomplete = errors.New("proxyproto: incomplete header")
	// ErrNoHeader means the bytes do not start with a PROXY header.
	ErrNoHeader = errors.New("proxyproto: no PROXY header")
	// ErrInvalid means the bytes start like a PROXY header but break its rules.
	ErrInvalid = errors.New("proxyproto: invalid header")
)

// AppendV2 appends a version 2 PROXY header for a TCP connection from src to dst. An IPv4
// pair is sent as TCP over IPv4; anything else as TCP over IPv6, with IPv4 addresses mapped.
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, v2Signature...)
	b = append(b, 0x21) // version 2, command PROXY
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() && d.Is4() {
		b = append(b, 0x11) // AF_INET, STREAM
		b = binary.BigEndian.AppendUint16(b, 12)
		s4, d4 := s.As4(), d.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x21) // AF_INET6, STREAM
		b = binary.BigEndian.AppendUint16(b, 36)
		s16, d16 := s.As16(), d.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// Parse reads a PROXY header (v1 or v2) at the start of b. It returns the header and its
// length. With ErrIncomplete, n is the smallest total length worth trying again with.
func Parse(b []byte) (h Header, n int, err error) {
	switch {
	case len(b) == 0:
		return Header{}, 1, ErrIncomplete
	case b[0] == v2Signature[0]:
		return parseV2(b)
	case b[0] == v1Prefix[0]:
		return parseV1(b)
	}
	return Header{}, 0, ErrNoHeader
}

func parseV2(b []byte) (Header, int, error) {
	if k := min(len(b), len(v2Signature)); !bytes.Equal(b[:k], v2Signature[:k]) {
		return Header{}, 0, ErrNoHeader
	}
	if len(b) < v2HeaderLen {
		return Header{}, v2HeaderLen, ErrIncomplete
	}
	verCmd, fam := b[12], b[13]
	total := v2HeaderLen + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 {
		return Header{}, 0, fmt.Errorf("%w: version %d", ErrInvalid, verCmd>>4)
	}
	if total > MaxHeaderLen {
		return Header{}, 0, fmt.Errorf("%w: %d bytes is longer than %d", ErrInvalid, total, MaxHeaderLen)
	}
	if len(b) < total {
		return Header{}, total, ErrIncomplete
	}
	body := b[v2HeaderLen:total]
	switch verCmd & 0x0f {
	case 0x0: // LOCAL: health checks and the like; addresses, if any, are ignored
		return Header{Local: true}, total, nil
	case 0x1: // PROXY
	default:
		return Header{}, 0, fmt.Errorf("%w: command %d", ErrInvalid, verCmd&0x0f)
	}
	var h Header
	switch fam {
	case 0x11, 0x12: // IPv4 over TCP or UDP
		if len(body) < 12 {
			return Header{}, 0, fmt.Errorf("%w: IPv4 addresses need 12 bytes, got %d", ErrInvalid, len(body))
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case 0x21, 0x22: // IPv6 over TCP or UDP
		if len(body) < 36 {
			return Header{}, 0, fmt.Errorf("%w: IPv6 addresses need 36 bytes, got %d", ErrInvalid, len(body))
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	case 0x00: // UNSPEC: the proxy does not know; keep the connection's own addresses
		h.Local = true
	default:
		return Header{}, 0, fmt.Errorf("%w: address family 0x%02x", ErrInvalid, fam)
	}
	return h, total, nil
}

func parseV1(b []byte) (Header, int, error) {
	if k := min(len(b), len(v1Prefix)); !bytes.Equal(b[:k], v1Prefix[:k]) {
		return Header{}, 0, ErrNoHeader
	}
	end := bytes.IndexByte(b[:min(len(b), v1MaxLen)], '\n')
	if end < 0 {
		if len(b) >= v1MaxLen {
			return Header{}, 0, fmt.Errorf("%w: v1 line longer than %d bytes", ErrInvalid, v1MaxLen)
		}
		return Header{}, len(b) + 1, ErrIncomplete
	}
	n := end + 1
	line, ok := strings.CutSuffix(string(b[:end]), "\r")
	if !ok {
		return Header{}, 0, fmt.Errorf("%w: v1 line does not end with CRLF", ErrInvalid)
	}
	f := strings.Split(line, " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return Header{Local: true}, n, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return Header{}, 0, fmt.Errorf("%w: v1 line needs PROXY TCP4|TCP6 src dst sport dport", ErrInvalid)
	}
	src, err1 := v1Addr(f[2], f[4], f[1] == "TCP4")
	dst, err2 := v1Addr(f[3], f[5], f[1] == "TCP4")
	if err := errors.Join(err1, err2); err != nil {
		return Header{}, 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Header{Source: src, Dest: dst}, n, nil
}

func v1Addr(ip, port string, want4 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is4() != want4 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", ip)
	}
	// The specification forbids leading zeros and signs; ParseUint refuses signs.
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (len(port) > 1 && port[0] == '0') {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}
