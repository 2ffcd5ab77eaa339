package loadtest

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime=1234 and stime=66 ticks.
	stat := "4242 (tuturu (all) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 66 0 0 20 0 12 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil || got != 1300*clockTick {
		t.Fatalf("got %v, %v; want %v", got, err, 1300*clockTick)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS("Name:\ttuturu\nVmRSS:\t  132692 kB\nThreads:\t9\n")
	if err != nil || got != 132692<<10 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := parseVmRSS("Name:\tx\n"); err == nil {
		t.Fatal("missing VmRSS parsed")
	}
}

// TestOwnProcess reads this very process, which must have used some CPU and memory.
func TestOwnProcess(t *testing.T) {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) { // burn a little CPU so the tick counter moves
	}
	cpu, err := cpuTime(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Fatalf("cpu %v, %v", cpu, err)
	}
	rss, err := rss(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("rss %d, %v", rss, err)
	}
}

func TestPercentile(t *testing.T) {
	var l []time.Duration
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i))
	}
	if percentile(l, 50) != 50 || percentile(l, 99) != 99 || percentile(l, 100) != 100 || percentile(nil, 50) != 0 {
		t.Fatal("percentiles off")
	}
}

func TestParseSchedstatWait(t *testing.T) {
	got, err := parseSchedstatWait("123456789 987654321 4242\n")
	if err != nil || got != 987654321*time.Nanosecond {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseSchedstatWait("12"); err == nil {
		t.Fatal("one field parsed")
	}
}

// TestOwnRunWait reads this process's threads; the figure may be zero but must be readable
// where the kernel keeps scheduler statistics.
func TestOwnRunWait(t *testing.T) {
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skip("no schedstat on this kernel")
	}
	if w, err := runWait(os.Getpid()); err != nil || w < 0 {
		t.Fatalf("wait %v, %v", w, err)
	}
}
