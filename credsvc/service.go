// Package credsvc issues, validates and revokes TURN credentials, keeping its secrets and revocations in bbolt.
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
	store   *store
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
	st, err := openStore(cfg.dbPath())
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
	s.log.Info("credential database ready", "path", st.path, "active_secret", s.keys.Load().active.ID,
		"secrets", len(s.keys.Load().byID), "revocations", len(loaded))
	return s, nil
}

// loadKeyring reads the keyring, applies TURN_SECRET or creates the first secret, and ages it.
func (s *Service) loadKeyring() error {
	records, err := s.store.loadSecrets()
	if err != nil {
		return err
	}
	k, err := newKeyring(records)
	if err != nil {
		return fmt.Errorf("credential database %s: %w", s.store.path, err)
	}
	s.keys.Store(k)
	now := s.cfg.now()
	switch {
	case s.cfg.TurnSecret != "" && subtle.ConstantTimeCompare([]byte(k.active.Secret), []byte(s.cfg.TurnSecret)) != 1:
		previous := k.active.ID
		if err := s.applyPromote(s.cfg.TurnSecret, now); err != nil {
			return fmt.Errorf("%s: %w", envTurnSecret, err)
		}
		if previous != "" {
			s.log.Info("TURN_SECRET differs from the stored active secret: it is now active, the previous one verifies until its credentials expire",
				"active_secret", s.keys.Load().active.ID, "previous_secret", previous)
		}
	case k.active.ID == "":
		if err := s.applyPromote(generateSecret(), now); err != nil {
			return err
		}
		s.log.Info("generated the first TURN secret", "active_secret", s.keys.Load().active.ID)
	}
	return s.ageKeyring(now)
}

// applyPromote makes secret active, durably. kmu must be held or the service not yet serving.
func (s *Service) applyPromote(secret string, now time.Time) error {
	ch, err := s.keys.Load().promote(secret, now, s.cfg.MaxTTL)
	if err != nil {
		return err
	}
	if err := s.store.saveSecrets(ch.put, ch.drop); err != nil {
		return err
	}
	s.keys.Store(ch.next)
	return nil
}

// ageKeyring retires and deletes old secrets, durably.
func (s *Service) ageKeyring(now time.Time) error {
	ch := s.keys.Load().age(now)
	if ch == nil {
		return nil
	}
	if err := s.store.saveSecrets(ch.put, ch.drop); err != nil {
		return err
	}
	s.keys.Store(ch.next)
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
// database.
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
