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

// A Join stream has two goroutines: the reader (this handler's helper) receives client
// messages and applies them to the hub in order; the handler goroutine is the only writer, and
// sends what the hub queued for the member. No goroutine per message.

type joinStart struct {
	m   *member
	err error
}

// Join implements tuturu.room.v1.RoomService.Join.
func (s *Service) Join(ctx context.Context, stream *connect.BidiStream[roomv1.JoinRequest, roomv1.JoinResponse]) error {
	s.streams.Add(1)
	defer s.streams.Add(-1)
	sess := newSession()
	started := make(chan joinStart, 1)
	readerDone := make(chan error, 1)
	readerExited := make(chan struct{})
	go func() {
		defer close(readerExited)
		s.read(stream, sess, started, readerDone)
	}()
	// The reader must be out of Receive before this handler returns (the stream is not safe
	// for use afterwards), so a server-side end interrupts its read first.
	defer func() {
		if stopReading(ctx) {
			<-readerExited
		}
	}()

	var m *member
	select {
	case st := <-started:
		if st.err != nil {
			return st.err
		}
		m = st.m
	case <-s.stopping:
		return errShuttingDown.connectErr()
	}
	return s.write(ctx, stream, m, sess, readerDone)
}

// streamControl is what Join needs below Connect: a way to interrupt its own pending Receive
// (connect-go has none, the request's read deadline does) and a gate on flushes, so that a
// batch of queued events goes out in one write instead of one per event.
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

// stopReading makes a pending Receive on ctx's stream return now. It reports false when it
// cannot, in which case the caller must not wait for the reader.
func stopReading(ctx context.Context) bool {
	sc := controlOf(ctx)
	return sc != nil && sc.rc.SetReadDeadline(time.Now()) == nil
}

// write sends the member's events until the stream ends, and says how it ends.
func (s *Service) write(ctx context.Context, stream *connect.BidiStream[roomv1.JoinRequest, roomv1.JoinResponse],
	m *member, sess *session, readerDone <-chan error) error {
	var gate *flushGate
	if sc := controlOf(ctx); sc != nil {
		gate = sc.gate
	}
	var batch []*roomv1.JoinResponse
	for {
		batch = s.hub.take(m, sess, batch)
		for i, ev := range batch {
			if gate != nil {
				gate.held = i < len(batch)-1 // the last event of a batch flushes them all
			}
			if err := stream.Send(ev); err != nil {
				s.hub.detach(m, sess)
				return err
			}
		}
		clear(batch)
		batch = batch[:0]

		select {
		case <-sess.notify:
		case <-sess.done:
			return s.finish(stream, sess)
		case err := <-readerDone:
			select {
			case <-sess.done:
				return s.finish(stream, sess)
			default:
			}
			return err
		case <-ctx.Done():
			s.hub.detach(m, sess)
			return ctx.Err()
		}
	}
}

// finish sends the hub's last events (room_closed) and ends the stream as the hub decided.
func (s *Service) finish(stream *connect.BidiStream[roomv1.JoinRequest, roomv1.JoinResponse], sess *session) error {
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

// read receives the first message (enter or resume), reports it on started, then applies the
// member's messages in order until a leave, a violation or the end of the stream.
func (s *Service) read(stream *connect.BidiStream[roomv1.JoinRequest, roomv1.JoinResponse], sess *session,
	started chan<- joinStart, done chan<- error) {
	req, err := stream.Receive()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errNotJoined.connectErr()
		}
		started <- joinStart{err: err}
		return
	}
	m, rej := s.first(req, sess)
	if rej != nil {
		started <- joinStart{err: rej.connectErr()}
		return
	}
	started <- joinStart{m: m}
	for {
		req, err := stream.Receive()
		if err != nil {
			// Dropped without a leave (cancel, crash, or a half-close): hold the slot.
			s.hub.detach(m, sess)
			done <- nil
			return
		}
		if end, err := s.handle(m, sess, req); end {
			done <- err
			return
		}
	}
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
