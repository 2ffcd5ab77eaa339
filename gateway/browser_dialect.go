package gateway

import (
	"context"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/metric"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/roompin"
)

// browserDialect is the original tuturu 1:1 protocol, spoken by the web client
// (docs/protocol.md): join-pin or resume enters a PIN room, offer/answer/ice-candidate are
// relayed to the other member, and the first member is told when the second arrives.
type browserDialect struct{ s *session }

func (b *browserDialect) errorFrame(e wireError) []byte {
	return mustJSON(errorMsg{Type: "error", Error: e.Text, Code: e.Code, RetryAfterMs: e.RetryAfterMs, SupportCode: e.SupportCode})
}

func (*browserDialect) resumable() bool { return true }

func (b *browserDialect) metricAttr() metric.MeasurementOption {
	return b.s.g.instruments.browserDialect
}

// handle decodes one frame and runs it under its `signal <type>` span; false ends the session.
func (b *browserDialect) handle(ctx context.Context, data []byte) bool {
	s := b.s
	m, err := decodeBrowser(data)
	if err != nil {
		s.g.instruments.reject(ctx, rejectInvalid)
		s.fail(ctx, websocket.StatusPolicyViolation, wireError{Text: "Invalid message: " + detail(err), Code: codeInvalidMessage})
		return false
	}
	s.g.instruments.countMessage(ctx, m.Type)
	if m.Type == typePing {
		// Keepalives are answered without a span: they would be most of the traces.
		s.write(msgPong)
		return true
	}
	return s.handleTraced(s.g.instruments.browserParent(ctx, &m), m.Type, m.Traceparent,
		func(ctx context.Context) (bool, string) { return b.dispatch(ctx, &m) })
}

func (b *browserDialect) dispatch(ctx context.Context, m *browserMsg) (bool, string) {
	s := b.s
	switch m.Type {
	case typeJoinPin:
		if s.state.Load() != stateIdle {
			s.sendError(ctx, wireError{Text: "Already joined a room on this connection: open a new connection to join another", Code: codeAlreadyJoined})
			return true, "already_joined"
		}
		if !roompin.Valid(m.PIN) {
			s.fail(ctx, websocket.StatusPolicyViolation, wireError{Text: invalidPINText(m.PINText), Code: codeInvalidPIN})
			return false, "bad_pin"
		}
		if !s.allowJoin(ctx, m.Type) {
			return false, "join_rate"
		}
		return b.join(ctx, &roomv1.MemberRequest{Msg: &roomv1.MemberRequest_Enter{Enter: &roomv1.Enter{Room: &roomv1.Enter_Pin{Pin: m.PIN}}}}, m.PIN)
	case typeResume:
		if s.state.Load() != stateIdle {
			s.sendError(ctx, wireError{Text: "Already joined a room on this connection: resume on a new connection", Code: codeAlreadyJoined})
			return true, "already_joined"
		}
		if !s.allowJoin(ctx, m.Type) {
			return false, "join_rate"
		}
		return b.join(ctx, &roomv1.MemberRequest{Msg: &roomv1.MemberRequest_Resume{Resume: &roomv1.Resume{ResumeToken: m.Token}}}, "")
	case typeOffer, typeAnswer, typeICECandidate:
		if s.state.Load() != stateJoined {
			s.sendError(ctx, wireError{Text: "Not in a room: join a room before sending " + m.Type, Code: codeNotInRoom})
			return true, "not_in_room"
		}
		s.sendSignal(ctx, &roomv1.Signal{Type: m.Type, Data: m.Data})
		return true, "ok"
	case typeSelfTest:
		if s.state.Load() != stateIdle {
			s.sendError(ctx, wireError{Text: "Already joined or testing on this connection: open a new connection for a self-test", Code: codeAlreadyJoined})
			return true, "already_joined"
		}
		if !s.allowJoin(ctx, m.Type) {
			return false, "join_rate"
		}
		return s.startSelfTest(ctx)
	case typeLeave:
		if s.state.Load() != stateJoined {
			s.sendError(ctx, wireError{Text: "Not in a room: there is nothing to leave", Code: codeNotInRoom})
			return true, "not_in_room"
		}
		s.leave(ctx, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP)
		return true, "ok"
	}
	return true, "ok" // decodeBrowser admits no other type
}

