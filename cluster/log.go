package cluster

import (
	"bytes"
	"context"
	"log/slog"
)

// logWriter turns memberlist's log lines ("[LEVEL] memberlist: text") into
// slog records: DEBUG and INFO at debug level, WARN and ERR at warn level
// (memberlist logs ERR for things as ordinary as a send racing shutdown,
// so nothing it says is raised to error here). memberlist's *log.Logger
// calls Write once per line, serially.
type logWriter struct {
	log *slog.Logger
}

var levelTags = []struct {
	tag   []byte
	level slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelDebug},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelWarn},
	{[]byte("[ERROR]"), slog.LevelWarn},
}

func (w logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelDebug
	for _, t := range levelTags {
		if rest, ok := bytes.CutPrefix(line, t.tag); ok {
			level, line = t.level, bytes.TrimSpace(rest)
			break
		}
	}
	ctx := context.Background()
	if !w.log.Enabled(ctx, level) {
		return len(p), nil
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.log.Log(ctx, level, string(line), "component", "memberlist")
	return len(p), nil
}
