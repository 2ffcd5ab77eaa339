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

// The gateway reaches each roomsvc shard through one Sessions stream: every socket's requests go out on it
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
	// linkHoldMax is how long members wait for a broken stream to come back before they are
	// told to reconnect; roomsvc holds their slots for its resume grace (30 s by default).
	linkHoldMax = 25 * time.Second
	// linkDownQueue bounds the requests kept while the stream is down.
	linkDownQueue = 1 << 16
	// linkReattachWait bounds how long requests wait for the re-attaches to be answered.
	linkReattachWait = 10 * time.Second
)

var (
	errLinkDown  = errors.New("the room service is unreachable")
	errJoinTimed = errors.New("the room service did not answer in time")
)

// linkMember is a socket as the link sees it.
type linkMember interface {
	// event takes one event for the socket; it must not block.
	event(ev *roomv1.MemberEvent)
	// resumeToken is the member's latest resume token, to re-attach it after a break.
	resumeToken() string
	// lost says the stream to roomsvc stayed down too long: the member cannot be re-attached.
	lost()
}

type linkEntry struct {
	m    linkMember
	join chan *roomv1.MemberEvent // until the Joined or Ended that answers the first request
	// gone: the socket left or dropped while the stream was down; its leave or detach is
	// queued and follows its re-attach.
	gone bool
	// reattaching: its resume after a break is not answered yet.
	reattaching bool
}

// roomLink is the gateway's stream to one roomsvc shard.
type roomLink struct {
	client roomv1connect.RoomServiceClient
	tag    string // the shard's tag, sent in the hello: roomsvc puts it in the tokens
	log    *slog.Logger
	inject func(context.Context) map[string]string
	ids    atomic.Uint64

	mu        sync.Mutex
	up        chan struct{} // closed while the stream is up; replaced when it goes down
	isUp      bool
	sendFn    func(*roomv1.SessionsRequest) error // the stream's Send while it is up
	writing   bool                                // a goroutine is sending queued requests
	downSince time.Time                           // zero while up or before the first stream
	// After a break, requests wait in afterReattach until every re-attach is answered, so
	// that a member's signals find the other members already back in roomsvc.
	reattachWait  int
	afterReattach []*roomv1.MemberRequest
	members       map[uint64]*linkEntry
	out           []*roomv1.MemberRequest
	outBytes      int
	wake          chan struct{}
}

func newRoomLink(client roomv1connect.RoomServiceClient, tag string, log *slog.Logger) *roomLink {
	return &roomLink{client: client, tag: tag, log: log, up: make(chan struct{}), members: map[uint64]*linkEntry{}, wake: make(chan struct{}, 1)}
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
			l.log.Warn("stream to the room service broke; reconnecting, members are held", "err", err)
		} else {
			l.log.Warn("cannot open the stream to the room service; retrying", "err", err, "in", backoff.String())
		}
		l.giveUpAfter(linkHoldMax)
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
	if err := stream.Send(&roomv1.SessionsRequest{Shard: l.tag}); err != nil {
		_, rerr := stream.Receive()
		return false, errors.Join(err, rerr)
	}
	if _, err := stream.Receive(); err != nil {
		return false, err
	}
	l.setUp(true)
	l.mu.Lock()
	l.sendFn = stream.Send
	l.mu.Unlock()
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
	l.mu.Lock()
	l.sendFn = nil
	l.mu.Unlock()
	l.setUp(false)
	return true, err
}

// setUp marks the stream up or down. Going down, pending joins fail and members wait to be
// re-attached; coming back up, every member is re-attached with its resume token ahead of the
// requests queued meanwhile, so the clients never notice.
func (l *roomLink) setUp(up bool) {
	l.mu.Lock()
	if up == l.isUp {
		l.mu.Unlock()
		return
	}
	l.isUp = up
	if !up {
		l.up = make(chan struct{})
		l.downSince = time.Now()
		l.out = append(l.out, l.afterReattach...)
		l.afterReattach, l.reattachWait = nil, 0
		for id, e := range l.members {
			if e.join != nil {
				close(e.join)
				delete(l.members, id)
			}
		}
		l.mu.Unlock()
		return
	}
	close(l.up)
	l.downSince = time.Time{}
	// Only members' requests survive a break: an enter whose join already failed must not
	// reach roomsvc, or it would hold a slot nobody answers for.
	kept := l.out[:0]
	for _, r := range l.out {
		if e := l.members[r.SessionId]; e != nil && e.join == nil && r.GetEnter() == nil && r.GetResume() == nil {
			kept = append(kept, r)
		}
	}
	l.out = kept
	if len(l.members) == 0 {
		l.out, l.outBytes = nil, 0
		l.mu.Unlock()
		return
	}
	resumes := make([]*roomv1.MemberRequest, 0, len(l.members))
	for id, e := range l.members {
		resumes = append(resumes, &roomv1.MemberRequest{SessionId: id,
			Msg: &roomv1.MemberRequest_Resume{Resume: &roomv1.Resume{ResumeToken: e.m.resumeToken()}}})
		e.reattaching = true
	}
	n := len(resumes)
	l.reattachWait = n
	l.afterReattach = append(l.afterReattach, l.out...)
	l.out, l.outBytes = resumes, n*256
	l.signal()
	l.mu.Unlock()
	time.AfterFunc(linkReattachWait, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.releaseLocked()
	})
	l.log.Info("stream to the room service is back; re-attaching members", "members", n)
}

