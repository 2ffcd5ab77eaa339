package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// A session is one WebSocket: the reader loop, the limits, the join deadline, keepalives, the
// membership in roomsvc (through the gateway's link) and the queue of events for the client.
// What the client's messages mean is its dialect's business (browser_dialect.go,
// flutter_dialect.go).

// Session states. Only the reader goroutine moves a session forward; the pump reads the state
// to decide whether an event is still news for the client.
const (
	stateIdle    int32 = iota // connected, not in a room
	stateJoined               // a member: events are delivered
	stateLeft                 // left (or was made to leave): no more relays either way
	stateTesting              // a connection self-test: test credentials, never a room slot
)

// defaultSocketQueue bounds the events waiting to be written to one socket. A client this far
// behind is not reading: it is told so and disconnected, and the others never wait for it.
const defaultSocketQueue = 1024

// maxCloseReason is the longest close reason a close frame carries (RFC 6455: 125 bytes of
// payload, 2 of them the status code).
const maxCloseReason = 123

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

	// token is the member's latest resume token, for the link to re-attach it after a break.
	token atomic.Pointer[string]

	// Set by the reader when the session joins, before events are written; read-only afterwards.
	link        *roomLink // the link to the shard of the session's room
	id          uint64    // the link's id for this socket
	role        roomv1.Role
	participant string
	roomID      string

	// d is the socket's dialect: browser until a first frame of type "new" makes it Flutter.
	// Set by the reader before any event is written; read-only afterwards.
	dialect dialect
	frames  int // text frames read, touched only by the reader

	// Events from roomsvc waiting to be written. A pump goroutine exists only while there are
	// some: an idle socket costs its reader alone.
	outMu    sync.Mutex
	outbox   []*roomv1.MemberEvent
	pumping  bool
	ready    bool // the join answer is written: events may follow
	overflow bool

	closeOnce sync.Once

	// selfTest is the connection self-test's credential, set by the reader; revoked when the
	// socket ends (selftest.go).
	selfTest *selfTest

	// The join deadline: joinMu guards joinGate, and s.dialect against the timer's read.
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
	s.dialect = &browserDialect{s: s}
	return s
}

// run reads client messages until the socket ends, then ends the membership as the way the
// socket ended demands.
func (s *session) run() {
	ctx := context.Background()
	s.g.instruments.connections.Add(ctx, 1, s.dialect.metricAttr())
	defer func() { s.g.instruments.connections.Add(ctx, -1, s.dialect.metricAttr()) }()
	max := s.g.cfg.Limits.MaxMessageBytes
	s.conn.SetReadLimit(int64(max))
	s.pinger.Store(time.AfterFunc(s.g.cfg.PingInterval, s.ping))
	defer s.pinger.Load().Stop()
	s.joinMu.Lock()
	s.joinTimer = time.AfterFunc(s.g.cfg.JoinTimeout, s.joinTimedOut)
	s.joinMu.Unlock()
	defer s.joinTimer.Stop()
	defer s.endSelfTest()

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
			s.g.instruments.reject(ctx, rejectSize)
			s.fail(ctx, websocket.StatusMessageTooBig, wireError{Text: "Message too big: the limit is " + strconv.Itoa(max) + " bytes", Code: codeMessageTooBig})
			return
		}
		ok, _ := s.msgs.take(time.Now(), s.g.cfg.Limits.MessagesPerSecond, float64(s.g.cfg.Limits.MessageBurst))
		if !ok {
			s.g.instruments.reject(ctx, rejectRate)
			s.fail(ctx, websocket.StatusPolicyViolation, wireError{Text: "Too many messages: slow down (at most " + strconv.Itoa(int(s.g.cfg.Limits.MessagesPerSecond)) + " per second)", Code: codeRateLimited})
			return
		}
		if typ != websocket.MessageText {
			s.g.instruments.reject(ctx, rejectInvalid)
			s.fail(ctx, websocket.StatusPolicyViolation, wireError{Text: "Invalid message: binary frames are not part of the protocol", Code: codeInvalidMessage})
			return
		}
		s.frames++
		if s.frames == 1 && isFlutterFirstFrame(data) {
			s.becomeFlutter(ctx)
		}
		if s.state.Load() == stateIdle {
			ok = s.handleApart(ctx, data)
		} else {
			ok = s.dialect.handle(ctx, data)
		}
		putBuffer(buf) // handle has copied what it keeps (sendSignal)
		if !ok {
			return
		}
	}
}