// join enters the PIN room (or resumes) and answers with the ICE servers roomsvc issued.
func (b *browserDialect) join(ctx context.Context, first *roomv1.MemberRequest, pin string) (bool, string) {
	s := b.s
	if !s.claimJoin() {
		return false, "join_timeout" // the socket is closed
	}
	resume := first.GetResume() != nil
	joined, ended := s.join(ctx, first)
	if ended != nil {
		return false, b.refuseJoin(ctx, ended, pin, resume)
	}
	answer := typeJoinPin
	if resume {
		answer = "resumed"
	}
	s.write(encodeJoinAnswer(answer, joined, joined.GetCredentials(), s.g.cfg.ForceRelay))
	s.startEvents()
	return true, "ok"
}

// refuseJoin tells the client why roomsvc refused the join, closes the socket, and returns
// the span's outcome.
func (b *browserDialect) refuseJoin(ctx context.Context, e *roomv1.Ended, pin string, resume bool) string {
	s := b.s
	code := connect.Code(e.GetCode())
	switch {
	case code == connect.CodeInvalidArgument && !resume:
		s.refuse(ctx, websocket.StatusPolicyViolation, wireError{Text: invalidPINText(pin), Code: codeInvalidPIN})
		return "bad_pin"
	case code == connect.CodeResourceExhausted && !resume:
		s.refuse(ctx, websocket.StatusPolicyViolation, wireError{Text: roomFullText(pin), Code: codeRoomFull})
		return "room_full"
	case resume && (code == connect.CodeNotFound || code == connect.CodeInvalidArgument || code == connect.CodeFailedPrecondition):
		s.refuse(ctx, websocket.StatusPolicyViolation, wireError{Text: "Cannot resume: the session has ended or the token is not valid; join again", Code: codeResumeFailed})
		return "bad_token"
	case e.GetReason() == "credentials_unavailable":
		s.log.WarnContext(ctx, "TURN credentials unavailable; the join fails", "err", e.GetMessage())
		s.refuse(ctx, websocket.StatusInternalError, wireError{Text: "Could not get connection details (TURN credentials): please try again shortly", Code: codeServiceUnavailable})
		return "credentials_unavailable"
	default:
		s.log.WarnContext(ctx, "room service refused or failed a join", "code", code.String(), "err", e.GetMessage())
		s.refuse(ctx, websocket.StatusInternalError, wireError{Text: "The room service is unavailable: please try again shortly", Code: codeServiceUnavailable})
		return "unavailable"
	}
}

// deliver writes one roomsvc event to the client.
func (b *browserDialect) deliver(ev *roomv1.MemberEvent) {
	s := b.s
	var (
		typ string
		out []byte
	)
	switch e := ev.GetEvent().(type) {
	case *roomv1.MemberEvent_PeerJoined:
		if s.role != roomv1.Role_ROLE_FIRST {
			return // only the member who was there first makes the offer
		}
		typ, out = "peer-joined", msgPeerJoined
	case *roomv1.MemberEvent_Signal:
		typ = e.Signal.GetType()
		switch typ {
		case typeOffer, typeAnswer, typeICECandidate:
			out = encodeRelay(typ, e.Signal.GetData())
		default:
			s.log.Warn("dropping a signal type the browser dialect does not know", "type", truncate(typ, 32))
			return
		}
	case *roomv1.MemberEvent_PeerLeft:
		typ, out = "peer-left", msgPeerLeft
	case *roomv1.MemberEvent_Error:
		s.deliverError(ev, wireError{Text: e.Error.GetReason(), Code: e.Error.GetCode()})
		return
	case *roomv1.MemberEvent_RoomClosed:
		// The membership is over: nothing follows.
		s.state.Store(stateLeft)
		text := "The room was closed by an operator"
		if r := e.RoomClosed.GetReason(); r != "" {
			text += ": " + r
		}
		s.refuse(context.Background(), websocket.StatusNormalClosure, wireError{Text: text, Code: codeRoomClosed})
		return
	default:
		return // joined again, lobby member lists: not part of this dialect
	}
	s.deliverTraced(ev, typ, out)
}

// detail is the human part of a decode error.
func detail(err error) string {
	msg := err.Error()
	prefix := errInvalidMessage.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

func invalidPINText(pin string) string {
	return "Invalid PIN format: " + pin + ". Must be 6 digits"
}

func roomFullText(pin string) string {
	return "Room " + pin + " is full (maximum 2 clients)"
}
