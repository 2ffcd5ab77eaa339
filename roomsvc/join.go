package roomsvc

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// A Join stream is handled by one goroutine, which receives the member's messages and applies
// them to the hub in order. Events for the member are sent by a pump goroutine that the hub
// starts when events are queued and that ends when the queue is empty: an idle member costs
// one goroutine, and there is never a goroutine per message.

type joinStream = connect.BidiStream[roomv1.JoinRequest, roomv1.JoinResponse]

// Join implements tuturu.room.v1.RoomService.Join.
func (s *Service) Join(ctx context.Context, stream *joinStream) error {
	s.streams.Add(1)
	defer s.streams.Add(-1)
	sc := controlOf(ctx)
	if sc == nil {
		// Only withStreamControl mounts this handler; without it a stream could not be ended.
		return connect.NewError(connect.CodeInternal, errors.New("join stream without stream control"))
	}
	sess := newSession()
	sess.interrupt = sc.interrupt
	sess.pump = func() { s.pump(stream, sc.gate, sess) }
	if !s.track(sess) {
		return errShuttingDown.connectErr()
	}
	defer s.untrack(sess)

	req, err := stream.Receive()
	if err != nil {
		switch {
		case s.isStopping():
			return errShuttingDown.connectErr()
		case errors.Is(err, io.EOF):
			return errNotJoined.connectErr()
		}
		return err
	}
	m, rej := s.first(req, sess)
	if rej != nil {
		return rej.connectErr()
	}
	for {
		req, err := stream.Receive()
		if err != nil {
			// Dropped without a leave (cancel, crash, half-close), or interrupted because the
			// hub ended the session: detach holds the slot only in the first case.
			s.hub.detach(m, sess)
			return s.end(stream, sess, nil)
		}
		if end, err := s.handle(m, sess, req); end {
			return s.end(stream, sess, err)
		}
	}
}

// end waits for the pump (no Send may follow the handler's return), then ends the stream as
// the hub decided, or with err.
func (s *Service) end(stream *joinStream, sess *session, err error) error {
	sess.pumps.Wait()
	select {
	case <-sess.done:
	default:
		return err
	}
	for _, ev := range sess.final {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	if sess.err != nil {
		return sess.err.connectErr()
	}
	return nil
}

// pump sends the member's queued events until the queue is empty. A batch is flushed once.
func (s *Service) pump(stream *joinStream, gate *flushGate, sess *session) {
	defer sess.pumps.Done()
	m := sess.m
	var batch []*roomv1.JoinResponse
	for {
		batch = s.hub.take(m, sess, batch)
		if len(batch) == 0 {
			return
		}
		for i, ev := range batch {
			gate.held = i < len(batch)-1 // the last event of a batch flushes them all
			if err := stream.Send(ev); err != nil {
				gate.held = false
				// The stream is broken: hold the slot and make the handler notice.
				s.hub.detach(m, sess)
				sess.interrupt()
				s.hub.take(m, sess, nil) // clears pumping
				return
			}
		}
		clear(batch)
	}
}

// track registers a stream that may wait for its first message, so that stop can interrupt
// it; it reports false when the service is stopping.
func (s *Service) track(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.waiting[sess] = struct{}{}
	return true
}

func (s *Service) untrack(sess *session) {
	s.mu.Lock()
	delete(s.waiting, sess)
	s.mu.Unlock()
}

func (s *Service) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

type streamControl struct {
	rc   *http.ResponseController
	gate *flushGate
}

type streamControlKey struct{}

// withStreamControl puts a streamControl in the request context of every Join stream.
func withStreamControl(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok { // Connect will refuse the stream itself
			h.ServeHTTP(w, r)
			return
		}
		gate := &flushGate{ResponseWriter: w, flusher: f}
		sc := &streamControl{rc: http.NewResponseController(w), gate: gate}
		h.ServeHTTP(gate, r.WithContext(context.WithValue(r.Context(), streamControlKey{}, sc)))
	})
}

// flushGate passes writes through and drops flushes while held. Only the stream's handler
// goroutine (the writer) touches it.
type flushGate struct {
	http.ResponseWriter
	flusher http.Flusher
	held    bool
}

