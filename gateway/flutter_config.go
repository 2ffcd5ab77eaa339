package gateway

import (
	"fmt"

	"github.com/tuturu/tuturu/internal/platform"
)

// FlutterConfig configures what serves flutter-webrtc apps: the lobby behind the Flutter
// dialect on /ws and GET /api/turn. Zero values mean "on, with the default limits", so a
// Config built in code behaves like a bound one.
type FlutterConfig struct {
	// LobbyOff refuses `new` (error LOBBY_DISABLED, close 1008). FLUTTER_LOBBY=false.
	LobbyOff bool
	// APITurnOff makes /api/turn answer 404. API_TURN=false.
	APITurnOff bool
	// APITurnPerMinute and APITurnBurst shape a token bucket of /api/turn requests per client
	// address.
	APITurnPerMinute float64
	APITurnBurst     int
	// APITurnCORSOrigins, when set, replaces ALLOWED_ORIGINS for /api/turn: the Origins (besides
	// the request's own host) whose pages may call it. "*" allows any.
	APITurnCORSOrigins []string
}

// An app asks /api/turn once per call set-up (the demo: once per connect); a few a minute
// from one address is generous, while bulk harvesting of relay credentials is not.
const (
	defaultAPITurnPerMinute = 10
	defaultAPITurnBurst     = 5
)

// Bind registers the Flutter variables.
func (c *FlutterConfig) Bind(v *platform.Vars) {
	v.Func("flutter-lobby", "FLUTTER_LOBBY", "true", "serve the Flutter dialect's lobby on /ws (flutter-webrtc apps); false refuses `new`", func(s string) error {
		on, err := platform.ParseBool(s)
		c.LobbyOff = !on
		return err
	})
	v.Func("api-turn", "API_TURN", "true", "serve GET /api/turn (TURN credentials for flutter-webrtc apps, not tied to a room member)", func(s string) error {
		on, err := platform.ParseBool(s)
		c.APITurnOff = !on
		return err
	})
	v.Func("api-turn-per-minute", "API_TURN_PER_MINUTE", fmt.Sprint(defaultAPITurnPerMinute), "sustained /api/turn requests per minute per client address", parsePositiveFloat(&c.APITurnPerMinute))
	v.Int(&c.APITurnBurst, "api-turn-burst", "API_TURN_BURST", defaultAPITurnBurst, "/api/turn requests one address may make at once before the per-minute rate applies")
	v.Func("api-turn-cors-origins", "API_TURN_CORS_ORIGINS", "", "comma-separated Origins allowed to call /api/turn from a web page besides the site's own host; * allows any; empty = ALLOWED_ORIGINS", func(s string) error {
		origins := platform.SplitList(s)
		for _, o := range origins {
			if err := validOrigin(o); err != nil {
				return err
			}
		}
		c.APITurnCORSOrigins = origins
		return nil
	})
}

func (c FlutterConfig) withDefaults() FlutterConfig {
	if c.APITurnPerMinute <= 0 {
		c.APITurnPerMinute = defaultAPITurnPerMinute
	}
	if c.APITurnBurst <= 0 {
		c.APITurnBurst = defaultAPITurnBurst
	}
	return c
}
