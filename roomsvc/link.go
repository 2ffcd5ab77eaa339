package roomsvc

import (
	"slices"
	"sync"
	"sync/atomic"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// outboxLimit bounds the events waiting for one link's writer. The gateway reads its stream
// continuously and keeps per-socket queues of its own, so a link this far behind is broken: it
// is ended and its members are held for a resume.
const outboxLimit = 1 << 16

// maxHeldRequests bounds the requests kept for a session while it enters or resumes (a
// gateway re-attaching a member sends its queued signals right behind the resume).
const maxHeldRequests = 1024

// link is one gateway stream: the sessions it carries and the events waiting to be written to
// it. The hub hands events to deliver under room locks, so deliver never blocks; the writer
// takes everything queued at once and sends it as one batch.
type link struct {
	// interrupt makes the stream's pending Receive return, so the handler notices a link the
	// writer found broken.
	interrupt func()
	// shard is the tag the gateway gave in its hello: the tokens issued on this link carry
	// it, and only tokens carrying it resume on this link. Atomic, not under mu: the hub
	// reads it under its room locks.
	shard atomic.Pointer[string]

	mu       sync.Mutex
	sessions map[uint64]*session
	closed   bool // the stream is over: no new session

	// sendMu makes one goroutine at a time take and send a batch: the writer, or the receive
	// loop right after it applied a batch of requests (which saves waking the writer).
	sendMu sync.Mutex

	outMu       sync.Mutex
	dispatching bool // the receive loop is applying requests and sends what they cause after
	out         []*roomv1.MemberEvent
	ended       []uint64 // sessions the hub ended, to forget once their last event is taken
	ack         bool     // answer the gateway's hello with an empty batch
	broken      bool     // no more events: the stream is ending
	wake        chan struct{}
}

func newLink(interrupt func()) *link {
	return &link{interrupt: interrupt, sessions: map[uint64]*session{}, wake: make(chan struct{}, 1)}
}

// deliver queues ev for session id; false means the link is broken and the caller keeps ev.
func (l *link) deliver(id uint64, ev *roomv1.MemberEvent) bool {
	l.outMu.Lock()
	if l.broken {
		l.outMu.Unlock()
		return false
	}
	if len(l.out) >= outboxLimit {
		l.broken = true
		l.outMu.Unlock()
		l.interrupt()
		return false
	}
	l.out = append(l.out, &roomv1.MemberEvent{SessionId: id, TraceContext: ev.TraceContext, Event: ev.Event})
	wake := !l.dispatching
	l.outMu.Unlock()
	if wake {
		l.signal()
	}
	return true
}

// beginDispatch marks the receive loop as applying requests: the events they cause wait for
// its endDispatch instead of waking the writer.
func (l *link) beginDispatch() {
	l.outMu.Lock()
	l.dispatching = true
	l.outMu.Unlock()
}

// endDispatch sends what is queued on the receive loop's goroutine, unless the writer is
// sending (then the writer is woken to take it).
func (l *link) endDispatch(send func([]*roomv1.MemberEvent) error) error {
	l.outMu.Lock()
	l.dispatching = false
	l.outMu.Unlock()
	if !l.sendMu.TryLock() {
		l.signal()
		return nil
	}
	defer l.sendMu.Unlock()
	batch, ok := l.take(nil)
	if !ok {
		return nil
	}
	return send(batch)
}

// end tells the gateway that session id is over (with Ended when rej is set) and forgets it.
func (l *link) end(id uint64, rej *rejection) {
	l.outMu.Lock()
	if !l.broken && rej != nil {
		l.out = append(l.out, endedEvent(id, rej))
	}
	l.ended = append(l.ended, id)
	l.outMu.Unlock()
	l.signal()
}

func endedEvent(id uint64, rej *rejection) *roomv1.MemberEvent {
	return &roomv1.MemberEvent{SessionId: id, Event: &roomv1.MemberEvent_Ended{Ended: &roomv1.Ended{
		Code: uint32(rej.code), Message: rej.msg, Reason: rej.outcome,
	}}}
}

// hello asks the writer for an empty batch: the gateway's sign that the stream is up.
func (l *link) hello() {
	l.outMu.Lock()
	l.ack = true
	l.outMu.Unlock()
	l.signal()
}

func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// batchBytes bounds one batch of events (roughly: signal payloads), so a burst of large
// signals for one member is sent in pieces and the other members' events interleave.
const batchBytes = 1 << 20

// take hands the writer what is queued, at most batchBytes of it (spare, emptied, is reused),
// and forgets the sessions that ended. send reports whether there is a batch to send even if
// it is empty.
func (l *link) take(spare []*roomv1.MemberEvent) (batch []*roomv1.MemberEvent, send bool) {
	l.outMu.Lock()
	n, size := 0, 0
	for n < len(l.out) && (n == 0 || size < batchBytes) {
		size += len(l.out[n].GetSignal().GetData()) + 64
		n++
	}
	if n == len(l.out) {
		batch, l.out = l.out, spare[:0]
	} else {
		batch = append(spare[:0], l.out[:n]...)
		l.out = slices.Delete(l.out, 0, n) // shifts the rest down
		l.signal()
	}
	send = len(batch) > 0 || l.ack
	l.ack = false
	ended := l.ended
	l.ended = nil
	l.outMu.Unlock()
	if len(ended) > 0 {
		l.mu.Lock()
		for _, id := range ended {
			delete(l.sessions, id)
		}
		l.mu.Unlock()
	}
	return batch, send
}

// breakOff stops delivery: later events stay with their members, who are held once the
// handler detaches them.
func (l *link) breakOff() {
	l.outMu.Lock()
	l.broken = true
	l.outMu.Unlock()
}

// close ends the link for new sessions and returns the ones it still carries.
func (l *link) close() []*session {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	out := make([]*session, 0, len(l.sessions))
	for _, s := range l.sessions {
		out = append(out, s)
	}
	clear(l.sessions)
	return out
}

// open starts session id, pending until it is a member. fresh is false when the link already
// carries that session; sess is nil when the link is closing.
func (l *link) open(id uint64) (sess *session, fresh bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, false
	}
	if sess = l.sessions[id]; sess != nil {
		return sess, false
	}
	sess = &session{id: id, link: l, pending: true}
	l.sessions[id] = sess
	return sess, true
}

