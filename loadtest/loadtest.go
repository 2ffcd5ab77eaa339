// Package loadtest drives call set-ups and idle sessions through a gateway's browser dialect
// and reports throughput, set-up latency, and the server's CPU and memory per unit of work.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config says what to drive and what to measure.
type Config struct {
	// URL is the gateway's WebSocket endpoint, ws://host:port/ws.
	URL string
	// Origin, when set, is sent as the Origin header (the gateway must allow it).
	Origin string
	// Calls is how many call set-ups to drive; Warmup more run first, unmeasured.
	Calls, Warmup int
	// Rate is set-ups started per second (open loop). Zero runs Concurrency calls back to back
	// (closed loop) to find the highest rate.
	Rate float64
	// Concurrency is the number of closed-loop workers, and the cap on calls in flight.
	Concurrency int
	// Timeout bounds one call.
	Timeout time.Duration
	// ServerPIDs are the processes whose CPU and memory are measured (all of `tuturu all`, or
	// every service process).
	ServerPIDs []int
	// Idle is how many joined sessions to hold open for the memory figure; IdleHold how long.
	Idle     int
	IdleHold time.Duration
}

// Report holds the figures of a run.
type Report struct {
	OK, Failed    int
	Failures      map[string]int
	Elapsed       time.Duration
	SetupsPerSec  float64
	P50, P95, P99 time.Duration
	Max           time.Duration
	ServerCPU     time.Duration // over the measured calls
	CPUPerSetup   time.Duration
	// ServerWait is how long the server's threads were runnable but queued for a CPU over the
	// measured calls (zero where the kernel does not say): a noisy machine shows here.
	ServerWait time.Duration
	// ClientCPUPerSetup is this tool's own CPU per set-up: on a shared machine it competes
	// with the server.
	ClientCPUPerSetup time.Duration
	// Idle sessions.
	IdleOpen                  int
	RSSBefore, RSSIdle        int64
	RSSPerSession, RSSDeltaPS int64
}

// Run drives the calls, then the idle sessions, and writes the report to out as it goes.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	if cfg.URL == "" {
		return nil, errors.New("loadtest: no gateway URL")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	r := &Report{Failures: map[string]int{}}
	d := newDriver(cfg)
	if cfg.Warmup > 0 {
		fmt.Fprintf(out, "warm-up: %d calls\n", cfg.Warmup)
		d.runCalls(ctx, cfg.Warmup, &Report{Failures: map[string]int{}})
		settle(ctx, cfg.ServerPIDs, 60*time.Second)
	}
	if cfg.Calls > 0 {
		cpu0, err := sumCPU(cfg.ServerPIDs)
		if err != nil {
			return nil, err
		}
		mode := fmt.Sprintf("open loop at %.0f set-ups/s", cfg.Rate)
		if cfg.Rate <= 0 {
			mode = fmt.Sprintf("closed loop, %d in flight", cfg.Concurrency)
		}
		fmt.Fprintf(out, "calls: %d, %s\n", cfg.Calls, mode)
		self0, _ := cpuTime(os.Getpid())
		wait0, waitErr := sumWait(cfg.ServerPIDs)
		d.runCalls(ctx, cfg.Calls, r)
		// Work the calls left behind (revocations, timers) belongs to them too.
		settle(ctx, cfg.ServerPIDs, 60*time.Second)
		cpu1, err := sumCPU(cfg.ServerPIDs)
		if err != nil {
			return nil, err
		}
		if self1, err := cpuTime(os.Getpid()); err == nil && r.OK > 0 {
			r.ClientCPUPerSetup = (self1 - self0) / time.Duration(r.OK)
		}
		if wait1, err := sumWait(cfg.ServerPIDs); err == nil && waitErr == nil {
			r.ServerWait = max(wait1-wait0, 0)
		}
		if len(cfg.ServerPIDs) > 0 {
			r.ServerCPU = cpu1 - cpu0
			if r.OK > 0 {
				r.CPUPerSetup = r.ServerCPU / time.Duration(r.OK)
			}
		}
		writeCalls(out, r, len(cfg.ServerPIDs) > 0)
	}
	if cfg.Idle > 0 {
		if err := d.runIdle(ctx, r, out); err != nil {
			return r, err
		}
	}
	if r.Failed > 0 {
		return r, fmt.Errorf("loadtest: %d of %d calls failed", r.Failed, r.Failed+r.OK)
	}
	return r, nil
}