// releaseLocked sends the requests that waited for the re-attaches. l.mu held.
func (l *roomLink) releaseLocked() {
	l.reattachWait = 0
	if len(l.afterReattach) == 0 {
		return
	}
	for _, r := range l.afterReattach {
		l.outBytes += requestSize(r)
	}
	l.out = append(l.out, l.afterReattach...)
	l.afterReattach = nil
	l.signal()
}

// giveUpAfter tells every member the stream is lost once it has been down for d.
func (l *roomLink) giveUpAfter(d time.Duration) {
	l.mu.Lock()
	if l.isUp || l.downSince.IsZero() || time.Since(l.downSince) < d || len(l.members) == 0 {
		l.mu.Unlock()
		return
	}
	l.giveUpLocked()
}

// giveUpLocked drops every member and the queue, and tells the members. l.mu held; released.
func (l *roomLink) giveUpLocked() {
	members := l.members
	l.members = map[uint64]*linkEntry{}
	l.out, l.outBytes = nil, 0
	l.mu.Unlock()
	l.log.Warn("the room service stayed unreachable; telling members to reconnect", "members", len(members))
	for _, e := range members {
		if !e.gone {
			e.m.lost()
		}
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
		if !l.drain(send) {
			return // the reader sees the break
		}
		if stopping {
			return
		}
	}
}

// drain sends queued requests until none are left, unless another goroutine is already doing
// so (it then sends them). false means a send failed: the batch is queued again for the next
// stream.
func (l *roomLink) drain(send func(*roomv1.SessionsRequest) error) bool {
	l.mu.Lock()
	if l.writing {
		l.mu.Unlock()
		return true
	}
	l.writing = true
	l.mu.Unlock()
	for {
		batch := l.take()
		if len(batch) == 0 {
			return true // take cleared writing
		}
		if err := send(&roomv1.SessionsRequest{Requests: batch}); err != nil {
			l.requeue(batch)
			l.mu.Lock()
			l.writing = false
			l.mu.Unlock()
			return false
		}
	}
}

// flush sends what the caller just queued on the caller's goroutine (a socket's reader), which
// saves waking the writer; another goroutine already sending takes it along instead.
func (l *roomLink) flush() {
	l.mu.Lock()
	send := l.sendFn
	l.mu.Unlock()
	if send != nil {
		l.drain(send)
	}
}

// requeue puts back a batch the stream failed to take, ahead of later requests. What a dying
// stream took without an error is lost with it, as on any connection without acknowledgements.
func (l *roomLink) requeue(batch []*roomv1.MemberRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out = append(batch, l.out...)
	for _, r := range batch {
		l.outBytes += requestSize(r)
	}
}

// take returns the queued requests, at most linkBatchBytes of them; with none left it ends
// the caller's turn as the sender (writing).
func (l *roomLink) take() []*roomv1.MemberRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.out) == 0 {
		l.writing = false
		return nil
	}
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
		if e != nil && e.reattaching && (ev.GetJoined() != nil || ev.GetEnded() != nil) {
			e.reattaching = false
			if l.reattachWait--; l.reattachWait <= 0 {
				l.releaseLocked()
			}
			if e.gone {
				delete(l.members, ev.SessionId) // its leave or detach follows
			}
		}
		if e != nil && ev.GetEnded() != nil {
			delete(l.members, ev.SessionId) // nothing follows an Ended
		}
		l.mu.Unlock()
		switch {
		case e == nil || e.gone:
			// A socket that already went away; roomsvc learns it from its leave or detach.
		case join != nil:
			join <- ev
		default:
			e.m.event(ev)
		}
	}
}

// send queues a request for roomsvc. While the stream is down, requests of members wait for
// their re-attach, within linkDownQueue; past it every member is told to reconnect.
func (l *roomLink) send(r *roomv1.MemberRequest) {
	l.mu.Lock()
	if !l.isUp {
		if l.members[r.SessionId] == nil {
			l.mu.Unlock()
			return // not a member (any more): nothing to re-attach it to
		}
		if len(l.out) >= linkDownQueue {
			l.giveUpLocked()
			return
		}
	}
	l.queueLocked(r)
	l.mu.Unlock()
	l.flush()
}

// queueLocked queues r, behind the re-attaches while they are not all answered. l.mu held.
func (l *roomLink) queueLocked(r *roomv1.MemberRequest) {
	if l.reattachWait > 0 {
		l.afterReattach = append(l.afterReattach, r)
		return
	}
	l.out = append(l.out, r)
	l.outBytes += requestSize(r)
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
	l.queueLocked(first)
	l.mu.Unlock()
	l.flush()
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

// leave sends a session's last request (leave or detach) and forgets the session. While the
// stream is down the request waits, and the member is re-attached first so roomsvc applies it.
func (l *roomLink) leave(id uint64, r *roomv1.MemberRequest) {
	r.SessionId = id
	l.mu.Lock()
	e := l.members[id]
	if !l.isUp {
		if e == nil || e.join != nil {
			delete(l.members, id)
			l.mu.Unlock()
			return
		}
		e.gone = true
	} else if e == nil || !e.reattaching {
		delete(l.members, id)
	} else {
		e.gone = true // forgotten once its re-attach is answered
	}
	l.queueLocked(r)
	l.mu.Unlock()
	l.flush()
}
