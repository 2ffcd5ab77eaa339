package gateway

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/trace"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// join opens the member's Join stream with first (an enter or a resume), waits for Joined,
// fetches ICE servers for the new participant, answers the browser and starts the event pump.
// It runs on the reader goroutine, so the browser's next messages wait until the join is done.
func (s *session) join(ctx context.Context, first *roomv1.JoinRequest, pin string) (bool, string) {
	if !s.claimJoin() {
		return false, "join_timeout" // the socket is closed
	}
	resume := first.GetResume() != nil
	joined, err := s.openStream(ctx, first)
	if err != nil {
		s.refuseJoin(ctx, err, pin, resume)
		return false, outcomeOf(err)
	}

	// Credentials only for a socket that has joined: a PIN guesser gets no TURN access.
	ictx, icancel := context.WithTimeout(ctx, s.g.cfg.RPCTimeout)
	creds, err := s.g.creds.Issue(ictx, connect.NewRequest(&credv1.IssueRequest{ParticipantId: s.participant}))
	icancel()
	if err != nil {
		s.log.WarnContext(ctx, "TURN credentials unavailable; the join fails", "err", err)
		// The member never got its answer, so it leaves at once rather than being held.
		s.state.Store(stateLeft)
		go s.pump()
		s.write(encodeError("Could not get connection details (TURN credentials): please try again shortly", codeServiceUnavailable))
		s.sendLeave(ctx, roomv1.LeaveReason_LEAVE_REASON_CLOSED)
		s.closeSocket(websocket.StatusInternalError, "credentials unavailable")
		return false, "credentials_unavailable"
	}
	answer := typeJoinPin
	if resume {
		answer = "resumed"
	}
	s.write(encodeJoinAnswer(answer, joined, creds.Msg, s.g.cfg.ForceRelay))
	s.state.Store(stateJoined)
	go s.pump()
	return true, "ok"
}

// openStream opens the member's Join stream with first (an enter or a resume) and waits, at
// most RPCTimeout, for Joined. On success the session holds the stream (the caller starts the
// pump); on failure the stream is ended and the error has roomsvc's code.
func (s *session) openStream(ctx context.Context, first *roomv1.JoinRequest) (*roomv1.Joined, error) {
	// The stream lives as long as the membership, not as long as this message's span.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	timer := time.AfterFunc(s.g.cfg.RPCTimeout, cancel)
	stream := s.g.rooms.Join(streamCtx)
	first.TraceContext = s.g.in.inject(ctx)
	_ = stream.Send(first) // a failed send shows up in Receive with the server's reason
	ev, err := stream.Receive()
	timer.Stop()
	if err == nil && ev.GetJoined() == nil {
		err = errNoJoined
	}
	if err != nil {
		cancel()
		_ = stream.CloseRequest() // see drop: a cancel alone may not end the HTTP/2 stream
		return nil, err
	}
	joined := ev.GetJoined()
	s.stream, s.cancelStream = stream, cancel
	s.role, s.participant, s.roomID = joined.GetSelf().GetRole(), joined.GetSelf().GetParticipantId(), joined.GetRoomId()
	s.pumpDone = make(chan struct{})
	trace.SpanFromContext(ctx).SetAttributes(attrParticipantID.String(s.participant), attrRoomID.String(s.roomID), attrRole.String(roleName(s.role)))
	return joined, nil
}

// refuseJoin tells the browser why roomsvc refused the join and closes the socket.
func (s *session) refuseJoin(ctx context.Context, err error, pin string, resume bool) {
	code := connect.CodeOf(err)
	switch {
	case code == connect.CodeInvalidArgument && !resume:
		s.write(encodeError(invalidPINText(pin), codeInvalidPIN))
		s.closeSocket(websocket.StatusPolicyViolation, "invalid PIN")
	case code == connect.CodeResourceExhausted && !resume:
		s.write(encodeError(roomFullText(pin), codeRoomFull))
		s.closeSocket(websocket.StatusPolicyViolation, "room full")
	case resume && (code == connect.CodeNotFound || code == connect.CodeInvalidArgument || code == connect.CodeFailedPrecondition):
		s.write(encodeError("Cannot resume: the session has ended or the token is not valid; join again", codeResumeFailed))
		s.closeSocket(websocket.StatusPolicyViolation, "resume failed")
	default:
		s.log.WarnContext(ctx, "room service refused or failed a join", "code", code.String(), "err", err)
		s.write(encodeError("The room service is unavailable: please try again shortly", codeServiceUnavailable))
		s.closeSocket(websocket.StatusInternalError, "room service unavailable")
	}
}

