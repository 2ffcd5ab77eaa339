package e2e

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/loadtest"
)

// TestLoadTool runs the load tool against the stack: a few verified call set-ups at a fixed
// rate and a few idle sessions, measured on this process. It proves the tool works, not how
// fast the stack is (that is a separate run against `tuturu all`, docs/loadtest.md).
func TestLoadTool(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) {
		c.Limits.JoinsPerMinute, c.Limits.JoinBurst = 1e6, 1e5
	}})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := loadtest.Run(ctx, loadtest.Config{
		URL:         wsURL(s),
		Calls:       40,
		Warmup:      5,
		Rate:        100,
		Concurrency: 16,
		ServerPIDs:  []int{os.Getpid()},
		Idle:        20,
		IdleHold:    100 * time.Millisecond,
	}, &out)
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 40 || r.Failed != 0 || r.P99 <= 0 || r.IdleOpen != 20 || r.RSSIdle <= 0 {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(out.String(), "µs per set-up") {
		t.Fatalf("no CPU figure in the report")
	}
}

// TestLoadToolReportsFailures: calls refused by the gateway are failures, not successes.
func TestLoadToolReportsFailures(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) {
		c.Limits.JoinsPerMinute, c.Limits.JoinBurst = 1, 4
	}})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := loadtest.Run(ctx, loadtest.Config{URL: wsURL(s), Calls: 5, Concurrency: 1}, &out)
	if err == nil || r.OK != 2 || r.Failed != 3 || r.Failures["server error JOIN_RATE_LIMITED"] != 3 {
		t.Fatalf("err %v, report %+v\n%s", err, r, out.String())
	}
}
