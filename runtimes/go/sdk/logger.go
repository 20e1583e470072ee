package sdk

import (
	"golang.org/x/exp/slog"
)

// LevelCritical is one step above slog's error level, for "critical" records.
const LevelCritical = slog.ErrorLevel + 4

// Logger is a named structured logger: Info("event", "key", value, ...).
//
// It wraps a slog.Logger (golang.org/x/exp/slog, the design that became log/slog in Go 1.21)
// so that task code does not depend on which of the two backs it.
type Logger struct{ s slog.Logger }

// NewLogger wraps a slog logger.
func NewLogger(s slog.Logger) *Logger { return &Logger{s: s} }

// Slog returns the underlying slog logger.
func (l *Logger) Slog() slog.Logger { return l.s }

// With returns a logger that adds these key/value pairs to every record.
func (l *Logger) With(args ...any) *Logger { return &Logger{s: l.s.With(args...)} }

// Debug logs at debug level.
func (l *Logger) Debug(msg string, args ...any) { l.s.LogDepth(1, slog.DebugLevel, msg, args...) }

// Info logs at info level.
func (l *Logger) Info(msg string, args ...any) { l.s.LogDepth(1, slog.InfoLevel, msg, args...) }

// Warn logs at warning level.
func (l *Logger) Warn(msg string, args ...any) { l.s.LogDepth(1, slog.WarnLevel, msg, args...) }

// Error logs at error level.
func (l *Logger) Error(msg string, args ...any) { l.s.LogDepth(1, slog.ErrorLevel, msg, args...) }

// Critical logs at critical level.
func (l *Logger) Critical(msg string, args ...any) { l.s.LogDepth(1, LevelCritical, msg, args...) }
