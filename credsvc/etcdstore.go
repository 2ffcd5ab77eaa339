package credsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxTxnOps is etcd's default limit on the operations of one transaction (--max-txn-ops): a
// write of more revocations is split into transactions of this many.
const maxTxnOps = 128

// etcdTimeout bounds each request to etcd, so that a lost cluster fails a call instead of
// holding it.
const etcdTimeout = 5 * time.Second

// leaseMargin is added to a revocation's lifetime for its lease: etcd forgets it on its own
// even when no replica sweeps, never before it expires.
const leaseMargin = time.Minute

// leaseBucket: revocations whose leases would end within the same 10 minutes share one lease
// (ending with the bucket), so that etcd holds about TURN_MAX_TTL / 10 min leases from each
// replica whatever the rate of revocations, and a write needs no lease grant of its own.
const leaseBucket = 10 * time.Minute

// followRetry is the pause before a lost watch is set up again.
const followRetry = time.Second

// etcdStore keeps the keyring in one key and each revocation in a key of its own under a
// prefix, shared by every replica. Keys:
//
//	<prefix>keyring             the keyring, a JSON array; every change is compare-and-swap
//	<prefix>revocations/<key>   one revocation, with a lease that ends after it expires
type etcdStore struct {
	cli       *clientv3.Client
	endpoints string
	prefix    string
	log       *slog.Logger

	lmu sync.Mutex
	// leases by the Unix second their bucket ends.
	leases map[int64]clientv3.LeaseID
}

func openEtcdStore(cfg clientv3.Config, prefix string, log *slog.Logger) (*etcdStore, error) {
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return &etcdStore{cli: cli, endpoints: strings.Join(cfg.Endpoints, ","), prefix: prefix, log: log,
		leases: map[int64]clientv3.LeaseID{}}, nil
}

func (s *etcdStore) String() string { return "etcd " + s.endpoints + " prefix " + s.prefix }

func (s *etcdStore) close() error {
	if err := s.cli.Close(); err != nil {
		return fmt.Errorf("close etcd client %s: %w", s.endpoints, err)
	}
	return nil
}

func (s *etcdStore) keyringKey() string     { return s.prefix + "keyring" }
func (s *etcdStore) revocationsKey() string { return s.prefix + "revocations/" }

func (s *etcdStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), etcdTimeout)
}

// casAttempts bounds the compare-and-swap retries of one keyring change: each lost attempt
// means another replica changed the keyring, which happens a few times a year.
const casAttempts = 10

// updateSecrets is a compare-and-swap on the keyring key: it writes only if the key is still
// at the revision read (absent: revision 0, so of two replicas starting together one creates
// the first secret and the other reads it).
func (s *etcdStore) updateSecrets(change func(*keyring) (*keyringChange, error)) (*keyring, *keyringChange, error) {
	for range casAttempts {
		cur, modRev, err := s.readKeyring()
		if err != nil {
			return nil, nil, err
		}
		ch, err := change(cur)
		if err != nil || ch == nil {
			return cur, nil, err
		}
		v, err := json.Marshal(ch.next.list())
		if err != nil {
			return nil, nil, fmt.Errorf("%s: encode keyring: %w", s, err)
		}
		ctx, cancel := s.ctx()
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.keyringKey()), "=", modRev)).
			Then(clientv3.OpPut(s.keyringKey(), string(v))).
			Commit()
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: write keyring: %w", s, err)
		}
		if resp.Succeeded {
			ch.next.rev = resp.Header.Revision
			return ch.next, ch, nil
		}
		// Another replica changed it first: decide again on what it wrote.
	}
	return nil, nil, fmt.Errorf("%s: keyring changed by other replicas %d times in a row", s, casAttempts)
}

// readKeyring returns the stored keyring and its key's modification revision (0: absent).
func (s *etcdStore) readKeyring() (*keyring, int64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.keyringKey())
	if err != nil {
		return nil, 0, fmt.Errorf("%s: read keyring: %w", s, err)
	}
	if len(resp.Kvs) == 0 {
		k, _ := newKeyring(nil)
		return k, 0, nil
	}
	k, err := s.decodeKeyring(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	return k, resp.Kvs[0].ModRevision, err
}

func (s *etcdStore) decodeKeyring(v []byte, rev int64) (*keyring, error) {
	var records []secretRecord
	if err := json.Unmarshal(v, &records); err != nil {
		return nil, fmt.Errorf("%s: keyring: %w", s, err)
	}
	k, err := newKeyring(records)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	k.rev = rev
	return k, nil
}

// loadRevocations reads every stored revocation by key.
func (s *etcdStore) loadRevocations() (map[string]revocationRecord, error) {
	_, m, _, err := s.readAll(context.Background())
	return m, err
}

// readAll returns the keyring, every revocation and the revision they were read at, in one
// read.
func (s *etcdStore) readAll(parent context.Context) (*keyring, map[string]revocationRecord, int64, error) {
	ctx, cancel := context.WithTimeout(parent, etcdTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%s: read: %w", s, err)
	}
	k, _ := newKeyring(nil)
	out := make(map[string]revocationRecord, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if string(kv.Key) == s.keyringKey() {
			if k, err = s.decodeKeyring(kv.Value, kv.ModRevision); err != nil {
				return nil, nil, 0, err
			}
			continue
		}
		key, ok := strings.CutPrefix(string(kv.Key), s.revocationsKey())
		if !ok {
			continue
		}
		r, err := decodeRevocation(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: revocation %q: %w", s, key, err)
		}
		out[key] = r
	}
	return k, out, resp.Header.Revision, nil
}

