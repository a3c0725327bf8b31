package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// slogWriter turns memberlist's log lines ("[LEVEL] memberlist: message")
// into slog records at the matching level.
type slogWriter struct{ l *slog.Logger }

func newStdLogger(l *slog.Logger) *log.Logger { return log.New(slogWriter{l}, "", 0) }

var levels = []struct {
	tag   []byte
	level slog.Level
}{
	{[]byte("[TRACE] "), slog.LevelDebug - 4},
	{[]byte("[DEBUG] "), slog.LevelDebug},
	{[]byte("[INFO] "), slog.LevelInfo},
	{[]byte("[WARN] "), slog.LevelWarn},
	{[]byte("[ERR] "), slog.LevelError},
	{[]byte("[ERROR] "), slog.LevelError},
}

func (w slogWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimRight(p, "\n")
	level := slog.LevelInfo
	for _, lv := range levels {
		if i := bytes.Index(msg, lv.tag); i >= 0 {
			level, msg = lv.level, msg[i+len(lv.tag):]
			break
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	if w.l.Enabled(context.Background(), level) {
		w.l.Log(context.Background(), level, "gossip: "+string(msg))
	}
	return len(p), nil
}
