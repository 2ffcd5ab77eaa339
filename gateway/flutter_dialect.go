package gateway

import (
	"context"
	"strings"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/metric"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// flutterLobby is the lobby every Flutter client enters: the original server had one.
const flutterLobby = "default"

// flutterDialect speaks flutter-webrtc-server's protocol on a session: `new` enters the lobby,
// signals are addressed to peer ids, and the lobby's member list
// comes back as `peers`.
type flutterDialect struct {
	s  *session
	id string // the registered peer id; set by the reader at join, read-only afterwards
}

func (f *flutterDialect) errorFrame(e wireError) []byte { return encodeFlutterError(e) }

// A Flutter app cannot resume, so a dropped socket leaves at once and the others are told.
func (f *flutterDialect) resumable() bool { return false }

func (f *flutterDialect) metricAttr() metric.MeasurementOption {
	return f.s.g.instruments.flutterDialect
}

// handle decodes one frame and runs it under its `signal <type>` span.
func (f *flutterDialect) handle(ctx context.Context, data []byte) bool {
	s := f.s
	m, err := decodeFlutter(data)
	if err != nil {
		s.g.instruments.reject(ctx, rejectInvalid)
		s.fail(ctx, websocket.StatusPolicyViolation, wireError{Request: truncate(m.Type, 32), Text: "Invalid message: " + detail(err), Code: codeInvalidMessage})
		return false
	}
	s.g.instruments.countMessage(ctx, m.Type)
	if m.Type == flutterKeepalive {
		// Answered without a span, like the browser's ping: they would be most of the traces.
		s.write(msgKeepalive)
		return true
	}
	return s.handleTraced(s.g.instruments.clientParent(ctx, m.Traceparent, m.Tracestate), m.Type, m.Traceparent,
		func(ctx context.Context) (bool, string) { return f.dispatch(ctx, &m) })
}

// refuse answers an error that leaves the socket open.
func (f *flutterDialect) refuse(ctx context.Context, m *flutterMsg, text, code string) {
	f.s.sendError(ctx, wireError{Request: m.Type, Text: text, Code: code})
}

func (f *flutterDialect) dispatch(ctx context.Context, m *flutterMsg) (bool, string) {
	s := f.s
	switch m.Type {
	case flutterNew:
		if s.state.Load() != stateIdle {
			f.refuse(ctx, m, "Already registered on this connection: open a new connection to register again", codeAlreadyJoined)
			return true, "already_joined"
		}
		if s.g.cfg.Flutter.LobbyOff {
			s.fail(ctx, websocket.StatusPolicyViolation, wireError{Request: m.Type, Text: "The Flutter lobby is turned off on this server", Code: codeLobbyDisabled})
			return false, "lobby_disabled"
		}
		if !s.allowJoin(ctx, m.Type) {
			return false, "join_rate"
		}
		return f.register(ctx, m)
	case flutterOffer, flutterAnswer, flutterCandidate, flutterBye:
		if s.state.Load() != stateJoined {
			f.refuse(ctx, m, "Not registered: send new before "+m.Type, codeNotInRoom)
			return true, "not_in_room"
		}
		if m.From != f.id {
			// The original trusted "from", so anyone could speak for anyone.
			f.refuse(ctx, m, "data.from must be your own id ("+f.id+")", codeForgedFrom)
			return true, "forged_from"
		}
		if m.Type == flutterBye {
			return f.bye(ctx, m)
		}
		s.sendSignal(ctx, &roomv1.Signal{Type: m.Type, Data: m.Data, To: m.To})
		return true, "ok"
	case flutterLeave:
		// Not sent by the demo apps (they close the socket), but the original accepted it.
		if s.state.Load() != stateJoined {
			f.refuse(ctx, m, "Not registered: there is nothing to leave", codeNotInRoom)
			return true, "not_in_room"
		}
		s.leave(ctx, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP)
		return true, "ok"
	}
	return true, "ok" // decodeFlutter admits no other type
}

// register enters the lobby under the client's id. A taken id is refused: the original let a
// newcomer take over another client's id.
func (f *flutterDialect) register(ctx context.Context, m *flutterMsg) (bool, string) {
	s := f.s
	if !s.claimJoin() {
		return false, "join_timeout" // the socket is closed
	}
	_, ended := s.join(ctx, &roomv1.MemberRequest{Msg: &roomv1.MemberRequest_Enter{Enter: &roomv1.Enter{
		Room:   &roomv1.Enter_Lobby{Lobby: flutterLobby},
		PeerId: m.ID, Name: m.Name, UserAgent: m.UserAgent,
	}}})
	if ended != nil {
		var (
			e       = wireError{Request: m.Type}
			status  = websocket.StatusPolicyViolation
			outcome string
		)
		switch code := connect.Code(ended.GetCode()); code {
		case connect.CodeAlreadyExists:
			e.Text, e.Code, outcome = "Peer id "+truncate(m.ID, 64)+" is already in use: choose another id", codeIDTaken, "id_taken"
		case connect.CodeInvalidArgument:
			e.Text, e.Code, outcome = "Invalid peer: "+truncate(ended.GetMessage(), 200), codeBadPeerInfo, "bad_peer"
		case connect.CodeResourceExhausted:
			// roomsvc's LOBBY_MAX_MEMBERS: "lobby default is full (maximum N members)".
			e.Text, e.Code, outcome = "The "+truncate(ended.GetMessage(), 200)+": try again later", codeLobbyFull, "lobby_full"
		default:
			s.log.WarnContext(ctx, "room service refused or failed a lobby join", "code", code.String(), "err", ended.GetMessage())
			e.Text, e.Code, outcome = "The room service is unavailable: please try again shortly", codeServiceUnavailable, "unavailable"
			status = websocket.StatusInternalError
		}
		s.refuse(ctx, status, e)
		return false, outcome
	}
	f.id = m.ID
	s.startEvents()
	return true, "ok"
}

// bye ends a session between two peers: session_id is "<a>-<b>" and the sender is one of the
// legs. The other leg is told through roomsvc and the sender gets its bye back, as the
// original sent it to both legs. Ids may contain '-', so the other leg is what is left of
// session_id once the sender's own id is taken off either end.
func (f *flutterDialect) bye(ctx context.Context, m *flutterMsg) (bool, string) {
	s := f.s
	other, ok := otherLeg(m.SessionID, f.id)
	if !ok {
		f.refuse(ctx, m, "Invalid session ["+truncate(m.SessionID, 64)+"]: expected <your id>-<peer id> or <peer id>-<your id>", codeInvalidSession)
		return true, "invalid_session"
	}
	if other != f.id {
		s.sendSignal(ctx, &roomv1.Signal{Type: flutterBye, Data: encodeByeData(other, m.SessionID, f.id), To: other})
	}
	s.write(encodeRelay(flutterBye, encodeByeData(f.id, m.SessionID, f.id)))
	return true, "ok"
}

// otherLeg returns the leg of sessionID that is not self.
func otherLeg(sessionID, self string) (string, bool) {
	if rest, ok := strings.CutPrefix(sessionID, self+"-"); ok && rest != "" {
		return rest, true
	}
	if rest, ok := strings.CutSuffix(sessionID, "-"+self); ok && rest != "" {
		return rest, true
	}
	return "", false
}

// deliver turns a roomsvc event into the Flutter frame for it.
func (f *flutterDialect) deliver(ev *roomv1.MemberEvent) {
	s := f.s
	var (
		typ string
		out []byte
	)
	switch e := ev.GetEvent().(type) {
	case *roomv1.MemberEvent_Signal:
		typ = e.Signal.GetType()
		switch typ {
		case flutterOffer, flutterAnswer, flutterCandidate, flutterBye:
			out = encodeRelay(typ, e.Signal.GetData())
		default:
			s.log.Warn("dropping a signal type the Flutter dialect does not know", "type", truncate(typ, 32))
			return
		}
	case *roomv1.MemberEvent_MembersChanged:
		typ, out = flutterPeers, encodePeers(e.MembersChanged.GetMembers())
	case *roomv1.MemberEvent_PeerLeft:
		typ, out = flutterLeave, encodeLeave(e.PeerLeft.GetMember().GetPeerId())
	case *roomv1.MemberEvent_Error:
		s.deliverError(ev, wireError{Request: e.Error.GetRequest(), Text: e.Error.GetReason(), Code: e.Error.GetCode()})
		return
	case *roomv1.MemberEvent_RoomClosed:
		s.state.Store(stateLeft)
		text := "The lobby was closed by an operator"
		if r := e.RoomClosed.GetReason(); r != "" {
			text += ": " + r
		}
		s.refuse(context.Background(), websocket.StatusNormalClosure, wireError{Text: text, Code: codeRoomClosed})
		return
	default:
		return // joined, peer_joined: the lobby list says it all
	}
	s.deliverTraced(ev, typ, out)
}
