package loadtest

import (
	"fmt"
	"io"
	"os"
	"time"
)

// WriteFigures writes the report as name=value lines, one figure a line, for scripts
// (loadtest/compare.sh): durations in microseconds, sizes in bytes, rates per second.
func WriteFigures(w io.Writer, r *Report) error {
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }
	figures := []struct{ name, value string }{
		{"ok", fmt.Sprint(r.OK)},
		{"failed", fmt.Sprint(r.Failed)},
		{"elapsed_us", us(r.Elapsed)},
		{"setups_per_s", fmt.Sprintf("%.1f", r.SetupsPerSec)},
		{"p50_us", us(r.P50)},
		{"p95_us", us(r.P95)},
		{"p99_us", us(r.P99)},
		{"max_us", us(r.Max)},
		{"server_cpu_us", us(r.ServerCPU)},
		{"cpu_us_per_setup", us(r.CPUPerSetup)},
		{"server_wait_us", us(r.ServerWait)},
		{"client_cpu_us_per_setup", us(r.ClientCPUPerSetup)},
		{"idle_open", fmt.Sprint(r.IdleOpen)},
		{"rss_before", fmt.Sprint(r.RSSBefore)},
		{"rss_idle", fmt.Sprint(r.RSSIdle)},
		{"rss_per_session", fmt.Sprint(r.RSSPerSession)},
		{"rss_delta_per_session", fmt.Sprint(r.RSSDeltaPS)},
	}
	for _, f := range figures {
		if _, err := fmt.Fprintf(w, "%s=%s\n", f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}

// WriteFiguresFile writes the figures to a new file at path.
func WriteFiguresFile(path string, r *Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	err = WriteFigures(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	return nil
}
