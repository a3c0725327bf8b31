package controller

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// hclogger is an hclog.Logger over slog: raft (and raft-wal) log through it.
// Levels map Trace→Debug-4, Debug, Info, Warn, Error; names join with "."
// into a "logger" attribute; hclog.Fmt values are rendered with their
// format, hclog.Hex/Octal/Binary/Quote like hclog does; an odd trailing
// argument goes under the key "EXTRA_VALUE_AT_END" (hclog's own name) rather
// than panicking.
type hclogger struct {
	l       *slog.Logger
	name    string
	implied []any
	level   *atomic.Int32 // hclog.Level; shared with loggers made by With/Named
}

var _ hclog.Logger = (*hclogger)(nil)

func newHCLogger(l *slog.Logger, name string) *hclogger {
	lv := &atomic.Int32{}
	lv.Store(int32(hclog.Trace))
	return &hclogger{l: l, name: name, level: lv}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (h *hclogger) enabled(level hclog.Level) bool {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if min := hclog.Level(h.level.Load()); min == hclog.Off || level < min {
		return false
	}
	return h.l.Enabled(context.Background(), slogLevel(level))
}

// Log implements hclog.Logger.
func (h *hclogger) Log(level hclog.Level, msg string, args ...any) {
	if !h.enabled(level) {
		return
	}
	attrs := make([]slog.Attr, 0, 1+(len(h.implied)+len(args)+1)/2)
	if h.name != "" {
		attrs = append(attrs, slog.String("logger", h.name))
	}
	attrs = appendAttrs(attrs, h.implied)
	attrs = appendAttrs(attrs, args)
	h.l.LogAttrs(context.Background(), slogLevel(level), msg, attrs...)
}

// appendAttrs turns hclog's key/value list into slog attributes.
func appendAttrs(dst []slog.Attr, kv []any) []slog.Attr {
	for i := 0; i < len(kv); i += 2 {
		if i+1 == len(kv) {
			dst = append(dst, slog.Any("EXTRA_VALUE_AT_END", render(kv[i])))
			break
		}
		key, ok := kv[i].(string)
		if !ok {
			key = fmt.Sprint(kv[i])
		}
		dst = append(dst, slog.Any(key, render(kv[i+1])))
	}
	return dst
}

// render formats hclog's value types as hclog would.
func render(v any) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		f, ok := v[0].(string)
		if !ok {
			return fmt.Sprint(v...)
		}
		return fmt.Sprintf(f, v[1:]...)
	case hclog.Hex:
		return fmt.Sprintf("0x%x", int(v))
	case hclog.Octal:
		return fmt.Sprintf("0%o", int(v))
	case hclog.Binary:
		return fmt.Sprintf("0b%b", int(v))
	case hclog.Quote:
		return fmt.Sprintf("%q", string(v))
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	return v
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hclogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogger) IsError() bool { return h.enabled(hclog.Error) }

// ImpliedArgs implements hclog.Logger.
func (h *hclogger) ImpliedArgs() []any { return append([]any(nil), h.implied...) }

// With implements hclog.Logger.
func (h *hclogger) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any(nil), h.implied...), args...)
	if len(c.implied)%2 == 1 {
		// Keep pairs aligned for later With calls: the odd value stands alone.
		c.implied = append(c.implied[:len(c.implied)-1], "EXTRA_VALUE_AT_END", c.implied[len(c.implied)-1])
	}
	return &c
}

// Name implements hclog.Logger.
func (h *hclogger) Name() string { return h.name }

// Named implements hclog.Logger.
func (h *hclogger) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

// ResetNamed implements hclog.Logger.
func (h *hclogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel implements hclog.Logger: a minimum on top of slog's handler.
func (h *hclogger) SetLevel(level hclog.Level) { h.level.Store(int32(level)) }

// GetLevel implements hclog.Logger.
func (h *hclogger) GetLevel() hclog.Level { return hclog.Level(h.level.Load()) }

// StandardLogger implements hclog.Logger.
func (h *hclogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

// StandardWriter implements hclog.Logger: lines written to it are logged,
// at the level a "[LEVEL]" prefix names when opts.InferLevels is set.
func (h *hclogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	w := stdWriter{h: h, level: hclog.Info}
	if opts != nil {
		w.infer = opts.InferLevels
		if opts.ForceLevel != hclog.NoLevel {
			w.level, w.infer = opts.ForceLevel, false
		}
	}
	return w
}

type stdWriter struct {
	h     *hclogger
	level hclog.Level
	infer bool
}

func (w stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\n"))
	level := w.level
	if w.infer {
		for _, t := range []struct {
			tag string
			l   hclog.Level
		}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error}} {
			if rest, ok := strings.CutPrefix(msg, t.tag); ok {
				level, msg = t.l, strings.TrimSpace(rest)
				break
			}
		}
	}
	w.h.Log(level, msg)
	return len(p), nil
}