// Flush implements http.Flusher.
func (g *flushGate) Flush() {
	if !g.held {
		g.flusher.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (g *flushGate) Unwrap() http.ResponseWriter { return g.ResponseWriter }

func controlOf(ctx context.Context) *streamControl {
	sc, _ := ctx.Value(streamControlKey{}).(*streamControl)
	return sc
}

// interrupt makes the stream's pending (or next) Receive return at once. A deadline in the
// past closes the request body without blocking and leaves the response open.
func (sc *streamControl) interrupt() {
	_ = sc.rc.SetReadDeadline(time.Now().Add(-time.Second))
}

// first handles the message that must open a stream.
func (s *Service) first(req *roomv1.JoinRequest, sess *session) (*member, *rejection) {
	switch msg := req.Msg.(type) {
	case *roomv1.JoinRequest_Enter:
		span, c := s.span(req, "room enter", "enter")
		m, rej := s.hub.enter(msg.Enter, sess, c)
		s.endSpan(span, m, rej)
		return m, rej
	case *roomv1.JoinRequest_Resume:
		span, c := s.span(req, "room resume", "resume")
		m, rej := s.hub.resume(msg.Resume.GetResumeToken(), sess, c)
		s.endSpan(span, m, rej)
		return m, rej
	case nil:
		s.meters.join(errEmptyMsg.outcome)
		return nil, errEmptyMsg
	default:
		s.meters.join(errNotJoined.outcome)
		return nil, errNotJoined
	}
}

// handle applies one message from a member; end says the stream is over, with err.
func (s *Service) handle(m *member, sess *session, req *roomv1.JoinRequest) (end bool, err error) {
	switch msg := req.Msg.(type) {
	case *roomv1.JoinRequest_Signal:
		sig := msg.Signal
		if len(sig.Data) > maxSignalData || sig.Type == "" || len(sig.Type) > 64 {
			rej := errBigSignal
			if sig.Type == "" || len(sig.Type) > 64 {
				rej = errBadSignalType
			}
			return true, s.violation(m, sess, req, rej)
		}
		name, typ := signalSpanName(sig.Type)
		span, c := s.span(req, name, typ)
		ok := s.hub.signal(m, sess, sig, c)
		s.endSpan(span, m, nil)
		return !ok, nil
	case *roomv1.JoinRequest_Leave:
		reason := msg.Leave.GetReason()
		if _, known := roomv1.LeaveReason_name[int32(reason)]; !known || reason == roomv1.LeaveReason_LEAVE_REASON_UNSPECIFIED {
			reason = roomv1.LeaveReason_LEAVE_REASON_HUNG_UP
		}
		span, c := s.span(req, "room leave", "leave")
		if span.IsRecording() {
			span.SetAttributes(attribute.String("tuturu.leave.reason", reason.String()))
		}
		s.hub.leave(m, sess, reason, c)
		s.endSpan(span, m, nil)
		return true, nil
	case *roomv1.JoinRequest_Enter, *roomv1.JoinRequest_Resume:
		return true, s.violation(m, sess, req, errTwice)
	default:
		return true, s.violation(m, sess, req, errEmptyMsg)
	}
}

// violation removes a member who broke the protocol and returns the error that ends its stream.
func (s *Service) violation(m *member, sess *session, req *roomv1.JoinRequest, rej *rejection) error {
	span, c := s.span(req, "room violation", "violation")
	s.hub.leave(m, sess, roomv1.LeaveReason_LEAVE_REASON_VIOLATION, c)
	s.endSpan(span, m, rej)
	return rej.connectErr()
}

// span starts the child span for one client message, under the trace context it carries, and
// returns the cause whose trace context the resulting events carry.
func (s *Service) span(req *roomv1.JoinRequest, name, typ string) (trace.Span, cause) {
	ctx := context.Background()
	if len(req.TraceContext) > 0 {
		ctx = s.prop.Extract(ctx, propagation.MapCarrier(req.TraceContext))
	}
	ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("tuturu.message.type", typ))
	}
	c := cause{span: span}
	if span.SpanContext().IsValid() {
		c.tc = make(map[string]string, 2)
		s.prop.Inject(ctx, propagation.MapCarrier(c.tc))
	}
	return span, c
}

func (s *Service) endSpan(span trace.Span, m *member, rej *rejection) {
	if span.IsRecording() {
		outcome := "ok"
		if rej != nil {
			outcome = rej.outcome
			span.SetStatus(codes.Error, rej.msg)
		}
		span.SetAttributes(attribute.String("tuturu.outcome", outcome))
		if m != nil {
			span.SetAttributes(
				attribute.String("tuturu.participant.id", m.id),
				attribute.String("tuturu.room.id", m.room.id))
		}
	}
	span.End()
}

// signalSpanName names the span of a signal by its type; unknown types are "other", so a
// client cannot mint span names.
func signalSpanName(typ string) (name, label string) {
	switch typ {
	case "offer":
		return "room signal offer", typ
	case "answer":
		return "room signal answer", typ
	case "ice-candidate":
		return "room signal ice-candidate", typ
	case "candidate":
		return "room signal candidate", typ
	case "bye":
		return "room signal bye", typ
	}
	return "room signal other", "other"
}
