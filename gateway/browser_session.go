package gateway

import (
	"context"
	"errors"
	"github.com/tuturu/tuturu/internal/roompin"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// Session states. Only the reader goroutine moves a session forward; the event pump reads the
// state to decide whether the end of the stream is news for the browser.
const (
	stateIdle   int32 = iota // connected, not in a room
	stateJoined              // a member: the Join stream is open and pumping
	stateLeft                // left (or was made to leave): no more relays either way
)

// leaveDrainTimeout bounds the wait for roomsvc to end a stream after a leave.
const leaveDrainTimeout = 5 * time.Second

// session is one browser WebSocket connection and, once it joined, its roomsvc Join stream.
type session struct {
	g    *Gateway
	conn *websocket.Conn
	addr string
	log  *slog.Logger
	msgs bucket // messages per second, touched only by the reader

	state    atomic.Int32
	stopping atomic.Bool // the gateway is shutting down: keep the slot for a resume
	// pinger is read by its own callback, on another goroutine.
	pinger atomic.Pointer[time.Timer]

	// Set by join on the reader goroutine before the pump starts; read-only afterwards.
	stream       *connect.BidiStreamForClient[roomv1.JoinRequest, roomv1.JoinResponse]
	cancelStream context.CancelFunc
	pumpDone     chan struct{}
	role         roomv1.Role
	participant  string
	roomID       string

	// d is the socket's dialect: browser until a first frame of type "new" makes it Flutter.
	// Set by the reader before the pump starts; read-only afterwards.
	d      dialect
	frames int // text frames read, touched only by the reader

	closeOnce sync.Once

	// The join deadline: joinMu guards joinGate, and s.d against the timer's read.
	joinMu    sync.Mutex
	joinGate  int
	joinTimer *time.Timer
}

// Join gate states: a socket must claim a join before JoinTimeout, or the timer closes it.
const (
	gateOpen    = iota // no join yet: the timer will close the socket
	gateClaimed        // a join, resume or new started: it joins, or its failure closes the socket
	gateExpired        // the timer fired first
)

func newSession(g *Gateway, conn *websocket.Conn, addr string) *session {
	s := &session{g: g, conn: conn, addr: addr, log: g.cfg.Logger()}
	s.d = browserDialect{s}
	return s
}

// run reads browser messages until the socket ends, then ends the membership as the way the
// socket ended demands.
func (s *session) run() {
	ctx := context.Background()
	s.g.in.connections.Add(ctx, 1, s.d.metricAttr())
	defer func() { s.g.in.connections.Add(ctx, -1, s.d.metricAttr()) }()
	max := s.g.cfg.Limits.MaxMessageBytes
	s.conn.SetReadLimit(int64(max))
	s.pinger.Store(time.AfterFunc(s.g.cfg.PingInterval, s.ping))
	defer s.pinger.Load().Stop()
	s.joinMu.Lock()
	s.joinTimer = time.AfterFunc(s.g.cfg.JoinTimeout, s.joinTimedOut)
	s.joinMu.Unlock()
	defer s.joinTimer.Stop()

	for {
		typ, r, err := s.conn.Reader(ctx)
		if err != nil {
			s.socketEnded(err)
			return
		}
		// Read one byte past the limit to tell "too big" from "exactly the limit".
		buf := getBuffer()
		_, err = buf.ReadFrom(io.LimitReader(r, int64(max)+1))
		if err != nil {
			putBuffer(buf)
			s.socketEnded(err)
			return
		}
		data := buf.Bytes()
		if len(data) > max {
			s.g.in.reject(ctx, rejectSize)
			s.fail(ctx, websocket.StatusMessageTooBig, "message too big", s.d.errorFrame(wireError{Text: "Message too big: the limit is " + itoa(max) + " bytes", Code: codeMessageTooBig}))
			return
		}
		ok, _ := s.msgs.take(time.Now(), s.g.cfg.Limits.MessagesPerSecond, float64(s.g.cfg.Limits.MessageBurst))
		if !ok {
			s.g.in.reject(ctx, rejectRate)
			s.fail(ctx, websocket.StatusPolicyViolation, "rate limited", s.d.errorFrame(wireError{Text: "Too many messages: slow down (at most " + itoa(int(s.g.cfg.Limits.MessagesPerSecond)) + " per second)", Code: codeRateLimited}))
			return
		}
		if typ != websocket.MessageText {
			s.g.in.reject(ctx, rejectInvalid)
			s.fail(ctx, websocket.StatusPolicyViolation, "invalid message", s.d.errorFrame(wireError{Text: "Invalid message: binary frames are not part of the protocol", Code: codeInvalidMessage}))
			return
		}
		s.frames++
		if s.frames == 1 && isFlutterFirstFrame(data) {
			s.becomeFlutter(ctx)
		}
		ok = s.d.handle(ctx, data)
		putBuffer(buf) // handle has copied what it keeps (the stream marshals on Send)
		if !ok {
			return
		}
	}
}

// browserDialect is the original tuturu 1:1 protocol (DESIGN.md §3).
type browserDialect struct{ s *session }

func (b browserDialect) handle(ctx context.Context, data []byte) bool {
	s := b.s
	m, err := decodeBrowser(data)
	if err != nil {
		s.g.in.reject(ctx, rejectInvalid)
		s.fail(ctx, websocket.StatusPolicyViolation, "invalid message", encodeError("Invalid message: "+detail(err), codeInvalidMessage))
		return false
	}
	return s.handle(ctx, &m)
}

func (b browserDialect) errorFrame(e wireError) []byte {
	return mustJSON(errorMsg{Type: "error", Error: e.Text, Code: e.Code, RetryAfterMs: e.RetryAfterMs})
}

func (b browserDialect) deliver(ev *roomv1.JoinResponse) { b.s.deliver(ev) }

func (browserDialect) resumable() bool { return true }

func (b browserDialect) metricAttr() metric.MeasurementOption { return b.s.g.in.browserDialect }

// handle runs one valid message under its `signal <type>` span; false ends the session.
func (s *session) handle(ctx context.Context, m *browserMsg) bool {
	s.g.in.countMessage(ctx, m.Type)
	if m.Type == typePing {
		// Keepalives are answered without a span: they would be most of the traces.
		s.write(msgPong)
		return true
	}
	ctx, span := s.g.in.tracer.Start(s.g.in.browserParent(ctx, m), spanName(signalSpanNames, "signal ", m.Type),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrMessageType.String(m.Type)))
	defer span.End()
	if s.participant != "" {
		span.SetAttributes(attrParticipantID.String(s.participant), attrRoomID.String(s.roomID))
	}
	ok, outcome := s.dispatch(ctx, m)
	span.SetAttributes(attrOutcome.String(outcome))
	if outcome != "ok" {
		span.SetStatus(codes.Error, outcome)
	}
	return ok
}