func decodeRevocation(v []byte, rev int64) (revocationRecord, error) {
	var r revocationRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return r, err
	}
	r.rev = rev
	return r, nil
}

// putRevocations writes revocations in transactions of at most maxTxnOps puts, under a lease
// that ends after the longest-lived of them expires. More than maxTxnOps are several
// transactions: when one fails the earlier ones stay stored (revoking more than the caller
// learns of is the safe side, and revoking again is harmless).
func (s *etcdStore) putRevocations(puts []*revocationPut) error {
	var lifetime time.Duration
	for _, p := range puts {
		// The service's clock gives both times, so the lifetime does not depend on this
		// machine's clock agreeing with it.
		lifetime = max(lifetime, p.rec.ExpiresAt.Sub(p.rec.RevokedAt))
	}
	ctx, cancel := s.ctx()
	defer cancel()
	// A shared lease may have been revoked by hand: then once more with a new one.
	for attempt := 0; ; attempt++ {
		lease, bucket, err := s.lease(ctx, lifetime)
		if err != nil {
			return err
		}
		err = s.putChunks(ctx, puts, lease)
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) || attempt > 0 {
			return err
		}
		s.forgetLease(bucket)
	}
}

func (s *etcdStore) putChunks(ctx context.Context, puts []*revocationPut, lease clientv3.LeaseID) error {
	for start := 0; start < len(puts); start += maxTxnOps {
		chunk := puts[start:min(start+maxTxnOps, len(puts))]
		ops := make([]clientv3.Op, len(chunk))
		for i, p := range chunk {
			v, err := json.Marshal(p.rec)
			if err != nil {
				return fmt.Errorf("%s: encode revocation: %w", s, err)
			}
			ops[i] = clientv3.OpPut(s.revocationsKey()+p.key, string(v), clientv3.WithLease(lease))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("%s: write revocations: %w", s, err)
		}
		for _, p := range chunk {
			p.rec.rev = resp.Header.Revision
		}
	}
	return nil
}

// lease returns a lease that lives at least lifetime + leaseMargin from now: the one of its
// bucket, granted on first use. It also forgets the leases of buckets that have ended.
func (s *etcdStore) lease(ctx context.Context, lifetime time.Duration) (clientv3.LeaseID, int64, error) {
	now := time.Now()
	end := now.Add(lifetime + leaseMargin).Truncate(leaseBucket).Add(leaseBucket)
	s.lmu.Lock()
	defer s.lmu.Unlock()
	for b := range s.leases {
		if b <= now.Unix() {
			delete(s.leases, b)
		}
	}
	if id, ok := s.leases[end.Unix()]; ok {
		return id, end.Unix(), nil
	}
	resp, err := s.cli.Grant(ctx, int64(end.Sub(now)/time.Second)+1)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: lease for revocations: %w", s, err)
	}
	s.leases[end.Unix()] = resp.ID
	return resp.ID, end.Unix(), nil
}

func (s *etcdStore) forgetLease(bucket int64) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	delete(s.leases, bucket)
}

// deleteRevocations deletes each expired revocation only if it is still the write that was
// swept (same modification revision): replicas sweeping together delete each at most once, and
// a revocation another replica has just renewed stays. A batch of nested transactions each
// guarding one key keeps one key's renewal from failing the others; etcd counts the nested
// operations against the same limit, hence half as many per transaction.
func (s *etcdStore) deleteRevocations(expired map[string]revocationRecord) error {
	const perTxn = maxTxnOps / 2
	ops := make([]clientv3.Op, 0, min(len(expired), perTxn))
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		ctx, cancel := s.ctx()
		defer cancel()
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("%s: delete revocations: %w", s, err)
		}
		ops = ops[:0]
		return nil
	}
	for k, r := range expired {
		key := s.revocationsKey() + k
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", r.rev)},
			[]clientv3.Op{clientv3.OpDelete(key)}, nil))
		if len(ops) == perTxn {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// follow reads everything, then watches the prefix from the next revision, feeding f; when the
// watch is lost (etcd unreachable, history compacted) it starts over after followRetry.
func (s *etcdStore) follow(ctx context.Context, f follower) {
	for ctx.Err() == nil {
		err := s.followOnce(ctx, f)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("following etcd failed; reading it again", "store", s.String(), "err", err, "retry_in", followRetry)
		select {
		case <-ctx.Done():
		case <-time.After(followRetry):
		}
	}
}

func (s *etcdStore) followOnce(ctx context.Context, f follower) error {
	k, revs, rev, err := s.readAll(ctx)
	if err != nil {
		return err
	}
	f.keyring(k)
	f.resync(revs, rev)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("%s: watch: %w", s, err)
		}
		stored := map[string]revocationRecord{}
		deleted := map[string]int64{}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			if key == s.keyringKey() {
				if ev.Type == clientv3.EventTypePut {
					k, err := s.decodeKeyring(ev.Kv.Value, ev.Kv.ModRevision)
					if err != nil {
						return err
					}
					f.keyring(k)
				}
				continue
			}
			rk, ok := strings.CutPrefix(key, s.revocationsKey())
			if !ok {
				continue
			}
			if ev.Type == clientv3.EventTypeDelete {
				delete(stored, rk)
				deleted[rk] = ev.Kv.ModRevision
				continue
			}
			r, err := decodeRevocation(ev.Kv.Value, ev.Kv.ModRevision)
			if err != nil {
				return fmt.Errorf("%s: revocation %q: %w", s, rk, err)
			}
			delete(deleted, rk)
			stored[rk] = r
		}
		if len(stored) > 0 {
			f.stored(stored)
		}
		if len(deleted) > 0 {
			f.deleted(deleted)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("watch ended")
}
