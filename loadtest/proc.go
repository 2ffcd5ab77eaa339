package loadtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is 100 on every
// Linux architecture Go supports (the kernel fixes it for user space).
const clockTick = 10 * time.Millisecond

// cpuTime returns the user plus system CPU time a process has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads fields 14 (utime) and 15 (stime) of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may hold spaces, so fields are counted after its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("server CPU: /proc stat without a command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("server CPU: /proc stat has %d fields", len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("server CPU: utime %q stime %q are not numbers", f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// rss returns a process's resident set size in bytes (VmRSS of /proc/<pid>/status).
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("server memory: %w", err)
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("server memory: odd VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("server memory: odd VmRSS line %q", line)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("server memory: no VmRSS line")
}

// runWait returns how long a process's threads have been runnable but waiting for a CPU, in
// total (field 2 of /proc/<pid>/task/<tid>/schedstat, nanoseconds; /proc/<pid>/schedstat is
// the main thread alone). Threads that have exited are not counted. On a shared machine it
// tells how much of a run the server spent queued behind other processes.
func runWait(pid int) (time.Duration, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("server run-queue wait: no schedstat for %d", pid)
	}
	var total time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		d, err := parseSchedstatWait(string(b))
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// parseSchedstatWait reads "<run ns> <wait ns> <timeslices>".
func parseSchedstatWait(s string) (time.Duration, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0, fmt.Errorf("server run-queue wait: odd schedstat %q", s)
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("server run-queue wait: odd schedstat %q", s)
	}
	return time.Duration(ns), nil
}

// sumCPU, sumRSS and sumWait add up every server process.
func sumCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		d, err := cpuTime(pid)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

func sumWait(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		d, err := runWait(pid)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

func sumRSS(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		n, err := rss(pid)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// settle waits, at most max, until the server processes are idle (under 2% of a core over
// half a second), so that work a run left queued is counted with the run.
func settle(ctx context.Context, pids []int, max time.Duration) {
	if len(pids) == 0 {
		return
	}
	const window = 500 * time.Millisecond
	deadline := time.Now().Add(max)
	last, err := sumCPU(pids)
	for err == nil && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(window):
		}
		now, e := sumCPU(pids)
		if e != nil || now-last <= window/50 {
			return
		}
		last, err = now, e
	}
}
