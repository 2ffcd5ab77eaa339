package turnsvc

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons an allocation ends, as counted in GetStats and tuturu.turn.allocations.closed.
const (
	reasonEnded    = "ended"    // the client released it, its lifetime ran out or its TCP connection closed
	reasonRevoked  = "revoked"  // its credential was revoked
	reasonAdmin    = "admin"    // CloseAllocations
	reasonQuota    = "quota"    // over the per-username quota after a concurrent Allocate
	reasonShutdown = "shutdown" // the drain timeout ran out
)

// allocation is what turnsvc knows about one pion allocation. pion keeps its own state; this
// record is created when the relay socket is opened (the generator does not yet know who asked)
// and attached to its owner when pion reports the allocation created.
type allocation struct {
	relay *net.UDPAddr // as advertised
	port  int          // relay port, the registry key
	conn  *relayConn

	// Set once by attach, under the registry lock; read-only afterwards.
	attached    bool
	username    string
	participant string
	protocol    string
	client      string // client address as seen by the server
	clientKey   string
	key         []byte // long-term key, so refreshes keep working after the credential expires
	created     time.Time

	clientAP netip.AddrPort            // UDP clients only: the fast path's key and destination
	chans    atomic.Pointer[[]channel] // channel bindings, for the fast path (fastpath.go)

	reason atomic.Pointer[string]  // why turnsvc closed it; nil means the client or pion did
	peers  map[netip.Addr]struct{} // peer IPs with a permission; under the registry lock
	// refused is why the PermissionHandler refused the request being handled, until its error
	// response goes out (refusal.go).
	refused atomic.Pointer[refusal]

	bytesTo, bytesFrom, pktsTo, pktsFrom atomic.Uint64
}

// close ends the allocation for reason: closing the relay socket makes pion delete it.
func (a *allocation) close(reason string) {
	a.conn.reg.fence.sync()
	a.reason.CompareAndSwap(nil, &reason)
	_ = a.conn.Close()
}

// registry indexes the live allocations of every listener.
type registry struct {
	fence      fence
	st         *stats
	userQuota  int
	maxAllocs  int
	maxPeers   int
	onReleased func(*allocation, string)         // after an allocation is gone, outside the lock
	onGuarded  func(*allocation, netip.AddrPort) // first datagram of an allocation the own-address guard dropped
	udpOut     *net.UDPConn                      // a TURN UDP socket, for ChannelData sent on the fast path
	fast       sync.Map                          // netip.AddrPort of a UDP client → *allocation

	mu       sync.RWMutex
	byPort   map[int]*allocation // every open relay socket, attached or not
	byClient map[string]*allocation
	byUser   map[string]int
	live     int // attached allocations
	// figures of allocations already closed, so totals never go backwards
	closedTotals totals
}

type totals struct {
	live                                 int
	bytesTo, bytesFrom, pktsTo, pktsFrom uint64
}

func newRegistry(st *stats, userQuota, maxAllocs, maxPeers int) *registry {
	return &registry{
		st: st, userQuota: userQuota, maxAllocs: maxAllocs, maxPeers: maxPeers,
		byPort: map[int]*allocation{}, byClient: map[string]*allocation{}, byUser: map[string]int{},
	}
}

// clientKey names a client transport address; network is part of it because a UDP and a TCP
// client may share ip:port.
func clientKey(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	return addr.Network() + "/" + addr.String()
}

// reserve records a freshly opened relay socket; false when the total cap is reached.
func (r *registry) reserve(a *allocation) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byPort) >= r.maxAllocs {
		return false
	}
	r.byPort[a.port] = a
	return true
}

// attach links a relay socket to the client and credential that allocated it. It returns false
// when the allocation must be closed at once (unknown relay, or over quota after a race).
func (r *registry) attach(relayPort int, client net.Addr, protocol, username, participant string, key []byte) (*allocation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.byPort[relayPort]
	if a == nil || a.attached {
		return a, false
	}
	a.attached = true
	a.username, a.participant, a.protocol, a.key = username, participant, protocol, key
	a.client, a.clientKey = client.String(), clientKey(client)
	a.created = time.Now()
	a.peers = map[netip.Addr]struct{}{}
	r.byClient[a.clientKey] = a
	if u, ok := client.(*net.UDPAddr); ok && protocol == "udp" {
		ap := u.AddrPort()
		a.clientAP = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		r.fast.Store(a.clientAP, a)
	}
	r.byUser[username]++
	r.live++
	r.st.created.Add(1)
	return a, r.byUser[username] <= r.userQuota
}

