package gateway

import (
	"flag"
	"strings"
	"testing"

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
