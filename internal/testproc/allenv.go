package testproc

import (
	"os"
	"strconv"
	"testing"

	"github.com/tuturu/tuturu/internal/testnet"
)

// AllEnv is the environment of a `tuturu all` on loopback with fresh data directories: every
// listener on a free 127.0.0.1 port, the services' URLs pointing at each other, TURN on one
// UDP socket. roomAddr is roomsvc's address (tests that break it need to know where).
func AllEnv(t testing.TB) (env []string, roomAddr string) {
	t.Helper()
	room, cred := testnet.FreeAddr(t), testnet.FreeAddr(t)
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"DATA_DIR=" + t.TempDir(),
		"GATEWAY_ADDR=127.0.0.1:0",
		"TURNSVC_ADDR=127.0.0.1:0",
		"ROOMSVC_ADDR=" + room,
		"ROOMSVC_URL=http://" + room,
		"CREDSVC_ADDR=" + cred,
		"CREDSVC_URL=http://" + cred,
		"TURN_LISTEN_HOST=127.0.0.1",
		"TURN_PORT=" + strconv.Itoa(testnet.FreeTURNPort(t)),
		"TURN_UDP_SOCKETS=1",
	}, room
}
