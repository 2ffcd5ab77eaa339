// Package credsvc issues, validates and revokes TURN credentials, keeping its secrets and
// revocations in bbolt (one replica) or etcd (several replicas sharing them).
package credsvc

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

// Service is the credential service.
type Service struct {
	cfg     Config
	log     *slog.Logger
	srv     *platform.Server
	store   store
	metrics *metrics
	revs    *revocations

	// keys is read without locks by Issue and Validate; kmu serialises changes.
	keys atomic.Pointer[keyring]
	kmu  sync.Mutex

	credv1connect.UnimplementedCredentialServiceHandler
	credv1connect.UnimplementedCredentialAdminServiceHandler
}

// New checks the configuration, opens the database, loads (or creates) the keyring and the
// revocation list, and binds the listener. Configuration errors name the variable.
func New(cfg Config) (_ *Service, err error) {
	defer func() {
		if err != nil && cfg.Listener != nil {
			cfg.Listener.Close()
		}
	}()
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("credsvc: bad configuration:\n%w", err)
	}
	s := &Service{cfg: cfg, log: cfg.Logger()}
	st, err := cfg.openStore(s.log)
	if err != nil {
		return nil, fmt.Errorf("credsvc: %w", err)
	}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	s.store = st
	if err := s.loadKeyring(); err != nil {
		return nil, fmt.Errorf("credsvc: %w", err)
	}
	loaded, err := st.loadRevocations()
	if err != nil {
		return nil, fmt.Errorf("credsvc: %w", err)
	}
	s.revs = newRevocations(st, loaded)
	if _, err := s.revs.sweep(cfg.now()); err != nil {
		return nil, fmt.Errorf("credsvc: %w", err)
	}
	if s.metrics, err = newMetrics(cfg.Telemetry); err != nil {
		return nil, fmt.Errorf("credsvc: %w", err)
	}

	srv, err := platform.NewServer("credsvc", cfg.Addr, cfg.Listener, s.log)
	if err != nil {
		return nil, err
	}
	internal, err := platform.HandlerOptions(cfg.Telemetry, cfg.InternalToken)
	if err != nil {
		return nil, err
	}
	admin, err := platform.HandlerOptions(cfg.Telemetry, cfg.AdminToken)
	if err != nil {
		return nil, err
	}
	path, h := credv1connect.NewCredentialServiceHandler(s, internal...)
	srv.Register(credv1connect.CredentialServiceName, path, h)
	path, h = credv1connect.NewCredentialAdminServiceHandler(s, admin...)
	srv.Register(credv1connect.CredentialAdminServiceName, path, h)
	s.srv = srv
	s.log.Info("credential store ready", "store", st.String(), "active_secret", s.keys.Load().active.ID,
		"secrets", len(s.keys.Load().byID), "revocations", len(loaded))
	return s, nil
}

