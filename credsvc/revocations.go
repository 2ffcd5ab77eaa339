package credsvc

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// Keys of the revocation list: what is revoked, by kind.
const (
	prefixUsername    = "u:"
	prefixParticipant = "p:"
)

// defaultWatcherBuffer is how many commits (each one transaction's revocations: a lone
// Revoke, a RevokeBatch, or a group of them) a watcher may lag behind before it is cut off (it
// then reconnects and gets a fresh snapshot, so nothing is lost silently). Counting commits
// rather than revocations keeps a full RevokeBatch from cutting off a watcher that is keeping up.
const defaultWatcherBuffer = 1024

var (
	errStopping = connect.NewError(connect.CodeUnavailable, errors.New("credsvc is stopping; reconnect to another instance or retry"))
	errBehind   = connect.NewError(connect.CodeResourceExhausted, errors.New("revocation watcher fell behind; reconnect for a fresh snapshot"))
)

// revocations is the revocation list in memory, written through to the store, with the
// watchers that follow it.
type revocations struct {
	store store
	// wmu serialises writers, so that a slow disk write never holds mu (which Validate reads).
	wmu sync.Mutex
	// qmu guards the groups waiting to be written and whether a writer is writing them.
	qmu     sync.Mutex
	queue   []*putGroup
	leading bool
	commits atomic.Int64 // transactions written by add, for tests
	// lastCommit is when the last group was written (guarded by qmu).
	lastCommit time.Time
	// groupWindow is how long a writer waits for company under steady load (a field so
	// that tests of one-by-one writes can turn it off).
	groupWindow time.Duration
	// watcherBuffer is defaultWatcherBuffer (a field so that tests can fill it quickly).
	watcherBuffer int

	mu       sync.RWMutex
	m        map[string]revocationRecord
	watchers map[*watcher]struct{}
	closed   bool
}

// watcher is one WatchRevocations stream.
type watcher struct {
	// ch carries the revocations of one commit per entry; the slices are shared by every
	// watcher and must not be modified.
	ch   chan []*credv1.Revocation
	done chan struct{} // closed when the stream must end, with err saying why
	err  error
}

func newRevocations(st store, loaded map[string]revocationRecord) *revocations {
	return &revocations{store: st, m: loaded, watchers: map[*watcher]struct{}{},
		groupWindow: defaultGroupWindow, watcherBuffer: defaultWatcherBuffer}
}

// revoked reports whether a credential is covered by a revocation in force at now.
func (r *revocations) revoked(c credential, now time.Time) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.inForce(prefixUsername+c.Username, now) || r.inForce(prefixParticipant+c.Participant, now)
}

// participantRevoked reports whether a participant's revocation is in force at now.
func (r *revocations) participantRevoked(participant string, now time.Time) (revocationRecord, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rec, ok := r.m[prefixParticipant+participant]
	return rec, ok && now.Before(rec.ExpiresAt)
}

func (r *revocations) inForce(key string, now time.Time) bool {
	rec, ok := r.m[key]
	return ok && now.Before(rec.ExpiresAt)
}

// Group commit under steady load: a writer that finds the previous group written less than
// busyWithin ago waits groupWindow for more revocations to share its fsync. roomsvc revokes
// departing members in the background, so no user waits on this; an occasional revocation
// (an operator's) is written at once. Keying the wait on recent writes rather than on the last
// group's size keeps groups large under a steady trickle.
const (
	defaultGroupWindow = 10 * time.Millisecond
	busyWithin         = 20 * time.Millisecond
)

// revocationPut is one revocation to store.
type revocationPut struct {
	key string
	rec revocationRecord
	// participant is whom it concerns, for logs.
	participant string
	// pb is what is in force once stored.
	pb *credv1.Revocation
}

// putGroup is one caller's revocations waiting for the next group commit; they are written in
// the same transaction.
type putGroup struct {
	puts []*revocationPut
	done chan struct{} // closed once stored (each pb set) or failed (err set)
	err  error
}

