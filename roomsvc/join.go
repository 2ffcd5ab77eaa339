package roomsvc

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"connectrpc.com/connect"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// Join is the one-member form of Sessions, for tools and tests: the stream is a link that
// carries a single session, and its events are sent as JoinResponses. A stream ends when the
// session does: with the error of an Ended event, after a room_closed, or after a leave.

type joinStream = connect.BidiStream[roomv1.JoinRequest, roomv1.JoinResponse]

// joinSession is the session id of a Join stream's only member.
const joinSession = 1

// joinEnd ends a Join stream from its writer, with err (nil after room_closed).
type joinEnd struct{ err error }

func (e *joinEnd) Error() string { return "join stream over" }

// Join implements tuturu.room.v1.RoomService.Join.
func (s *Service) Join(ctx context.Context, stream *joinStream) error {
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
	received, left := false, false
	recv := func() ([]*roomv1.MemberRequest, error) {
		if left {
			return nil, io.EOF // a leave ends the stream, as the member is gone
		}
		req, err := stream.Receive()
		if err != nil {
			return nil, err
		}
		received = true
		mr := &roomv1.MemberRequest{SessionId: joinSession, TraceContext: req.TraceContext}
		switch msg := req.Msg.(type) {
		case *roomv1.JoinRequest_Enter:
			mr.Msg = &roomv1.MemberRequest_Enter{Enter: msg.Enter}
		case *roomv1.JoinRequest_Resume:
			mr.Msg = &roomv1.MemberRequest_Resume{Resume: msg.Resume}
		case *roomv1.JoinRequest_Signal:
			mr.Msg = &roomv1.MemberRequest_Signal{Signal: msg.Signal}
		case *roomv1.JoinRequest_Leave:
			mr.Msg = &roomv1.MemberRequest_Leave{Leave: msg.Leave}
			left = true
		}
		return []*roomv1.MemberRequest{mr}, nil
	}
	send := func(evs []*roomv1.MemberEvent) error {
		for _, ev := range evs {
			resp, end := joinResponse(ev)
			if resp != nil {
				if err := stream.Send(resp); err != nil {
					return err
				}
			}
			if end != nil {
				return end
			}
		}
		return nil
	}
	err := s.serveLink(l, recv, send)
	var end *joinEnd
	switch {
	case errors.As(err, &end):
		return end.err
	case err != nil:
		return err
	case s.isStopping():
		return errShuttingDown.connectErr()
	case !received:
		return errNotJoined.connectErr()
	}
	return nil
}

// joinResponse is ev as a Join stream sends it; end, when set, ends the stream after it.
func joinResponse(ev *roomv1.MemberEvent) (*roomv1.JoinResponse, *joinEnd) {
	resp := &roomv1.JoinResponse{TraceContext: ev.TraceContext}
	switch e := ev.Event.(type) {
	case *roomv1.MemberEvent_Joined:
		resp.Event = &roomv1.JoinResponse_Joined{Joined: e.Joined}
	case *roomv1.MemberEvent_PeerJoined:
		resp.Event = &roomv1.JoinResponse_PeerJoined{PeerJoined: e.PeerJoined}
	case *roomv1.MemberEvent_Signal:
		resp.Event = &roomv1.JoinResponse_Signal{Signal: e.Signal}
	case *roomv1.MemberEvent_PeerLeft:
		resp.Event = &roomv1.JoinResponse_PeerLeft{PeerLeft: e.PeerLeft}
	case *roomv1.MemberEvent_MembersChanged:
		resp.Event = &roomv1.JoinResponse_MembersChanged{MembersChanged: e.MembersChanged}
	case *roomv1.MemberEvent_Error:
		resp.Event = &roomv1.JoinResponse_Error{Error: e.Error}
	case *roomv1.MemberEvent_RoomClosed:
		resp.Event = &roomv1.JoinResponse_RoomClosed{RoomClosed: e.RoomClosed}
		return resp, &joinEnd{}
	case *roomv1.MemberEvent_Ended:
		return nil, &joinEnd{err: connect.NewError(connect.Code(e.Ended.GetCode()), errors.New(e.Ended.GetMessage()))}
	default:
		return nil, nil
	}
	return resp, nil
}

// addLink registers a stream so that stop can end it; false when the service is stopping.
func (s *Service) addLink(l *link) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.links[l] = struct{}{}
	return true
}

func (s *Service) removeLink(l *link) {
	s.mu.Lock()
	delete(s.links, l)
	s.mu.Unlock()
}

func (s *Service) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

type streamControl struct {
	rc *http.ResponseController
}

type streamControlKey struct{}

// withStreamControl puts a streamControl in the request context of every stream.
func withStreamControl(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := &streamControl{rc: http.NewResponseController(w)}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), streamControlKey{}, sc)))
	})
}

func controlOf(ctx context.Context) *streamControl {
	sc, _ := ctx.Value(streamControlKey{}).(*streamControl)
	return sc
}

// interrupt makes the stream's pending (or next) Receive return at once. A deadline in the
// past closes the request body without blocking and leaves the response open.
func (sc *streamControl) interrupt() {
	_ = sc.rc.SetReadDeadline(time.Now().Add(-time.Second))
}