// handleApart handles a frame on a goroutine of its own and waits for it. A join (decoding,
// spans, the answer's JSON) grows a goroutine's stack well past what reading frames needs,
// and a stack keeps its size until a garbage collection finds it idle: joins run apart so
// the reader that then waits on an idle socket keeps a small stack.
func (s *session) handleApart(ctx context.Context, data []byte) bool {
	done := make(chan bool, 1)
	go func() { done <- s.dialect.handle(ctx, data) }()
	return <-done
}

// becomeFlutter switches the socket to the Flutter dialect; it runs on the reader before the
// first frame is handled, so before any event is written.
func (s *session) becomeFlutter(ctx context.Context) {
	old := s.dialect.metricAttr()
	s.joinMu.Lock() // the join timer may read s.dialect
	s.dialect = &flutterDialect{s: s}
	s.joinMu.Unlock()
	s.g.instruments.connections.Add(ctx, -1, old)
	s.g.instruments.connections.Add(ctx, 1, s.dialect.metricAttr())
}

// allowJoin applies the per-address join limit; a refusal closes the socket with 1013.
func (s *session) allowJoin(ctx context.Context, request string) bool {
	ok, wait := s.g.joins.allow(s.addr, time.Now())
	if ok {
		return true
	}
	s.g.instruments.reject(ctx, rejectJoinRate)
	s.fail(ctx, websocket.StatusTryAgainLater, wireError{
		Request:      request,
		Text:         "Too many joins from your address: try again in " + strconv.Itoa(int((wait+time.Second-1)/time.Second)) + " s",
		Code:         codeJoinRateLimited,
		RetryAfterMs: wait.Milliseconds(),
	})
	return false
}

// join sends first (an enter or a resume) to roomsvc and waits, at most RPCTimeout, for its
// answer: Joined, with the member's identity and TURN credentials, or Ended with the refusal.
// It runs on the reader, so the client's next messages wait until the join is answered. After
// a Joined the dialect writes its answer and calls startEvents.
func (s *session) join(ctx context.Context, first *roomv1.MemberRequest) (*roomv1.Joined, *roomv1.Ended) {
	first.TraceContext = s.g.instruments.inject(ctx)
	s.link = requestShard(s.g.shards, first).link
	s.id = s.link.newID()
	ev, err := s.link.open(ctx, s.id, s, first, s.g.cfg.RPCTimeout)
	if err != nil {
		s.log.WarnContext(ctx, "room service did not answer a join", "err", err)
		return nil, &roomv1.Ended{Code: uint32(connect.CodeUnavailable), Reason: "unavailable", Message: err.Error()}
	}
	if e := ev.GetEnded(); e != nil {
		return nil, e
	}
	joined := ev.GetJoined()
	tok := joined.GetResumeToken()
	s.token.Store(&tok)
	s.role, s.participant, s.roomID = joined.GetSelf().GetRole(), joined.GetSelf().GetParticipantId(), joined.GetRoomId()
	trace.SpanFromContext(ctx).SetAttributes(attrParticipantID.String(s.participant), attrRoomID.String(s.roomID), attrRole.String(roleName(s.role)))
	return joined, nil
}

// startEvents marks the session joined once the dialect has answered the join, and writes
// the events that came meanwhile.
func (s *session) startEvents() {
	s.state.Store(stateJoined)
	s.outMu.Lock()
	s.ready = true
	s.kickLocked()
	s.outMu.Unlock()
}

// sendSignal forwards a signal to roomsvc under the current span's trace. The data is copied:
// it points into the reader's frame buffer, which is reused before the link sends it.
func (s *session) sendSignal(ctx context.Context, sig *roomv1.Signal) {
	sig.Data = bytes.Clone(sig.Data)
	s.link.send(&roomv1.MemberRequest{SessionId: s.id, TraceContext: s.g.instruments.inject(ctx), Msg: &roomv1.MemberRequest_Signal{Signal: sig}})
}

