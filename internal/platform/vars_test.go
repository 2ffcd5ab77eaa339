package platform

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func newTestVars(env map[string]string) (*Vars, *flag.FlagSet) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return NewVars(fs, func(k string) string { return env[k] }), fs
}

func TestVarsPrecedence(t *testing.T) {
	v, fs := newTestVars(map[string]string{"A_PORT": "1000", "B_PORT": "2000"})
	var a, b, c int
	v.Port(&a, "a-port", "A_PORT", 1, "")
	v.Port(&b, "b-port", "B_PORT", 2, "")
	v.Port(&c, "c-port", "C_PORT", 3, "")
	if err := fs.Parse([]string{"-b-port", "2500"}); err != nil {
		t.Fatal(err)
	}
	if err := v.Resolve(); err != nil {
		t.Fatal(err)
	}
	if a != 1000 || b != 2500 || c != 3 {
		t.Fatalf("got a=%d b=%d c=%d, want env 1000, flag 2500, default 3", a, b, c)
	}
}

func TestVarsErrorsNameTheVariable(t *testing.T) {
	v, fs := newTestVars(map[string]string{
		"TURN_MIN_PORT": "abc",
		"FORCE_RELAY":   "maybe",
		"TURN_TTL":      "4 hours",
		"COUNT":         "x",
	})
	var port, count int
	var relay bool
	var ttl time.Duration
	v.Port(&port, "turn-min-port", "TURN_MIN_PORT", 49152, "")
	v.Bool(&relay, "force-relay", "FORCE_RELAY", false, "")
	v.Duration(&ttl, "turn-ttl", "TURN_TTL", time.Hour, "")
	v.Int(&count, "count", "COUNT", 1, "")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := v.Resolve()
	if err == nil {
		t.Fatal("Resolve accepted bad values")
	}
	for _, want := range []string{
		`TURN_MIN_PORT (-turn-min-port): "abc" is not a port number`,
		`FORCE_RELAY (-force-relay): "maybe" is not a boolean`,
		`TURN_TTL (-turn-ttl): "4 hours" is not a duration`,
		`COUNT (-count): "x" is not a whole number`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestVarsPortRange(t *testing.T) {
	for _, bad := range []string{"0", "65536", "-1"} {
		v, fs := newTestVars(map[string]string{"P": bad})
		var p int
		v.Port(&p, "p", "P", 1, "")
		_ = fs.Parse(nil)
		if err := v.Resolve(); err == nil {
			t.Errorf("port %s accepted", bad)
		}
	}
}

func TestParseBoolIsStrict(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "TRUE": true, "1": true, "yes": true, "on": true,
		"false": false, "0": false, "no": false, "off": false, " False ": false} {
		got, err := ParseBool(in)
		if err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "maybe", "2", "truee"} {
		if _, err := ParseBool(bad); err == nil {
			t.Errorf("ParseBool(%q) accepted", bad)
		}
	}
}

// Two services in one process may bind the same variable; both must receive it.
func TestVarsSharedName(t *testing.T) {
	v, fs := newTestVars(map[string]string{"EXTERNAL_IP": "203.0.113.7"})
	var a, b string
	v.String(&a, "external-ip", "EXTERNAL_IP", "127.0.0.1", "")
	v.String(&b, "external-ip", "EXTERNAL_IP", "127.0.0.1", "")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Resolve(); err != nil {
		t.Fatal(err)
	}
	if a != "203.0.113.7" || b != a {
		t.Fatalf("got %q and %q, want both 203.0.113.7", a, b)
	}
}

func TestVarsListAndFail(t *testing.T) {
	v, fs := newTestVars(map[string]string{"STUN_SERVERS": " stun:a:3478, ,stun:b:3478 "})
	var list []string
	v.List(&list, "stun-servers", "STUN_SERVERS", "", "")
	_ = fs.Parse(nil)
	if err := v.Resolve(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(list, "|") != "stun:a:3478|stun:b:3478" {
		t.Fatalf("list = %q", list)
	}
	v.Fail("stun-servers", errBadForTest)
	if err := v.Resolve(); err == nil || !strings.Contains(err.Error(), "STUN_SERVERS (-stun-servers): bad") {
		t.Fatalf("Fail not reported with the variable name: %v", err)
	}
}

type testErr string

func (e testErr) Error() string { return string(e) }

const errBadForTest = testErr("bad")