// driver holds what every call shares.
type driver struct {
	cfg  Config
	hc   *http.Client
	p    *payloads
	mu   sync.Mutex
	pins int
}

func newDriver(cfg Config) *driver {
	return &driver{
		cfg: cfg,
		// One HTTP client without connection reuse: each socket is its own TCP connection,
		// as each browser's would be.
		hc: &http.Client{Transport: &http.Transport{
			DialContext:       (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableKeepAlives: true,
		}},
		p:    newPayloads(),
		pins: rand.IntN(900000),
	}
}

// nextPIN hands out PINs in sequence from a random start, so calls in flight never share one.
func (d *driver) nextPIN() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pins = (d.pins + 1) % 900000
	return fmt.Sprintf("%06d", 100000+d.pins)
}

func (d *driver) runCalls(ctx context.Context, n int, r *Report) {
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, n)
		wg        sync.WaitGroup
		sem       = make(chan struct{}, d.cfg.Concurrency)
	)
	one := func(start time.Time) {
		defer wg.Done()
		defer func() { <-sem }()
		cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		lat, err := call(cctx, start, d.cfg.URL, d.hc, d.cfg.Origin, d.nextPIN(), d.p)
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			r.Failed++
			r.Failures[failureKind(err)]++
			return
		}
		r.OK++
		latencies = append(latencies, lat)
	}
	began := time.Now()
	for i := range n {
		start := time.Now()
		if d.cfg.Rate > 0 {
			start = began.Add(time.Duration(float64(i) / d.cfg.Rate * float64(time.Second)))
			if wait := time.Until(start); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{} // at most Concurrency in flight; a full semaphore delays starts
		wg.Add(1)
		go one(start)
	}
	wg.Wait()
	r.Elapsed = time.Since(began)
	r.SetupsPerSec = float64(r.OK) / r.Elapsed.Seconds()
	slices.Sort(latencies)
	r.P50, r.P95, r.P99 = percentile(latencies, 50), percentile(latencies, 95), percentile(latencies, 99)
	if len(latencies) > 0 {
		r.Max = latencies[len(latencies)-1]
	}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// failureKind groups errors for the report: server error codes, mismatches, timeouts.
func failureKind(err error) string {
	var se *serverError
	switch {
	case errors.As(err, &se):
		return "server error " + se.code
	case errors.Is(err, errMismatch):
		return "payload mismatch"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline exceeded"):
		return "timeout"
	}
	msg := err.Error()
	if i := strings.Index(msg, ":"); i > 0 {
		return msg[:i]
	}
	return msg
}

func writeCalls(out io.Writer, r *Report, cpu bool) {
	fmt.Fprintf(out, "  ok %d, failed %d in %v: %.0f set-ups/s\n", r.OK, r.Failed, r.Elapsed.Round(time.Millisecond), r.SetupsPerSec)
	for kind, n := range r.Failures {
		fmt.Fprintf(out, "  failed: %s x%d\n", kind, n)
	}
	fmt.Fprintf(out, "  set-up latency p50 %v, p95 %v, p99 %v, max %v\n", r.P50.Round(10*time.Microsecond), r.P95.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond))
	if cpu {
		fmt.Fprintf(out, "  server CPU %v: %d µs per set-up\n", r.ServerCPU, r.CPUPerSetup.Microseconds())
		if r.ServerWait > 0 {
			fmt.Fprintf(out, "  server threads queued for a CPU %v (%.2f s per CPU second)\n", r.ServerWait.Round(time.Millisecond), r.ServerWait.Seconds()/max(r.ServerCPU.Seconds(), 0.01))
		}
	}
	fmt.Fprintf(out, "  load tool CPU: %d µs per set-up\n", r.ClientCPUPerSetup.Microseconds())
}