func (s *session) dispatch(ctx context.Context, m *browserMsg) (bool, string) {
	switch m.Type {
	case typeJoinPin:
		if s.state.Load() != stateIdle {
			s.write(encodeError("Already joined a room on this connection: open a new connection to join another", codeAlreadyJoined))
			return true, "already_joined"
		}
		if !roompin.Valid(m.PIN) {
			s.fail(ctx, websocket.StatusPolicyViolation, "invalid PIN", encodeError(invalidPINText(m.PINText), codeInvalidPIN))
			return false, "bad_pin"
		}
		if !s.allowJoin(ctx, m.Type) {
			return false, "join_rate"
		}
		return s.join(ctx, &roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Enter{Enter: &roomv1.Enter{Room: &roomv1.Enter_Pin{Pin: m.PIN}}}}, m.PIN)
	case typeResume:
		if s.state.Load() != stateIdle {
			s.write(encodeError("Already joined a room on this connection: resume on a new connection", codeAlreadyJoined))
			return true, "already_joined"
		}
		if !s.allowJoin(ctx, m.Type) {
			return false, "join_rate"
		}
		return s.join(ctx, &roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Resume{Resume: &roomv1.Resume{ResumeToken: m.Token}}}, "")
	case typeOffer, typeAnswer, typeICECandidate:
		if s.state.Load() != stateJoined {
			s.write(encodeError("Not in a room: join a room before sending "+m.Type, codeNotInRoom))
			return true, "not_in_room"
		}
		// A failed send means the stream is gone; the pump reports why.
		_ = s.stream.Send(&roomv1.JoinRequest{
			TraceContext: s.g.in.inject(ctx),
			Msg:          &roomv1.JoinRequest_Signal{Signal: &roomv1.Signal{Type: m.Type, Data: m.Data}},
		})
		return true, "ok"
	case typeLeave:
		if s.state.Load() != stateJoined {
			s.write(encodeError("Not in a room: there is nothing to leave", codeNotInRoom))
			return true, "not_in_room"
		}
		s.leave(ctx, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP)
		return true, "ok"
	}
	return true, "ok" // decodeBrowser admits no other type
}

// allowJoin applies the per-address join limit; a refusal closes the socket with 1013.
func (s *session) allowJoin(ctx context.Context, request string) bool {
	ok, wait := s.g.joins.allow(s.addr, time.Now())
	if ok {
		return true
	}
	s.g.in.reject(ctx, rejectJoinRate)
	b := s.d.errorFrame(wireError{
		Request:      request,
		Text:         "Too many joins from your address: try again in " + itoa(int((wait+time.Second-1)/time.Second)) + " s",
		Code:         codeJoinRateLimited,
		RetryAfterMs: wait.Milliseconds(),
	})
	s.fail(ctx, websocket.StatusTryAgainLater, "too many joins", b)
	return false
}

// leave ends the membership for good: roomsvc removes the member at once and tells the other.
// The pump drains until roomsvc ends the stream, so the leave is not lost to a cancel.
func (s *session) leave(ctx context.Context, reason roomv1.LeaveReason) {
	if !s.state.CompareAndSwap(stateJoined, stateLeft) {
		return
	}
	s.sendLeave(ctx, reason)
}

