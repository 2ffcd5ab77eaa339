package roomsvc

import (
	"context"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// A gateway's Sessions stream is one link. One goroutine receives its batches and applies each
// request to the hub in order; a writer goroutine sends whatever events are queued as one batch
// the moment it can. Entering and resuming wait for TURN credentials from credsvc without
// holding up the rest of the link: the member exists once they arrive.

type sessionsStream = connect.BidiStream[roomv1.SessionsRequest, roomv1.SessionsResponse]

// Sessions implements tuturu.room.v1.RoomService.Sessions.
func (s *Service) Sessions(ctx context.Context, stream *sessionsStream) error {
	s.streams.Add(1)
	defer s.streams.Add(-1)
	sc := controlOf(ctx)
	if sc == nil {
		return connect.NewError(connect.CodeInternal, errNoStreamControl)
	}
	l := newLink(sc.interrupt)
	if !s.addLink(l) {
		return errShuttingDown.connectErr()
	}
	defer s.removeLink(l)
	first := true
	var badHello error
	recv := func() ([]*roomv1.MemberRequest, error) {
		req, err := stream.Receive()
		if err != nil {
			return nil, err
		}
		if first {
			// Before any request is applied, so every token of the link carries it.
			if !validShardTag(req.Shard) {
				badHello = connect.NewError(connect.CodeInvalidArgument, errBadShardTag)
				return nil, badHello
			}
			l.shard.Store(&req.Shard)
			first = false
		}
		if len(req.Requests) == 0 {
			l.hello()
		}
		return req.Requests, nil
	}
	send := func(evs []*roomv1.MemberEvent) error {
		return stream.Send(&roomv1.SessionsResponse{Events: evs})
	}
	if err := s.serveLink(l, recv, send); err != nil && !s.isStopping() {
		s.cfg.Logger().Warn("gateway stream broke; its members are held for a resume", "err", err)
	}
	if badHello != nil {
		return badHello
	}
	if s.isStopping() {
		return errShuttingDown.connectErr()
	}
	return nil
}

// serveLink applies the requests recv returns until it fails, while a writer sends the link's
// events with send; the events a batch of requests causes are sent right after it, on this
// goroutine, when the writer is not busy. When the stream is over, every member it still
// carries is held for a resume. It returns the error of a failed send.
func (s *Service) serveLink(l *link, recv func() ([]*roomv1.MemberRequest, error), send func([]*roomv1.MemberEvent) error) error {
	stopWriter := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() { writerDone <- s.write(l, send, stopWriter) }()
	var sendErr error
	for {
		reqs, err := recv()
		if err != nil {
			break
		}
		l.beginDispatch()
		for _, r := range reqs {
			s.dispatch(l, r)
		}
		if sendErr = l.endDispatch(send); sendErr != nil {
			l.breakOff()
			break
		}
	}
	for _, sess := range l.close() {
		l.mu.Lock()
		m := sess.m
		l.mu.Unlock()
		if m != nil {
			s.hub.detach(m, sess)
		}
		// A pending session is held (or dropped) by its enter once the credentials arrive.
	}
	close(stopWriter)
	if err := <-writerDone; sendErr == nil {
		sendErr = err
	}
	return sendErr
}

// write sends what the link queues until stop, then sends what is left once. After a failed
// send nothing more is sent: the members stay with the hub and are held.
func (s *Service) write(l *link, send func([]*roomv1.MemberEvent) error, stop <-chan struct{}) error {
	var spare []*roomv1.MemberEvent
	for {
		stopping := false
		select {
		case <-l.wake:
		case <-stop:
			stopping = true
		}
		l.sendMu.Lock()
		batch, ok := l.take(spare)
		var err error
		if ok {
			err = send(batch)
		}
		l.sendMu.Unlock()
		if err != nil {
			l.breakOff()
			l.interrupt()
			return err
		}
		if stopping {
			l.breakOff()
			return nil
		}
		clear(batch)
		spare = batch
	}
}

// dispatch applies one member request.
func (s *Service) dispatch(l *link, r *roomv1.MemberRequest) {
	switch msg := r.Msg.(type) {
	case *roomv1.MemberRequest_Enter:
		s.enter(l, r, msg.Enter)
		return
	case *roomv1.MemberRequest_Resume:
		s.resume(l, r, msg.Resume.GetResumeToken())
		return
	}
	sess, m, held := l.lookup(r.SessionId, r)
	switch {
	case held:
		return // applied once the session is a member
	case sess == nil:
		// Never entered, or already over: the gateway forgets a session on its Ended.
		switch {
		case r.Msg == nil:
			s.meters.join(errEmptyMsg.outcome)
			l.end(r.SessionId, errEmptyMsg)
		case r.GetDetach() == nil:
			s.meters.join(errNotJoined.outcome)
			l.end(r.SessionId, errNotJoined)
		}
		return
	}
	s.apply(l, sess, m, r)
}

// apply applies a member's signal, leave or detach.
func (s *Service) apply(l *link, sess *session, m *member, r *roomv1.MemberRequest) {
	switch msg := r.Msg.(type) {
	case *roomv1.MemberRequest_Signal:
		sig := msg.Signal
		if len(sig.Data) > maxSignalData {
			s.violation(l, sess, m, r, errBigSignal)
			return
		}
		if sig.Type == "" || len(sig.Type) > 64 {
			s.violation(l, sess, m, r, errBadSignalType)
			return
		}
		name, typ := signalSpanName(sig.Type)
		span, c := s.span(r.TraceContext, name, typ)
		if !s.hub.signal(m, sess, sig, c) {
			l.forget(sess.id)
		}
		s.endSpan(span, m, nil)
	case *roomv1.MemberRequest_Leave:
		reason := leaveReason(msg.Leave)
		span, c := s.span(r.TraceContext, "room leave", "leave")
		if span.IsRecording() {
			span.SetAttributes(attribute.String("tuturu.leave.reason", reason.String()))
		}
		s.hub.leave(m, sess, reason, c)
		l.forget(sess.id)
		s.endSpan(span, m, nil)
	case *roomv1.MemberRequest_Detach:
		s.hub.detach(m, sess)
		l.forget(sess.id)
	default:
		s.violation(l, sess, m, r, errEmptyMsg)
	}
}

// enter starts a session's entry: the room is checked, credentials are found for a new
// participant (pooled, or issued now), and then the hub makes it a member.
func (s *Service) enter(l *link, r *roomv1.MemberRequest, e *roomv1.Enter) {
	sess, fresh := l.open(r.SessionId)
	if sess == nil {
		return // the link is closing
	}
	if !fresh {
		s.twice(l, sess, r)
		return
	}
	span, c := s.span(r.TraceContext, "room enter", "enter")
	if _, _, _, rej := s.hub.target(e); rej != nil {
		s.meters.join(rej.outcome)
		s.refuse(l, sess, span, rej)
		return
	}
	s.issuer.issueNew(trace.ContextWithSpan(context.Background(), span), func(id string, creds *credv1.IssueResponse, err error) {
		if err != nil {
			s.meters.join(errNoCredentials.outcome)
			s.refuse(l, sess, span, errNoCredentials)
			return
		}
		if !l.proceed(sess) {
			s.endSpan(span, nil, errCancelled)
			return
		}
		m, rej := s.hub.enter(e, sess, id, creds, c)
		if rej != nil {
			s.refuse(l, sess, span, rej)
			return
		}
		s.settle(l, sess, m, c)
		s.endSpan(span, m, nil)
	})
}

// resume starts taking back a held slot: the token is checked, fresh credentials are issued,
// and then the hub hands the slot over.
func (s *Service) resume(l *link, r *roomv1.MemberRequest, token string) {
	sess, fresh := l.open(r.SessionId)
	if sess == nil {
		return
	}
	if !fresh {
		s.twice(l, sess, r)
		return
	}
	span, c := s.span(r.TraceContext, "room resume", "resume")
	claims, rej := s.hub.checkResume(token, l.shardTag())
	if rej != nil {
		s.refuse(l, sess, span, rej)
		return
	}
	s.issuer.issue(trace.ContextWithSpan(context.Background(), span), claims.participantID, func(creds *credv1.IssueResponse, err error) {
		if err != nil {
			s.meters.resume(errNoCredentials.outcome)
			s.refuse(l, sess, span, errNoCredentials)
			return
		}
		if !l.proceed(sess) {
			s.endSpan(span, nil, errCancelled)
			return
		}
		m, rej := s.hub.resume(claims, sess, creds, c)
		if rej != nil {
			s.refuse(l, sess, span, rej)
			return
		}
		s.settle(l, sess, m, c)
		s.endSpan(span, m, nil)
	})
}

// settle records the member of a session that just entered or resumed, then applies what
// came for it meanwhile, in order: held requests (signals, a leave or detach), or the link's
// end.
func (s *Service) settle(l *link, sess *session, m *member, c cause) {
	l.mu.Lock()
	sess.m = m
	closed := l.closed
	l.mu.Unlock()
	if closed {
		s.hub.detach(m, sess)
		l.forget(sess.id)
		return
	}
	for {
		held := l.nextHeld(sess)
		if len(held) == 0 {
			return
		}
		for _, r := range held {
			s.apply(l, sess, m, r)
		}
	}
}

// leaveReason is the reason a leave gives, hung up when it gives none or an unknown one.
func leaveReason(lv *roomv1.Leave) roomv1.LeaveReason {
	reason := lv.GetReason()
	if _, known := roomv1.LeaveReason_name[int32(reason)]; !known || reason == roomv1.LeaveReason_LEAVE_REASON_UNSPECIFIED {
		return roomv1.LeaveReason_LEAVE_REASON_HUNG_UP
	}
	return reason
}

// refuse ends a session that did not become a member.
func (s *Service) refuse(l *link, sess *session, span trace.Span, rej *rejection) {
	l.end(sess.id, rej)
	s.endSpan(span, nil, rej)
}

// twice answers an enter or resume on a session that already has one.
func (s *Service) twice(l *link, sess *session, r *roomv1.MemberRequest) {
	l.mu.Lock()
	m := sess.m
	l.mu.Unlock()
	if m == nil {
		return // still entering: the first enter decides
	}
	s.violation(l, sess, m, r, errTwice)
}

// violation removes a member who broke the protocol and ends its session with rej.
func (s *Service) violation(l *link, sess *session, m *member, r *roomv1.MemberRequest, rej *rejection) {
	span, c := s.span(r.TraceContext, "room violation", "violation")
	if s.hub.leave(m, sess, roomv1.LeaveReason_LEAVE_REASON_VIOLATION, c) {
		l.end(sess.id, rej)
	}
	s.endSpan(span, m, rej)
}

// span starts the child span for one request, under the trace context it carries, and returns
// the cause whose trace context the resulting events carry.
func (s *Service) span(tc map[string]string, name, typ string) (trace.Span, cause) {
	ctx := context.Background()
	if len(tc) > 0 {
		ctx = s.prop.Extract(ctx, propagation.MapCarrier(tc))
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
