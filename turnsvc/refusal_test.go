package turnsvc

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/tuturu/tuturu/internal/testnet"
)

// xorPeer is an XOR-PEER-ADDRESS as it goes on the wire: an IPv4-mapped IPv6 address is sent
// with the IPv6 family, as a client may.
type xorPeer netip.AddrPort

func (p xorPeer) AddTo(m *stun.Message) error {
	ap := netip.AddrPort(p)
	v := []byte{0, 1, 0, 0}
	binary.BigEndian.PutUint16(v[2:], ap.Port()^(stunMagicCookie>>16))
	mask := binary.BigEndian.AppendUint32(nil, stunMagicCookie)
	ip := ap.Addr().AsSlice()
	if len(ip) == 16 {
		v[1] = 2
		mask = append(mask, m.TransactionID[:]...)
	}
	for i := range ip {
		v = append(v, ip[i]^mask[i])
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

// channelNumber is a CHANNEL-NUMBER attribute.
type channelNumber uint16

func (c channelNumber) AddTo(m *stun.Message) error {
	m.Add(stun.AttrChannelNumber, []byte{byte(c >> 8), byte(c), 0, 0})
	return nil
}

// rawTURN sends requests of its own through a pion client's transactions (retransmission,
// matching by transaction id), authenticated with the client's credential.
type rawTURN struct {
	t     *testing.T
	c     *turn.Client
	user  string
	key   []byte
	nonce stun.Nonce
}

func newRawTURN(t *testing.T, c *turn.Client, user, password string) *rawTURN {
	r := &rawTURN{t: t, c: c, user: user, key: turn.GenerateAuthKey(user, testRealm, password)}
	// An unauthenticated request is challenged: 401 with a nonce, and the code's reason phrase.
	res := r.send(stun.MethodCreatePermission, false)
	code := wantError(t, res, stun.CodeUnauthorized)
	if string(code.Reason) != "Unauthorized" {
		t.Errorf("401 reason phrase %q, want Unauthorized", code.Reason)
	}
	if err := r.nonce.GetFrom(res); err != nil {
		t.Fatalf("401 without a nonce: %v", err)
	}
	return r
}

// send performs one request; signed, it carries the credential and MESSAGE-INTEGRITY.
func (r *rawTURN) send(method stun.Method, signed bool, attrs ...stun.Setter) *stun.Message {
	r.t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
	if signed {
		setters = append(setters, stun.NewUsername(r.user), stun.NewRealm(testRealm), r.nonce, stun.MessageIntegrity(r.key))
	}
	m, err := stun.Build(append(setters, stun.Fingerprint)...)
	if err != nil {
		r.t.Fatal(err)
	}
	res, err := r.c.PerformTransaction(m, r.c.TURNServerAddr(), false)
	if err != nil {
		r.t.Fatalf("%v: %v", method, err)
	}
	return res.Msg
}

// wantError checks that res is an error response with code and returns its ERROR-CODE.
func wantError(t *testing.T, res *stun.Message, code stun.ErrorCode) stun.ErrorCodeAttribute {
	t.Helper()
	var got stun.ErrorCodeAttribute
	if res.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("%v: %v, want an error response", res.Type.Method, res.Type.Class)
	}
	if err := got.GetFrom(res); err != nil {
		t.Fatalf("%v error response without ERROR-CODE: %v", res.Type.Method, err)
	}
	if got.Code != code {
		t.Fatalf("%v error response: code %d (%s), want %d", res.Type.Method, got.Code, got.Reason, code)
	}
	if len(got.Reason) == 0 {
		t.Errorf("%v %d without a reason phrase", res.Type.Method, code)
	}
	return got
}

// wantSigned checks MESSAGE-INTEGRITY under key.
func wantSigned(t *testing.T, res *stun.Message, key []byte) {
	t.Helper()
	if err := stun.MessageIntegrity(key).Check(res); err != nil {
		t.Errorf("%v %v: MESSAGE-INTEGRITY under the allocation's key: %v", res.Type.Method, res.Type.Class, err)
	}
}

// TestRefusalsCarryErrorCode: a real pion client's allocation, over UDP and TCP, asks for
// permissions and channels to peers the relay refuses (loopback, private, link-local metadata,
// an IPv4-mapped loopback sent as IPv6, multicast) and gets 403 with a reason phrase and a
// valid MESSAGE-INTEGRITY; over TURN_MAX_PERMISSIONS, 508; with no peer address, 400; allowed
// peers are granted and relay, and pion's own client sees the 403.
func TestRefusalsCarryErrorCode(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url)
	cfg.AllowPeers = "127.0.0.2/31,127.0.0.4/31" // .2 to .5; 127.0.0.1, turnsvc's own address, stays denied
	cfg.MaxPermissions = 3
	s, _ := startTurn(t, cfg)
	peer := testnet.UDPEchoPeer(t) // on 127.0.0.2
	denied := []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "fe80::1", "224.0.0.1"}

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			u, p := cred.issue("refused-"+network, time.Hour)
			c := turnClient(t, network, s, u, p)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			r := newRawTURN(t, c, u, p)
			before := getStats(t, s).GetPeersDenied()
			for i, ip := range denied {
				ap := xorPeer(netip.AddrPortFrom(netip.MustParseAddr(ip), 9))
				res := r.send(stun.MethodCreatePermission, true, ap)
				wantError(t, res, stun.CodeForbidden)
				wantSigned(t, res, r.key)
				res = r.send(stun.MethodChannelBind, true, channelNumber(0x4000+i), ap)
				wantError(t, res, stun.CodeForbidden)
				wantSigned(t, res, r.key)
			}
			if got := getStats(t, s).GetPeersDenied() - before; got != uint64(2*len(denied)) {
				t.Errorf("peers_denied grew by %d, want %d", got, 2*len(denied))
			}

			// Allowed peers: granted, signed, and the relay carries traffic to one of them.
			for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
				res := r.send(stun.MethodCreatePermission, true, xorPeer(netip.AddrPortFrom(netip.MustParseAddr(ip), 9)))
				if res.Type.Class != stun.ClassSuccessResponse {
					t.Fatalf("CreatePermission(%s): %v", ip, res.Type)
				}
				wantSigned(t, res, r.key)
			}
			// (Not to the echo peer: the client would not know this channel's data.)
			bound := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), 9)
			res := r.send(stun.MethodChannelBind, true, channelNumber(0x4100), xorPeer(bound))
			if res.Type.Class != stun.ClassSuccessResponse {
				t.Fatalf("ChannelBind(%v): %v", bound, res.Type)
			}
			wantSigned(t, res, r.key)
			if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "allowed "+network, 3*time.Second); err != nil {
				t.Fatal(err)
			}

			// A third peer address fills TURN_MAX_PERMISSIONS=3; a fourth is over it: 508.
			res = r.send(stun.MethodCreatePermission, true, xorPeer(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.4"), 9)))
			if res.Type.Class != stun.ClassSuccessResponse {
				t.Fatalf("third peer address: %v", res.Type)
			}
			res = r.send(stun.MethodCreatePermission, true, xorPeer(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.5"), 9)))
			if code := wantError(t, res, stun.CodeInsufficientCapacity); !contains(string(code.Reason), "3 peer addresses") {
				t.Errorf("508 reason phrase %q does not name the limit", code.Reason)
			}
			wantSigned(t, res, r.key)

			// pion answers a CreatePermission without a peer address with no ERROR-CODE: 400.
			res = r.send(stun.MethodCreatePermission, true)
			wantError(t, res, stun.CodeBadRequest)
			wantSigned(t, res, r.key)

			// pion's own client reports the code.
			err = c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 9})
			var turnErr *stun.TurnError
			if !errors.As(err, &turnErr) || turnErr.ErrorCodeAttr.Code != stun.CodeForbidden {
				t.Errorf("pion client CreatePermission(10.0.0.1): %v, want a TURN error 403", err)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestIsErrorResponse: only STUN error responses are decoded on the way out; success
// responses, indications and ChannelData pass untouched.
func TestIsErrorResponse(t *testing.T) {
	t.Parallel()
	build := func(typ stun.MessageType) []byte {
		m, err := stun.Build(stun.TransactionID, typ)
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	for _, c := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"CreatePermission error", build(stun.NewType(stun.MethodCreatePermission, stun.ClassErrorResponse)), true},
		{"Allocate error", build(stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse)), true},
		{"ChannelBind success", build(stun.NewType(stun.MethodChannelBind, stun.ClassSuccessResponse)), false},
		{"Data indication", build(stun.NewType(stun.MethodData, stun.ClassIndication)), false},
		{"Binding request", build(stun.BindingRequest), false},
		{"ChannelData", append([]byte{0x40, 0x00, 0x00, 0x10}, make([]byte, 16)...), false},
		{"ChannelData shaped like an error", append([]byte{0x41, 0x11, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...), false},
		{"short", []byte{0x01, 0x13}, false},
	} {
		if got := isErrorResponse(c.p); got != c.want {
			t.Errorf("%s: isErrorResponse = %v, want %v", c.name, got, c.want)
		}
	}
}
