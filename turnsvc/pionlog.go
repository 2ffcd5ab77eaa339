package turnsvc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs routes pion's logs through the service's slog handler. pion logs at Info for
// routine per-packet events ("No Permission or Channel exists ...", "permission denied ..."),
// which would flood the default level, so its Info becomes Debug here; its Warn and Error stay.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	l := f.log.With("component", "pion/"+scope)
	ctx := context.Background()
	// Levels are resolved once: pion calls Debugf on every relayed packet, and a disabled level
	// must then cost a branch, not a Sprintf.
	return &pionLogger{
		log:   l,
		trace: l.Enabled(ctx, slog.LevelDebug-4),
		debug: l.Enabled(ctx, slog.LevelDebug),
		warn:  l.Enabled(ctx, slog.LevelWarn),
		err:   l.Enabled(ctx, slog.LevelError),
	}
}

type pionLogger struct {
	log                     *slog.Logger
	trace, debug, warn, err bool
}

func (p *pionLogger) emit(on bool, level slog.Level, msg string) {
	if on {
		p.log.Log(context.Background(), level, msg)
	}
}

func (p *pionLogger) Trace(msg string) { p.emit(p.trace, slog.LevelDebug-4, msg) }
func (p *pionLogger) Tracef(format string, args ...any) {
	if p.trace {
		p.emit(true, slog.LevelDebug-4, fmt.Sprintf(format, args...))
	}
}
func (p *pionLogger) Debug(msg string) { p.emit(p.debug, slog.LevelDebug, msg) }
func (p *pionLogger) Debugf(format string, args ...any) {
	if p.debug {
		p.emit(true, slog.LevelDebug, fmt.Sprintf(format, args...))
	}
}
func (p *pionLogger) Info(msg string) { p.Debug(msg) }
func (p *pionLogger) Infof(format string, args ...any) {
	p.Debugf(format, args...)
}
func (p *pionLogger) Warn(msg string) { p.emit(p.warn, slog.LevelWarn, msg) }
func (p *pionLogger) Warnf(format string, args ...any) {
	if p.warn {
		p.emit(true, slog.LevelWarn, fmt.Sprintf(format, args...))
	}
}
func (p *pionLogger) Error(msg string) { p.emit(p.err, slog.LevelError, msg) }
func (p *pionLogger) Errorf(format string, args ...any) {
	if p.err {
		p.emit(true, slog.LevelError, fmt.Sprintf(format, args...))
	}
}
