package loadtest

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// runIdle opens cfg.Idle joined sessions (two per PIN, as calls in progress), holds them for
// cfg.IdleHold while they answer keepalives, and reports the server's memory per session.
func (d *driver) runIdle(ctx context.Context, r *Report, out io.Writer) error {
	n := d.cfg.Idle
	before, err := sumRSS(d.cfg.ServerPIDs)
	if err != nil && len(d.cfg.ServerPIDs) > 0 {
		return err
	}
	r.RSSBefore = before
	fmt.Fprintf(out, "idle: opening %d joined sessions (%d rooms)\n", n, (n+1)/2)

	var (
		mu      sync.Mutex
		clients = make([]*client, 0, n)
		failed  atomic.Int64
		ended   atomic.Int64
		wg      sync.WaitGroup
		sem     = make(chan struct{}, min(d.cfg.Concurrency, 128))
		pin     string
	)
	var closing atomic.Bool
	began := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		if i%2 == 0 {
			pin = d.nextPIN()
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(pin string) {
			defer wg.Done()
			defer func() { <-sem }()
			jctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
			defer cancel()
			c, err := dial(jctx, d.cfg.URL, d.hc, d.cfg.Origin)
			if err == nil {
				if err = c.send(jctx, d.p.joinA(pin)); err == nil {
					err = c.expectType(jctx, "join-pin")
				}
			}
			if err != nil {
				failed.Add(1)
				if c != nil {
					_ = c.c.CloseNow()
				}
				return
			}
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
			// Keep reading, so the client answers the server's pings like a browser.
			go func() {
				for {
					if _, _, err := c.c.Read(context.Background()); err != nil {
						if !closing.Load() {
							ended.Add(1)
						}
						return
					}
				}
			}()
		}(pin)
	}
	wg.Wait()
	r.IdleOpen = len(clients)
	fmt.Fprintf(out, "  %d open, %d failed, in %v; holding %v\n", len(clients), failed.Load(), time.Since(began).Round(time.Millisecond), d.cfg.IdleHold)
	select {
	case <-time.After(d.cfg.IdleHold):
	case <-ctx.Done():
	}
	if len(d.cfg.ServerPIDs) > 0 && r.IdleOpen > 0 {
		if r.RSSIdle, err = sumRSS(d.cfg.ServerPIDs); err != nil {
			return err
		}
		r.RSSPerSession = r.RSSIdle / int64(r.IdleOpen)
		r.RSSDeltaPS = (r.RSSIdle - r.RSSBefore) / int64(r.IdleOpen)
		fmt.Fprintf(out, "  server RSS %d MiB before, %d MiB with %d sessions: %.1f KiB per session (RSS / sessions), %.1f KiB added per session\n",
			r.RSSBefore>>20, r.RSSIdle>>20, r.IdleOpen, float64(r.RSSPerSession)/1024, float64(r.RSSDeltaPS)/1024)
	}
	if e := ended.Load(); e > 0 {
		fmt.Fprintf(out, "  %d sessions ended while idle\n", e)
	}
	closing.Store(true)
	// Close cleanly, so the gateway and roomsvc free the members at once.
	var cw sync.WaitGroup
	for _, c := range clients {
		sem <- struct{}{}
		cw.Add(1)
		go func() {
			defer cw.Done()
			defer func() { <-sem }()
			_ = c.c.Close(websocket.StatusNormalClosure, "")
		}()
	}
	cw.Wait()
	runtime.GC()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("loadtest: %d idle sessions failed to join", f)
	}
	if e := ended.Load(); e > 0 {
		return fmt.Errorf("loadtest: %d idle sessions were closed by the server while idle", e)
	}
	return nil
}