// add stores revocations in one transaction (extending any already in force to the later
// expiry), then tells every watcher. Once it returns nil, each put's pb is what is now in force,
// on disk; on an error nothing was stored.
//
// Writers group-commit: the first writer to find no commit running becomes the leader and
// writes every queued group in one transaction (one fsync), again and again until the queue is
// empty; the others wait for their group. A lone caller is one transaction, at once; under
// steady load (roomsvc revokes every departing member) one fsync covers every revocation that
// arrived during the previous one and the group window.
func (r *revocations) add(puts []*revocationPut) error {
	if len(puts) == 0 {
		return nil
	}
	g := &putGroup{puts: puts, done: make(chan struct{})}
	r.qmu.Lock()
	r.queue = append(r.queue, g)
	if r.leading {
		r.qmu.Unlock()
		<-g.done
		return g.err
	}
	r.leading = true
	if r.groupWindow > 0 && time.Since(r.lastCommit) < busyWithin {
		// Revocations are arriving steadily: let more join this transaction.
		r.qmu.Unlock()
		time.Sleep(r.groupWindow)
		r.qmu.Lock()
	}
	for len(r.queue) > 0 {
		groups := r.queue
		r.queue = nil
		r.qmu.Unlock()
		r.commit(groups)
		r.qmu.Lock()
		r.lastCommit = time.Now()
	}
	r.leading = false
	r.qmu.Unlock()
	return g.err
}

