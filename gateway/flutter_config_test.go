package gateway

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

func bindFlutter(t *testing.T, env map[string]string) (FlutterConfig, error) {
	t.Helper()
	var c Config
	v := platform.NewVars(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) string { return env[k] })
	c.Bind(v)
	err := v.Resolve()
	return c.withDefaults().Flutter, err
}

func TestFlutterConfig(t *testing.T) {
	c, err := bindFlutter(t, nil)
	if err != nil || c.LobbyOff || c.APITurnOff || c.APITurnPerMinute != 10 || c.APITurnBurst != 5 || len(c.APITurnCORSOrigins) != 0 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = bindFlutter(t, map[string]string{"FLUTTER_LOBBY": "false", "API_TURN": "off", "API_TURN_PER_MINUTE": "2.5", "API_TURN_BURST": "1", "API_TURN_CORS_ORIGINS": "*, https://app.example"})
	if err != nil || !c.LobbyOff || !c.APITurnOff || c.APITurnPerMinute != 2.5 || c.APITurnBurst != 1 || len(c.APITurnCORSOrigins) != 2 {
		t.Fatalf("set: %+v %v", c, err)
	}
	for env, val := range map[string]string{"FLUTTER_LOBBY": "nope", "API_TURN": "2", "API_TURN_PER_MINUTE": "0", "API_TURN_CORS_ORIGINS": "app.example/path"} {
		if _, err := bindFlutter(t, map[string]string{env: val}); err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%s: error %v does not name the variable", env, val, err)
		}
	}
	// A Config built in code (zero value) has the lobby and /api/turn on, with the default limits.
	if z := (FlutterConfig{}).withDefaults(); z.LobbyOff || z.APITurnOff || z.APITurnPerMinute != 10 {
		t.Fatalf("zero value: %+v", z)
	}
}

// A person who takes minutes to allow the camera (the original client joins after the
// prompt) must not be timed out; WS_MAX_SOCKETS is 0 (from the open-file limit) unless set.
func TestJoinTimeoutAndSocketDefaults(t *testing.T) {
	bind := func(env map[string]string) (Config, error) {
		var c Config
		v := platform.NewVars(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) string { return env[k] })
		c.Bind(v)
		err := v.Resolve()
		return c.withDefaults(), err
	}
	c, err := bind(nil)
	if err != nil || c.JoinTimeout != 10*time.Minute || c.Limits.MaxSockets != 0 || c.SocketQueue != 1024 {
		t.Fatalf("defaults: join timeout %v, max sockets %d, socket queue %d, %v", c.JoinTimeout, c.Limits.MaxSockets, c.SocketQueue, err)
	}
	if c, err = bind(map[string]string{"WS_MAX_SOCKETS": "500"}); err != nil || c.Limits.MaxSockets != 500 {
		t.Fatalf("WS_MAX_SOCKETS=500: %d %v", c.Limits.MaxSockets, err)
	}
	if _, err = bind(map[string]string{"WS_MAX_SOCKETS": "-1"}); err == nil || !strings.Contains(err.Error(), "WS_MAX_SOCKETS") {
		t.Fatalf("WS_MAX_SOCKETS=-1 accepted: %v", err)
	}
}