// loadKeyring reads the keyring, applies TURN_SECRET or creates the first secret, and ages it.
// Each step decides on the keyring as stored, so that replicas starting together agree: one
// creates the first secret, the others read it.
func (s *Service) loadKeyring() error {
	now := s.cfg.now()
	var previous string
	k, ch, err := s.store.updateSecrets(func(k *keyring) (*keyringChange, error) {
		previous = k.active.ID
		switch {
		case s.cfg.TurnSecret != "" && subtle.ConstantTimeCompare([]byte(k.active.Secret), []byte(s.cfg.TurnSecret)) != 1:
			ch, err := k.promote(s.cfg.TurnSecret, now, s.cfg.MaxTTL)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", envTurnSecret, err)
			}
			return &ch, nil
		case k.active.ID == "":
			ch, err := k.promote(generateSecret(), now, s.cfg.MaxTTL)
			return &ch, err
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	s.keys.Store(k)
	switch {
	case ch != nil && previous != "":
		s.log.Info("TURN_SECRET differs from the stored active secret: it is now active, the previous one verifies until its credentials expire",
			"active_secret", k.active.ID, "previous_secret", previous)
	case ch != nil:
		s.log.Info("generated the first TURN secret", "active_secret", k.active.ID)
	}
	return s.ageKeyring(now)
}

// setKeys installs k unless a newer keyring is installed already (one from the watch and one
// this replica wrote may arrive in either order). kmu must be held.
func (s *Service) setKeys(k *keyring) {
	if cur := s.keys.Load(); cur != nil && k.rev != 0 && cur.rev >= k.rev {
		return
	}
	s.keys.Store(k)
}

// keyringChanged installs a keyring another replica wrote.
func (s *Service) keyringChanged(k *keyring) {
	if k.active.ID == "" {
		// Deleted from etcd by hand: keep signing with what this replica has.
		s.log.Warn("the stored keyring has no active secret; keeping the one in memory", "store", s.store.String())
		return
	}
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if cur := s.keys.Load(); cur.active.ID != k.active.ID && (k.rev > cur.rev) {
		s.log.Info("active secret changed by another replica", "active_secret", k.active.ID, "previous_secret", cur.active.ID)
	}
	s.setKeys(k)
}

// applyPromote makes secret active, durably. kmu must be held or the service not yet serving.
func (s *Service) applyPromote(secret string, now time.Time) error {
	k, _, err := s.store.updateSecrets(func(k *keyring) (*keyringChange, error) {
		ch, err := k.promote(secret, now, s.cfg.MaxTTL)
		return &ch, err
	})
	if err != nil {
		return err
	}
	s.setKeys(k)
	return nil
}

// ageKeyring retires and deletes old secrets, durably. With etcd every replica ages the
// keyring it reads, so two doing it together write it once.
func (s *Service) ageKeyring(now time.Time) error {
	k, ch, err := s.store.updateSecrets(func(k *keyring) (*keyringChange, error) { return k.age(now), nil })
	if err != nil {
		return err
	}
	s.setKeys(k)
	if ch == nil {
		return nil
	}
	for _, r := range ch.put {
		s.log.Info("secret retired: every credential it signed has expired", "secret", r.ID)
	}
	for _, id := range ch.drop {
		s.log.Info("retired secret deleted", "secret", id)
	}
	return nil
}

// Addr is the address the service listens on.
func (s *Service) Addr() string { return s.srv.Addr().String() }

// Run serves until ctx ends, then ends the watch streams, stops gracefully and closes the
// store. With etcd it follows what the other replicas write meanwhile.
func (s *Service) Run(ctx context.Context) error {
	// done also ends when Serve fails on its own, so the helpers below never outlive Run.
	done, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		<-done.Done()
		// Streams would otherwise hold the graceful stop for its whole timeout.
		s.revs.close()
	})
	wg.Go(func() { s.sweepLoop(done) })
	wg.Go(func() {
		s.store.follow(done, follower{
			keyring: s.keyringChanged,
			resync:  s.revs.applyResync,
			stored:  s.revs.applyStored,
			deleted: s.revs.applyDeleted,
		})
	})
	err := s.srv.Serve(ctx)
	cancel()
	wg.Wait()
	if cerr := s.store.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("credsvc: %w", err)
	}
	return nil
}

// sweepLoop forgets expired revocations and ages the keyring every SweepInterval.
func (s *Service) sweepLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep(ctx)
		}
	}
}

// sweep runs one sweep; errors are logged and retried at the next tick.
func (s *Service) sweep(ctx context.Context) {
	now := s.cfg.now()
	if n, err := s.revs.sweep(now); err != nil {
		s.log.WarnContext(ctx, "sweeping revocations failed", "err", err)
	} else if n > 0 {
		s.log.DebugContext(ctx, "expired revocations forgotten", "count", n)
	}
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if err := s.ageKeyring(now); err != nil {
		s.log.WarnContext(ctx, "ageing the keyring failed", "err", err)
	}
}