// leave ends the membership for good: roomsvc removes the member at once and tells the others.
func (s *session) leave(ctx context.Context, reason roomv1.LeaveReason) {
	if !s.state.CompareAndSwap(stateJoined, stateLeft) {
		return
	}
	s.link.leave(s.id, &roomv1.MemberRequest{TraceContext: s.g.instruments.inject(ctx), Msg: &roomv1.MemberRequest_Leave{Leave: &roomv1.Leave{Reason: reason}}})
}

// drop ends the membership without a leave: roomsvc holds the slot for a resume.
func (s *session) drop() {
	if !s.state.CompareAndSwap(stateJoined, stateLeft) {
		return
	}
	s.link.leave(s.id, &roomv1.MemberRequest{Msg: &roomv1.MemberRequest_Detach{Detach: &roomv1.Detach{}}})
}

// resumeToken is the member's latest resume token (linkMember).
func (s *session) resumeToken() string {
	if t := s.token.Load(); t != nil {
		return *t
	}
	return ""
}

// event queues one roomsvc event for the client (linkMember). Called by the link's reader: it
// never blocks. A socket whose queue is full is not reading, and is disconnected. A Joined is
// the link's re-attach after a break: the client, still connected, needs nothing of it.
func (s *session) event(ev *roomv1.MemberEvent) {
	if j := ev.GetJoined(); j != nil {
		tok := j.GetResumeToken()
		s.token.Store(&tok)
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if s.overflow {
		return
	}
	if len(s.outbox) >= s.g.cfg.SocketQueue {
		s.overflow = true
		s.outbox = nil
		go s.tooSlow()
		return
	}
	s.outbox = append(s.outbox, ev)
	s.kickLocked()
}

// lost is the link's news that the stream to roomsvc stayed down too long to re-attach the
// member (linkMember): the client is told to reconnect and resume, after the events already
// queued.
func (s *session) lost() {
	s.event(&roomv1.MemberEvent{Event: &roomv1.MemberEvent_Ended{Ended: &roomv1.Ended{
		Code: uint32(connect.CodeUnavailable), Reason: "link_lost", Message: "stream to the room service broke",
	}}})
}

// kickLocked starts the pump if there is something to write and none runs. outMu held.
func (s *session) kickLocked() {
	if s.ready && !s.pumping && len(s.outbox) > 0 {
		s.pumping = true
		go s.pump()
	}
}

// pump writes queued events until the queue is empty.
func (s *session) pump() {
	var batch []*roomv1.MemberEvent
	for {
		s.outMu.Lock()
		if len(s.outbox) == 0 || s.overflow {
			s.pumping = false
			s.outMu.Unlock()
			return
		}
		batch, s.outbox = s.outbox, batch[:0]
		s.outMu.Unlock()
		for _, ev := range batch {
			s.deliver(ev)
		}
		clear(batch)
	}
}

// deliver writes one event: an Ended (roomsvc stopped, the stream broke, the slot was taken
// by a resume elsewhere) closes the socket with 1012 so the client reconnects and resumes;
// the rest is the dialect's.
func (s *session) deliver(ev *roomv1.MemberEvent) {
	if s.state.Load() != stateJoined {
		return // left: nothing more reaches this client
	}
	if e := ev.GetEnded(); e != nil {
		if s.stopping.Load() || !s.state.CompareAndSwap(stateJoined, stateLeft) {
			return
		}
		if e.GetReason() == "resumed_elsewhere" {
			// Routine: a client renewing its TURN credentials resumes on a second socket
			// while this one is open (or this one was a dead socket it had already replaced).
			s.log.Info("session resumed on another socket", "reason", e.GetReason())
		} else {
			s.log.Warn("room service ended the membership", "reason", e.GetReason(), "err", e.GetMessage())
		}
		s.refuse(context.Background(), websocket.StatusServiceRestart, wireError{Text: "Lost the connection to the room service: reconnect and resume", Code: codeServiceUnavailable})
		return
	}
	s.dialect.deliver(ev)
}

// deliverTraced writes out, the client's form of ev, under a `deliver <typ>` span whose
// parent is the event's trace context (the sender's message), so a relay is one trace.
func (s *session) deliverTraced(ev *roomv1.MemberEvent, typ string, out []byte) {
	_, span := s.deliverSpan(ev, typ)
	s.write(out)
	span.End()
}

// deliverError writes e, an error roomsvc sent for this client, under its `deliver error`
// span, which then carries the error's support code.
func (s *session) deliverError(ev *roomv1.MemberEvent, e wireError) {
	ctx, span := s.deliverSpan(ev, "error")
	s.sendError(ctx, e)
	span.End()
}

func (s *session) deliverSpan(ev *roomv1.MemberEvent, typ string) (context.Context, trace.Span) {
	ctx := context.Background()
	if len(ev.GetTraceContext()) > 0 {
		ctx = s.g.instruments.propagator.Extract(ctx, mapCarrier(ev.GetTraceContext()))
	}
	return s.g.instruments.tracer.Start(ctx, spanName(deliverSpanNames, "deliver ", typ), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrMessageType.String(typ), attrParticipantID.String(s.participant), attrRoomID.String(s.roomID)))
}

