package platform

import (
	"log/slog"
)

// Base is the configuration every service shares. main resolves it once (tokens loaded or
// generated, logger and telemetry built) and hands a copy to each service.
type Base struct {
	// DataDir holds what must persist: tokens, the credential database.
	DataDir string
	// AdminToken guards the operator (admin) RPCs.
	AdminToken string
	// InternalToken guards the RPCs services call on each other.
	InternalToken string
	// Log is the service's logger.
	Log *slog.Logger
	// Telemetry is the service's tracer, meter and propagator.
	Telemetry Telemetry
}

// Logger returns Log, or a logger that discards everything when none is set.
func (b Base) Logger() *slog.Logger {
	if b.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Log
}