// lookup finds session id and its member. A request for a session still entering is held
// (held true) to be applied, in order, once the session is a member; a leave or detach is
// also recorded for the enter to see.
func (l *link) lookup(id uint64, r *roomv1.MemberRequest) (sess *session, m *member, held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sess = l.sessions[id]
	if sess == nil {
		return nil, nil, false
	}
	if sess.pending {
		if (r.GetLeave() != nil || r.GetDetach() != nil) && sess.quit == nil {
			sess.quit = r
		}
		if len(sess.held) < maxHeldRequests {
			sess.held = append(sess.held, r)
		}
		return sess, nil, true
	}
	return sess, sess.m, false
}

// nextHeld hands over the requests held while the session was entering; when there are none
// left the session stops holding. Called by settle until it returns none.
func (l *link) nextHeld(sess *session) []*roomv1.MemberRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := sess.held
	sess.held = nil
	if len(held) == 0 {
		sess.pending = false
	}
	return held
}

// proceed reports whether a pending session may become a member: false when the gateway gave
// up on it (leave, detach) or the link is over, and then the session is forgotten.
func (l *link) proceed(sess *session) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || sess.quit != nil {
		delete(l.sessions, sess.id)
		return false
	}
	return true
}

// forget drops session id: it is over.
func (l *link) forget(id uint64) {
	l.mu.Lock()
	delete(l.sessions, id)
	l.mu.Unlock()
}

// shardTag is the link's shard tag ("" when unsharded, and for Join streams).
func (l *link) shardTag() string {
	if p := l.shard.Load(); p != nil {
		return *p
	}
	return ""
}

// validShardTag accepts what a gateway derives from a shard's name: lowercase hex, short
// enough for a token's clear prefix.
func validShardTag(tag string) bool {
	if len(tag) > 16 {
		return false
	}
	for _, c := range tag {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