func outcomeOf(err error) string {
	if errors.Is(err, errNoJoined) {
		return "protocol_error"
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument:
		return "bad_pin"
	case connect.CodeResourceExhausted:
		return "room_full"
	case connect.CodeNotFound:
		return "bad_token"
	}
	return "unavailable"
}

// pump delivers roomsvc's events to the browser until the stream ends. An end the gateway did
// not ask for (roomsvc stopped, the internal connection broke) closes the socket with 1012, so
// the client reconnects and resumes.
func (s *session) pump() {
	defer close(s.pumpDone)
	for {
		ev, err := s.stream.Receive()
		if err != nil {
			if s.state.Load() == stateJoined && !s.stopping.Load() {
				s.log.Warn("room service ended the stream", "code", connect.CodeOf(err).String(), "err", err)
				s.write(s.d.errorFrame(wireError{Text: "Lost the connection to the room service: reconnect and resume", Code: codeServiceUnavailable}))
				s.closeSocket(websocket.StatusServiceRestart, "room service unavailable")
			}
			return
		}
		if s.state.Load() != stateJoined {
			continue // left: nothing more reaches this browser; drain until roomsvc ends the stream
		}
		s.d.deliver(ev)
	}
}

// deliver writes one roomsvc event to the browser under a `deliver <type>` span that
// continues the trace of the sender's message.
func (s *session) deliver(ev *roomv1.JoinResponse) {
	var (
		typ string
		out []byte
	)
	switch e := ev.GetEvent().(type) {
	case *roomv1.JoinResponse_PeerJoined:
		if s.role != roomv1.Role_ROLE_FIRST {
			return // only the member who was there first makes the offer
		}
		typ, out = "peer-joined", msgPeerJoined
	case *roomv1.JoinResponse_Signal:
		typ = e.Signal.GetType()
		switch typ {
		case typeOffer, typeAnswer, typeICECandidate:
			out = encodeRelay(typ, e.Signal.GetData())
		default:
			s.log.Warn("dropping a signal type the browser dialect does not know", "type", truncate(typ, 32))
			return
		}
	case *roomv1.JoinResponse_PeerLeft:
		typ, out = "peer-left", msgPeerLeft
	case *roomv1.JoinResponse_Error:
		typ, out = "error", encodeError(e.Error.GetReason(), e.Error.GetCode())
	case *roomv1.JoinResponse_RoomClosed:
		// roomsvc ends the stream after this; the member is gone, so the pump stays quiet.
		s.state.Store(stateLeft)
		text := "The room was closed by an operator"
		if r := e.RoomClosed.GetReason(); r != "" {
			text += ": " + r
		}
		s.write(encodeError(text, codeRoomClosed))
		s.closeSocket(websocket.StatusNormalClosure, "room closed")
		return
	default:
		return // joined again, lobby member lists: not part of this dialect
	}
	s.deliverTraced(ev, typ, out)
}

// deliverTraced writes out, the client's form of ev, under a `deliver <typ>` span whose
// parent is the event's trace context (the sender's message), so a relay is one trace.
func (s *session) deliverTraced(ev *roomv1.JoinResponse, typ string, out []byte) {
	ctx := context.Background()
	if len(ev.GetTraceContext()) > 0 {
		ctx = s.g.in.propagator.Extract(ctx, mapCarrier(ev.GetTraceContext()))
	}
	_, span := s.g.in.tracer.Start(ctx, spanName(deliverSpanNames, "deliver ", typ), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrMessageType.String(typ), attrParticipantID.String(s.participant), attrRoomID.String(s.roomID)))
	s.write(out)
	span.End()
}
