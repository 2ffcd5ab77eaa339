package turnsvc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/pion/stun/v3"
)

// Error responses with their ERROR-CODE.
//
// pion/turn v4.1.4 answers a CreatePermission its PermissionHandler refuses with an error
// response that has no ERROR-CODE at all, and a refused ChannelBind with 401 (Unauthorized),
// unsigned, which a client takes for a credential problem; its other error responses carry a
// code but an empty reason phrase. RFC 8656 asks for 403 (Forbidden) when the peer address is
// not allowed and 508 (Insufficient Capacity) when a limit stops the request, signed like any
// answer to an authenticated request.
//
// turnsvc's server sockets (fencedPacketConn for UDP, trackedConn for TCP, TLS and the edge's
// PROXY listener) see every message pion sends. The PermissionHandler records why it refused
// on the client's allocation; the error response pion then writes to that client on the same
// goroutine is replaced, before it leaves, by one with the recorded ERROR-CODE, a reason phrase
// and MESSAGE-INTEGRITY under the allocation's key. Any other error response without an
// ERROR-CODE (a CreatePermission without a valid XOR-PEER-ADDRESS) gets 400 (Bad Request), and
// an empty reason phrase gets the code's standard one. Other messages pass untouched: only
// error responses are decoded.

// refusal is why the PermissionHandler refused a peer: the ERROR-CODE to answer with.
type refusal struct {
	code   stun.ErrorCode
	reason string
}

var (
	refusedPolicy = &refusal{stun.CodeForbidden, "Forbidden: this relay does not reach that peer address"}
	refusedGroup  = &refusal{stun.CodeForbidden, "Forbidden: multicast and broadcast peers are never relayed"}
)

// refusedPeers is the refusal of a peer over TURN_MAX_PERMISSIONS.
func refusedPeers(max int) *refusal {
	return &refusal{stun.CodeInsufficientCapacity, fmt.Sprintf("Insufficient Capacity: at most %d peer addresses per allocation", max)}
}

// refuse records on client's allocation why a CreatePermission or ChannelBind of it is being
// refused, for the error response pion is about to send (answerError).
func (r *registry) refuse(client net.Addr, why *refusal) {
	r.mu.RLock()
	a := r.byClient[clientKey(client)]
	r.mu.RUnlock()
	if a != nil {
		a.refused.Store(why)
	}
}

// stunMagicCookie is the fixed value of bytes 4-7 of every STUN message (RFC 8489).
const stunMagicCookie = 0x2112A442

// isErrorResponse reports whether p is a STUN error response: first two bits 0 (ChannelData
// has 01), class bits 11 in the message type, the magic cookie in place.
func isErrorResponse(p []byte) bool {
	return len(p) >= 20 && p[0] < 0x40 && p[0]&0x01 != 0 && p[1]&0x10 != 0 &&
		binary.BigEndian.Uint32(p[4:8]) == stunMagicCookie
}

// answerError returns what to send to client instead of p, an error response from pion: p
// itself when it needs nothing.
func (r *registry) answerError(p []byte, client net.Addr) []byte {
	m := &stun.Message{Raw: p}
	if err := m.Decode(); err != nil {
		return p
	}
	var why *refusal
	var a *allocation
	if m.Type.Method == stun.MethodCreatePermission || m.Type.Method == stun.MethodChannelBind || m.Contains(stun.AttrMessageIntegrity) {
		r.mu.RLock()
		a = r.byClient[clientKey(client)]
		r.mu.RUnlock()
	}
	if a != nil && (m.Type.Method == stun.MethodCreatePermission || m.Type.Method == stun.MethodChannelBind) {
		why = a.refused.Swap(nil)
	}
	var code stun.ErrorCodeAttribute
	hasCode := code.GetFrom(m) == nil
	switch {
	case why != nil:
		code = stun.ErrorCodeAttribute{Code: why.code, Reason: []byte(why.reason)}
	case !hasCode:
		code = stun.ErrorCodeAttribute{Code: stun.CodeBadRequest}
	case len(code.Reason) == 0:
		// The standard phrase is added below.
	default:
		return p
	}
	// Sign a refusal (pion authenticated the request before asking the PermissionHandler) and
	// whatever pion signed, when the allocation's key is known (it always is for those).
	var key []byte
	if (why != nil || m.Contains(stun.AttrMessageIntegrity)) && a != nil && len(a.key) > 0 {
		key = a.key
	}
	out := stun.New()
	out.Type, out.TransactionID = m.Type, m.TransactionID
	out.WriteHeader()
	for _, attr := range m.Attributes {
		switch attr.Type {
		case stun.AttrErrorCode, stun.AttrMessageIntegrity, stun.AttrMessageIntegritySHA256, stun.AttrFingerprint:
			continue
		}
		out.Add(attr.Type, attr.Value)
	}
	var err error
	if len(code.Reason) == 0 {
		if err = code.Code.AddTo(out); errors.Is(err, stun.ErrNoDefaultReason) {
			err = code.AddTo(out)
		}
	} else {
		err = code.AddTo(out)
	}
	if err == nil && key != nil {
		err = stun.MessageIntegrity(key).AddTo(out)
	}
	if err == nil && m.Contains(stun.AttrFingerprint) {
		err = stun.Fingerprint.AddTo(out)
	}
	if err != nil {
		return p
	}
	return out.Raw
}