// release forgets a relay socket that was closed, and returns why it ended.
func (r *registry) release(a *allocation) {
	reason := reasonEnded
	if p := a.reason.Load(); p != nil {
		reason = *p
	}
	r.mu.Lock()
	if r.byPort[a.port] != a {
		r.mu.Unlock()
		return
	}
	delete(r.byPort, a.port)
	if a.attached {
		if r.byClient[a.clientKey] == a {
			delete(r.byClient, a.clientKey)
		}
		if a.clientAP.IsValid() {
			r.fast.CompareAndDelete(a.clientAP, a)
		}
		if r.byUser[a.username]--; r.byUser[a.username] <= 0 {
			delete(r.byUser, a.username)
		}
		r.live--
		r.closedTotals.bytesTo += a.bytesTo.Load()
		r.closedTotals.bytesFrom += a.bytesFrom.Load()
		r.closedTotals.pktsTo += a.pktsTo.Load()
		r.closedTotals.pktsFrom += a.pktsFrom.Load()
	}
	r.mu.Unlock()
	if a.attached {
		r.st.closedReason(reason)
		if r.onReleased != nil {
			r.onReleased(a, reason)
		}
	}
}

// liveKey returns the key of the allocation held by client under username: refreshes and
// permissions of a live allocation keep working after its credential expires.
func (r *registry) liveKey(client net.Addr, username string) ([]byte, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a := r.byClient[clientKey(client)]
	if a == nil || a.username != username || a.reason.Load() != nil {
		return nil, false
	}
	return a.key, true
}

// userCount is the number of live allocations of username.
func (r *registry) userCount(username string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byUser[username]
}

// full reports whether the total cap is reached.
func (r *registry) full() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byPort) >= r.maxAllocs
}

// isRelayPort reports whether port is a live relay socket of this server; which addresses
// that port is reached on is the guard's business (ownGuard.refuses).
func (r *registry) isRelayPort(port int) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.byPort[port]
	return ok
}

// addPeer records a permission of the client's allocation for ip; false when the allocation
// already holds permissions for maxPeers other addresses.
func (r *registry) addPeer(client net.Addr, ip netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.byClient[clientKey(client)]
	if a == nil {
		return true // pion refuses permissions without an allocation itself
	}
	if _, ok := a.peers[ip]; ok {
		return true
	}
	if len(a.peers) >= r.maxPeers {
		return false
	}
	a.peers[ip] = struct{}{}
	return true
}

// removePeer forgets an expired or removed permission.
func (r *registry) removePeer(client net.Addr, ip netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.byClient[clientKey(client)]; a != nil {
		delete(a.peers, ip)
	}
}

// match returns the attached allocations of a username or participant (empty matches nothing),
// or all of them when both are empty and all is true.
func (r *registry) match(username, participant string, all bool) []*allocation {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*allocation
	for _, a := range r.byClient {
		switch {
		case all && username == "" && participant == "":
		case username != "" && a.username == username:
		case participant != "" && a.participant == participant:
		default:
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y *allocation) int { return x.created.Compare(y.created) })
	return out
}

// closeMatching closes the allocations of a username or participant and returns how many.
func (r *registry) closeMatching(username, participant, reason string) int {
	list := r.match(username, participant, false)
	for _, a := range list {
		a.close(reason)
	}
	return len(list)
}

// closeAll closes every open relay socket, attached or not.
func (r *registry) closeAll(reason string) {
	r.mu.RLock()
	list := make([]*allocation, 0, len(r.byPort))
	for _, a := range r.byPort {
		list = append(list, a)
	}
	r.mu.RUnlock()
	for _, a := range list {
		a.close(reason)
	}
}

// count is the number of attached allocations.
func (r *registry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.live
}

// totals adds the live allocations' traffic to the closed ones'.
func (r *registry) totals() totals {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t := r.closedTotals
	t.live = r.live
	for _, a := range r.byClient {
		t.bytesTo += a.bytesTo.Load()
		t.bytesFrom += a.bytesFrom.Load()
		t.pktsTo += a.pktsTo.Load()
		t.pktsFrom += a.pktsFrom.Load()
	}
	return t
}