// sendLeave sends the leave on the stream and waits, bounded, for roomsvc to end it.
func (s *session) sendLeave(ctx context.Context, reason roomv1.LeaveReason) {
	_ = s.stream.Send(&roomv1.JoinRequest{TraceContext: s.g.in.inject(ctx), Msg: &roomv1.JoinRequest_Leave{Leave: &roomv1.Leave{Reason: reason}}})
	_ = s.stream.CloseRequest()
	select {
	case <-s.pumpDone:
	case <-time.After(leaveDrainTimeout):
		s.log.Warn("room service did not end the stream after a leave")
	}
	s.cancelStream()
}

// drop ends the stream without a leave: roomsvc holds the slot for a resume.
func (s *session) drop() {
	if !s.state.CompareAndSwap(stateJoined, stateLeft) {
		return
	}
	s.cancelStream()
	// The HTTP/2 transport does not watch the context while it waits for more request body,
	// so a cancel alone would leave the stream open; closing the request side wakes it up.
	_ = s.stream.CloseRequest()
	<-s.pumpDone
}

// socketEnded handles the end of the socket: a close frame from the client is a goodbye; a
// dropped connection or dead keepalive keeps the slot for a resume, as does a gateway stop.
func (s *session) socketEnded(err error) {
	s.log.Debug("socket ended", "participant", s.participant, "close_status", int(websocket.CloseStatus(err)), "err", err)
	if websocket.CloseStatus(err) != -1 && !s.stopping.Load() {
		s.leave(context.Background(), roomv1.LeaveReason_LEAVE_REASON_CLOSED)
		s.closeSocket(websocket.StatusNormalClosure, "")
		return
	}
	switch {
	case !s.d.resumable():
		// A client that cannot resume would only leave a ghost for the grace period.
		reason := roomv1.LeaveReason_LEAVE_REASON_CONNECTION_LOST
		if s.stopping.Load() {
			reason = roomv1.LeaveReason_LEAVE_REASON_SHUTDOWN
		}
		s.leave(context.Background(), reason)
	default:
		s.drop()
	}
	if !s.stopping.Load() {
		s.closeNow()
	}
}

// fail sends an error, ends the membership (a violation is a leave) and closes the socket.
func (s *session) fail(ctx context.Context, code websocket.StatusCode, reason string, errMsg []byte) {
	s.write(errMsg)
	s.leave(ctx, roomv1.LeaveReason_LEAVE_REASON_VIOLATION)
	s.closeSocket(code, reason)
}

// shutdown closes the socket with 1001 when the gateway stops; the reader then drops the
// stream without a leave.
func (s *session) shutdown() {
	s.stopping.Store(true)
	s.closeSocket(websocket.StatusGoingAway, "server shutting down")
}

// claimJoin marks the start of a join (join-pin, resume, new); false means the join timeout
// already closed the socket. Every failed join closes the socket, so one claim is enough.
func (s *session) claimJoin() bool {
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	if s.joinGate == gateOpen {
		s.joinGate = gateClaimed
		s.joinTimer.Stop()
	}
	return s.joinGate == gateClaimed
}

// joinTimedOut closes a socket that did not start a join within JoinTimeout: pings would
// otherwise keep it open forever.
func (s *session) joinTimedOut() {
	s.joinMu.Lock()
	if s.joinGate != gateOpen {
		s.joinMu.Unlock()
		return
	}
	s.joinGate = gateExpired
	frame := s.d.errorFrame(wireError{
		Text: "No room joined within " + s.g.cfg.JoinTimeout.String() + ": join right after connecting",
		Code: codeJoinTimeout,
	})
	s.joinMu.Unlock()
	s.g.in.reject(context.Background(), rejectJoinTimeout)
	s.write(frame)
	s.closeSocket(websocket.StatusPolicyViolation, "join timeout")
}

// ping sends a WebSocket ping; a missing pong means the socket is dead.
func (s *session) ping() {
	ctx, cancel := context.WithTimeout(context.Background(), s.g.cfg.PingTimeout)
	err := s.conn.Ping(ctx)
	cancel()
	if err != nil {
		s.closeNow() // the reader sees the error and keeps the slot for a resume
		return
	}
	if t := s.pinger.Load(); t != nil {
		t.Reset(s.g.cfg.PingInterval)
	}
}

// write sends one text message. It sets no deadline of its own (a timer per message was a
// measurable cost): a client that stops reading also stops answering pings, and the pinger
// then closes the socket, which ends a blocked write within PingInterval + PingTimeout.
func (s *session) write(b []byte) {
	if err := s.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		s.log.Debug("write to socket failed", "err", err)
	}
}

// closeSocket closes with a close frame once; it waits (bounded by the library) for the
// client's answer.
func (s *session) closeSocket(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() { _ = s.conn.Close(code, reason) })
}

func (s *session) closeNow() {
	s.closeOnce.Do(func() { _ = s.conn.CloseNow() })
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

var errNoJoined = errors.New("room service answered without a joined event")
