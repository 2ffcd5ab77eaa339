package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
)

// The gateway reaches roomsvc through one Sessions stream: every socket's requests go out on it
// in batches, tagged with the socket's session id, and the events that come back are routed
// to the sockets by that id. A writer goroutine sends whatever is queued the moment it can; a
// reader goroutine routes events without ever waiting for a socket.

// Bounds of the link.
const (
	// linkBatchBytes keeps one batch of requests well under roomsvc's message limit, and a
	// burst of large signals from one socket in pieces the others' requests interleave with.
	linkBatchBytes = 1 << 20
	linkBackoffMin = 100 * time.Millisecond
	linkBackoffMax = 2 * time.Second
	// linkDrain bounds the wait, on stop, for roomsvc to take the last requests.
	linkDrain = 5 * time.Second
)

var (
	errLinkDown  = errors.New("the room service is unreachable")
	errJoinTimed = errors.New("the room service did not answer in time")
)

// linkMember is a socket as the link sees it.
type linkMember interface {
	// event takes one event for the socket; it must not block.
	event(ev *roomv1.MemberEvent)
	// lost says the stream to roomsvc broke: roomsvc holds the member for a resume.
	lost()
}

type linkEntry struct {
	m    linkMember
	join chan *roomv1.MemberEvent // until the Joined or Ended that answers the first request
}

// roomLink is the gateway's stream to roomsvc.
type roomLink struct {
	client roomv1connect.RoomServiceClient
	log    *slog.Logger
	inject func(context.Context) map[string]string
	ids    atomic.Uint64

	mu       sync.Mutex
	up       chan struct{} // closed while the stream is up; replaced when it goes down
	isUp     bool
	members  map[uint64]*linkEntry
	out      []*roomv1.MemberRequest
	outBytes int
	wake     chan struct{}
}

func newRoomLink(client roomv1connect.RoomServiceClient, log *slog.Logger) *roomLink {
	return &roomLink{client: client, log: log, up: make(chan struct{}), members: map[uint64]*linkEntry{}, wake: make(chan struct{}, 1)}
}

// ready says whether the stream to roomsvc is up.
func (l *roomLink) ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isUp
}

// newID is a session id, unique for the life of the process.
func (l *roomLink) newID() uint64 { return l.ids.Add(1) }

// run keeps the stream open until ctx ends, reopening it with a growing pause after a break.
func (l *roomLink) run(ctx context.Context) {
	backoff := linkBackoffMin
	for ctx.Err() == nil {
		wasUp, err := l.serve(ctx)
		if ctx.Err() != nil {
			return
		}
		if wasUp {
			backoff = linkBackoffMin
			l.log.Warn("stream to the room service broke; reconnecting", "err", err)
		} else {
			l.log.Warn("cannot open the stream to the room service; retrying", "err", err, "in", backoff.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, linkBackoffMax)
	}
}

// serve runs one stream until it breaks or ctx ends; wasUp says whether roomsvc answered its
// hello. When ctx ends, what is queued (the leaves and detaches of the sockets the gateway
// just closed) is sent before the stream is closed, within linkDrain.
func (l *roomLink) serve(ctx context.Context) (wasUp bool, err error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(linkDrain, cancel) })
	defer stop()
	stream := l.client.Sessions(sctx)
	if err := stream.Send(&roomv1.SessionsRequest{}); err != nil {
		_, rerr := stream.Receive()
		return false, errors.Join(err, rerr)
	}
	if _, err := stream.Receive(); err != nil {
		return false, err
	}
	l.setUp(true)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		l.write(ctx, sctx, stream.Send)
		_ = stream.CloseRequest() // roomsvc ends the stream once it has read everything
	}()
	for {
		res, rerr := stream.Receive()
		if rerr != nil {
			err = rerr
			break
		}
		l.route(res.Events)
	}
	cancel()
	<-writerDone
	l.setUp(false)
	return true, err
}

// setUp marks the stream up or down. Going down, every member is told: roomsvc holds them.
func (l *roomLink) setUp(up bool) {
	l.mu.Lock()
	if up == l.isUp {
		l.mu.Unlock()
		return
	}
	l.isUp = up
	if up {
		close(l.up)
		l.mu.Unlock()
		return
	}
	l.up = make(chan struct{})
	members := l.members
	l.members = map[uint64]*linkEntry{}
	l.out, l.outBytes = nil, 0
	l.mu.Unlock()
	for _, e := range members {
		if e.join != nil {
			close(e.join)
			continue
		}
		e.m.lost()
	}
}

