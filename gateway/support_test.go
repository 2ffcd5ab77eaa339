package gateway

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// The web client derives the same code from the trace id it sent (web/test: the same vectors).
func TestSupportCodeOf(t *testing.T) {
	for _, c := range []struct{ traceID, want string }{
		{"4bf92f3577b34da6a3ce929d0e0e4736", "BHWLYFDR"},
		{"00000000000000000000000000000001", "22222222"},
		{"ffffffffff0000000000000000000000", "ZZZZZZZZ"},
	} {
		id, err := trace.TraceIDFromHex(c.traceID)
		if err != nil {
			t.Fatal(err)
		}
		if got := supportCodeOf(id); got != c.want {
			t.Errorf("supportCodeOf(%s) = %s, want %s", c.traceID, got, c.want)
		}
	}
}

func TestRandomSupportCodeAlphabet(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		c := randomSupportCode()
		if len(c) != supportCodeLen || strings.Trim(c, supportAlphabet) != "" {
			t.Fatalf("random code %q is not %d symbols of %s", c, supportCodeLen, supportAlphabet)
		}
		seen[c] = true
	}
	if len(seen) < 99 {
		t.Fatalf("100 random codes have %d distinct values", len(seen))
	}
	if strings.ContainsAny(supportAlphabet, "01IO") || len(supportAlphabet) != 32 {
		t.Fatalf("alphabet %q must have 32 symbols and no 0, 1, I, O", supportAlphabet)
	}
}