// commit writes the revocations of several groups in one transaction, then publishes them.
func (r *revocations) commit(groups []*putGroup) {
	defer func() {
		for _, g := range groups {
			close(g.done)
		}
	}()
	var batch []*revocationPut
	for _, g := range groups {
		batch = append(batch, g.puts...)
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	// Extend to the later expiry, against memory and against earlier entries of this batch
	// (only writers change r.m, and they hold wmu).
	latest := make(map[string]int, len(batch))
	r.mu.RLock()
	for i, p := range batch {
		old, ok := r.m[p.key]
		if j, dup := latest[p.key]; dup {
			old, ok = batch[j].rec, true
		}
		if ok && old.ExpiresAt.After(p.rec.ExpiresAt) {
			p.rec.ExpiresAt = old.ExpiresAt
		}
		latest[p.key] = i
	}
	r.mu.RUnlock()
	r.commits.Add(1)
	if err := r.store.putRevocations(batch); err != nil {
		for _, g := range groups {
			g.err = err
		}
		return
	}
	for _, p := range batch {
		p.pb = revocationProto(p.key, p.rec)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	pbs := make([]*credv1.Revocation, 0, len(batch))
	for _, p := range batch {
		// With etcd the watch may have brought this very write already, and announced it.
		if old, ok := r.m[p.key]; ok && old.rev != 0 && old.rev >= p.rec.rev {
			continue
		}
		r.m[p.key] = p.rec
		pbs = append(pbs, p.pb)
	}
	r.publishLocked(pbs)
}

// publishLocked hands one commit's revocations to every watcher; mu must be held for writing.
func (r *revocations) publishLocked(pbs []*credv1.Revocation) {
	if len(pbs) == 0 {
		return
	}
	for w := range r.watchers {
		select {
		case w.ch <- pbs:
		default:
			r.drop(w, errBehind)
		}
	}
}

// applyStored takes in revocations another replica wrote (or this one, seen again through the
// watch: the same revision is not announced twice), keeping the later expiry, and announces
// the new ones.
func (r *revocations) applyStored(stored map[string]revocationRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applyStoredLocked(stored)
}

func (r *revocations) applyStoredLocked(stored map[string]revocationRecord) {
	keys := slices.Sorted(maps.Keys(stored))
	pbs := make([]*credv1.Revocation, 0, len(stored))
	for _, k := range keys {
		rec := stored[k]
		old, ok := r.m[k]
		if ok && old.rev >= rec.rev {
			continue
		}
		if ok && old.ExpiresAt.After(rec.ExpiresAt) {
			rec.ExpiresAt = old.ExpiresAt
		}
		r.m[k] = rec
		pbs = append(pbs, revocationProto(k, rec))
	}
	r.publishLocked(pbs)
}

// applyDeleted forgets revocations deleted from the store, unless memory holds a later write.
func (r *revocations) applyDeleted(deleted map[string]int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, rev := range deleted {
		if old, ok := r.m[k]; ok && old.rev < rev {
			delete(r.m, k)
		}
	}
}

// applyResync replaces memory with everything stored at revision rev, keeping what this
// replica wrote after it, and announces what is new.
func (r *revocations) applyResync(all map[string]revocationRecord, rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, old := range r.m {
		if _, ok := all[k]; !ok && old.rev <= rev {
			delete(r.m, k)
		}
	}
	r.applyStoredLocked(all)
}

// sweep forgets revocations whose credentials have all expired. It returns how many.
func (r *revocations) sweep(now time.Time) (int, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	expired := map[string]revocationRecord{}
	r.mu.RLock()
	for k, rec := range r.m {
		if !now.Before(rec.ExpiresAt) {
			expired[k] = rec
		}
	}
	r.mu.RUnlock()
	if err := r.store.deleteRevocations(expired); err != nil {
		return 0, err
	}
	r.mu.Lock()
	for k, rec := range expired {
		// Another replica may have renewed it meanwhile (a newer revision): that one stays.
		if r.m[k].rev == rec.rev {
			delete(r.m, k)
		}
	}
	r.mu.Unlock()
	return len(expired), nil
}

// list returns the revocations in force at now, oldest first.
func (r *revocations) list(now time.Time) []*credv1.Revocation {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.listLocked(now)
}

func (r *revocations) listLocked(now time.Time) []*credv1.Revocation {
	keys := make([]string, 0, len(r.m))
	for k, rec := range r.m {
		if now.Before(rec.ExpiresAt) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := r.m[a].RevokedAt.Compare(r.m[b].RevokedAt); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	out := make([]*credv1.Revocation, len(keys))
	for i, k := range keys {
		out[i] = revocationProto(k, r.m[k])
	}
	return out
}

// watch registers a watcher and returns, atomically with it, every revocation in force: no
// revocation falls between the snapshot and the feed.
func (r *revocations) watch(now time.Time) (*watcher, []*credv1.Revocation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, errStopping
	}
	w := &watcher{ch: make(chan []*credv1.Revocation, r.watcherBuffer), done: make(chan struct{})}
	r.watchers[w] = struct{}{}
	return w, r.listLocked(now), nil
}

// unwatch removes a watcher whose stream has ended.
func (r *revocations) unwatch(w *watcher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.watchers, w)
}

// close ends every watch stream with Unavailable and refuses new ones.
func (r *revocations) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for w := range r.watchers {
		r.drop(w, errStopping)
	}
}

// drop ends one watcher; mu must be held.
func (r *revocations) drop(w *watcher, err error) {
	delete(r.watchers, w)
	w.err = err
	close(w.done)
}

func (r *revocations) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.watchers)
}

// revocationProto converts a stored revocation.
func revocationProto(key string, rec revocationRecord) *credv1.Revocation {
	pb := &credv1.Revocation{
		RevokedAt: timestamppb.New(rec.RevokedAt),
		ExpiresAt: timestamppb.New(rec.ExpiresAt),
		Reason:    rec.Reason,
	}
	if u, ok := strings.CutPrefix(key, prefixUsername); ok {
		pb.Target = &credv1.Revocation_Username{Username: u}
	} else {
		pb.Target = &credv1.Revocation_ParticipantId{ParticipantId: strings.TrimPrefix(key, prefixParticipant)}
	}
	return pb
}