// write sends queued requests in batches until a send fails, the stream ends (streamCtx), or
// ctx ends, and then it sends what is still queued.
func (l *roomLink) write(ctx, streamCtx context.Context, send func(*roomv1.SessionsRequest) error) {
	for {
		stopping := false
		select {
		case <-streamCtx.Done():
			return
		case <-ctx.Done():
			stopping = true
		case <-l.wake:
		}
		for {
			batch := l.take()
			if len(batch) == 0 {
				break
			}
			if err := send(&roomv1.SessionsRequest{Requests: batch}); err != nil {
				return // the reader sees the break
			}
		}
		if stopping {
			return
		}
	}
}

// take returns the queued requests, at most linkBatchBytes of them.
func (l *roomLink) take() []*roomv1.MemberRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.outBytes <= linkBatchBytes {
		batch := l.out
		l.out, l.outBytes = nil, 0
		return batch
	}
	n, size := 0, 0
	for n < len(l.out) && (n == 0 || size+requestSize(l.out[n]) <= linkBatchBytes) {
		size += requestSize(l.out[n])
		n++
	}
	batch := l.out[:n:n]
	l.out = l.out[n:]
	l.outBytes -= size
	if l.outBytes > 0 {
		l.signal()
	}
	return batch
}

// requestSize approximates a request's encoded size: its signal data plus headroom.
func requestSize(r *roomv1.MemberRequest) int {
	return len(r.GetSignal().GetData()) + 128
}

func (l *roomLink) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// route hands each event to its socket.
func (l *roomLink) route(evs []*roomv1.MemberEvent) {
	for _, ev := range evs {
		l.mu.Lock()
		e := l.members[ev.SessionId]
		var join chan *roomv1.MemberEvent
		if e != nil && e.join != nil && (ev.GetJoined() != nil || ev.GetEnded() != nil) {
			join, e.join = e.join, nil
		}
		if e != nil && ev.GetEnded() != nil {
			delete(l.members, ev.SessionId) // nothing follows an Ended
		}
		l.mu.Unlock()
		switch {
		case e == nil:
			// A socket that already went away; roomsvc learns it from its leave or detach.
		case join != nil:
			join <- ev
		default:
			e.m.event(ev)
		}
	}
}

// send queues a request for roomsvc; false when the stream is down (the member is then being
// told it was lost).
func (l *roomLink) send(r *roomv1.MemberRequest) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.isUp {
		return false
	}
	l.out = append(l.out, r)
	l.outBytes += requestSize(r)
	l.signal()
	return true
}

// open starts session id with first (an enter or a resume) and waits, at most timeout, for
// roomsvc's answer: Joined (the member then gets every later event) or Ended.
func (l *roomLink) open(ctx context.Context, id uint64, m linkMember, first *roomv1.MemberRequest, timeout time.Duration) (*roomv1.MemberEvent, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	l.mu.Lock()
	up := l.up
	l.mu.Unlock()
	select {
	case <-up:
	case <-deadline.C:
		return nil, errLinkDown
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	join := make(chan *roomv1.MemberEvent, 1)
	l.mu.Lock()
	if !l.isUp {
		l.mu.Unlock()
		return nil, errLinkDown
	}
	l.members[id] = &linkEntry{m: m, join: join}
	first.SessionId = id
	l.out = append(l.out, first)
	l.outBytes += requestSize(first)
	l.signal()
	l.mu.Unlock()
	select {
	case ev, ok := <-join:
		if !ok {
			return nil, errLinkDown
		}
		return ev, nil
	case <-deadline.C:
		// Give up on it: roomsvc drops a pending entry, or removes the member it became.
		l.leave(id, &roomv1.MemberRequest{Msg: &roomv1.MemberRequest_Leave{Leave: &roomv1.Leave{Reason: roomv1.LeaveReason_LEAVE_REASON_CLOSED}}})
		return nil, errJoinTimed
	}
}

// leave sends a session's last request (leave or detach) and forgets the session.
func (l *roomLink) leave(id uint64, r *roomv1.MemberRequest) {
	r.SessionId = id
	l.mu.Lock()
	delete(l.members, id)
	if l.isUp {
		l.out = append(l.out, r)
		l.outBytes += requestSize(r)
		l.signal()
	}
	l.mu.Unlock()
}