// tooSlow disconnects a client that stopped reading: its membership ends as a dropped socket
// would (held for a resume where the dialect can resume), and it gets its error if it reads
// again before the close handshake gives up.
func (s *session) tooSlow() {
	s.g.instruments.reject(context.Background(), rejectSlow)
	s.log.Warn("socket is not reading its events; disconnecting it", "participant", s.participant, "queued", s.g.cfg.SocketQueue)
	if s.dialect.resumable() {
		s.drop()
	} else {
		s.leave(context.Background(), roomv1.LeaveReason_LEAVE_REASON_CONNECTION_LOST)
	}
	s.refuse(context.Background(), websocket.StatusPolicyViolation, wireError{
		Text: "Too slow: " + strconv.Itoa(s.g.cfg.SocketQueue) + " messages were waiting for this connection; reconnect",
		Code: codeSlowConsumer,
	})
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
	case !s.dialect.resumable():
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
func (s *session) fail(ctx context.Context, code websocket.StatusCode, e wireError) {
	s.writeError(ctx, slog.LevelInfo, s.dialect, e)
	s.leave(ctx, roomv1.LeaveReason_LEAVE_REASON_VIOLATION)
	s.closeSocket(code, e.Text)
}

// refuse sends an error and closes the socket with code and the error's text as the reason.
func (s *session) refuse(ctx context.Context, code websocket.StatusCode, e wireError) {
	s.writeError(ctx, slog.LevelInfo, s.dialect, e)
	s.closeSocket(code, e.Text)
}

// shutdown closes the socket with 1001 when the gateway stops; the reader then drops the
// membership without a leave.
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
	d := s.dialect
	s.joinMu.Unlock()
	s.g.instruments.reject(context.Background(), rejectJoinTimeout)
	e := wireError{Text: "No room joined within " + s.g.cfg.JoinTimeout.String() + ": join right after connecting", Code: codeJoinTimeout}
	s.writeError(context.Background(), slog.LevelInfo, d, e)
	s.closeSocket(websocket.StatusPolicyViolation, e.Text)
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

// write sends one text message. It sets no deadline of its own: a client that stops reading
// also stops answering pings, and the pinger then closes the socket, which ends a blocked
// write within PingInterval + PingTimeout.
func (s *session) write(b []byte) {
	if err := s.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		s.log.Debug("write to socket failed", "err", err)
	}
}

// closeSocket closes with a close frame once, reason cut to what a close frame holds; it
// waits (bounded by the library) for the client's answer.
func (s *session) closeSocket(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() { _ = s.conn.Close(code, truncateUTF8(reason, maxCloseReason)) })
}

func (s *session) closeNow() {
	s.closeOnce.Do(func() { _ = s.conn.CloseNow() })
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// handleTraced runs dispatch for one client message of type typ under its `signal <type>`
// span, a child of parent (the client's own trace when it sent one), and records the outcome
// dispatch reports on the span. Both dialects handle their messages through it.
func (s *session) handleTraced(parent context.Context, typ, traceparent string, dispatch func(context.Context) (bool, string)) bool {
	ctx, span := s.g.instruments.tracer.Start(parent, spanName(signalSpanNames, "signal ", typ),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrMessageType.String(typ)))
	defer span.End()
	tagClientTrace(span, traceparent)
	if s.participant != "" {
		span.SetAttributes(attrParticipantID.String(s.participant), attrRoomID.String(s.roomID))
	}
	ok, outcome := dispatch(ctx)
	span.SetAttributes(attrOutcome.String(outcome))
	if outcome != "ok" {
		span.SetStatus(codes.Error, outcome)
	}
	return ok
}
