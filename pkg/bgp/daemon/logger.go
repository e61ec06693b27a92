package daemon

import (
	"context"
	"log/slog"
	"os"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// gobgpLogger hands GoBGP's log lines to netloomd's structured logger.
type gobgpLogger struct {
	log   *slog.Logger
	level gobgplog.LogLevel
}

func (l *gobgpLogger) emit(lvl slog.Level, msg string, fields gobgplog.Fields) {
	if !l.log.Enabled(context.Background(), lvl) {
		return
	}
	attrs := make([]any, 0, 2*len(fields)+2)
	attrs = append(attrs, "component", "gobgp")
	for k, v := range fields {
		attrs = append(attrs, k, v)
	}
	l.log.Log(context.Background(), lvl, msg, attrs...)
}

func (l *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	l.emit(slog.LevelError, msg, f)
	panic(msg)
}
func (l *gobgpLogger) Fatal(msg string, f gobgplog.Fields) {
	l.emit(slog.LevelError, msg, f)
	os.Exit(1)
}
func (l *gobgpLogger) Error(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l *gobgpLogger) Warn(msg string, f gobgplog.Fields)  { l.emit(slog.LevelWarn, msg, f) }
func (l *gobgpLogger) Info(msg string, f gobgplog.Fields)  { l.emit(slog.LevelInfo, msg, f) }
func (l *gobgpLogger) Debug(msg string, f gobgplog.Fields) { l.emit(slog.LevelDebug, msg, f) }
func (l *gobgpLogger) SetLevel(level gobgplog.LogLevel)    { l.level = level }
func (l *gobgpLogger) GetLevel() gobgplog.LogLevel         { return gobgplog.DebugLevel }
