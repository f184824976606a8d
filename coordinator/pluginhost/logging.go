package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/dsyncio/dsync/internal/redact"
)

// hclogAdapter is the hclog.Logger go-plugin writes to. It forwards into the
// host's slog logger with a "plugin" attribute, redacting every message and
// value. go-plugin's own messages are demoted to Debug (the host logs what
// matters itself, with more context); lines the plugin process writes to
// stderr reach it through Named and keep their level.
type hclogAdapter struct {
	l       *slog.Logger
	name    string // the plugin's log name, e.g. "source.mongodb"
	scrub   func(string) string
	plugin  bool // output of the plugin process
	implied []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogAdapter(l *slog.Logger, name string, scrub func(string) string) *hclogAdapter {
	return &hclogAdapter{l: l, name: name, scrub: scrub}
}

const levelTrace = slog.LevelDebug - 4

func toSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug, hclog.NoLevel:
		return slog.LevelDebug
	case hclog.Info:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func (a *hclogAdapter) level(level hclog.Level) slog.Level {
	l := toSlog(level)
	if !a.plugin && l > slog.LevelDebug {
		l = slog.LevelDebug
	}
	return l
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	l := a.level(level)
	ctx := context.Background()
	if !a.l.Enabled(ctx, l) {
		return
	}
	all := append(slices.Clone(a.implied), args...)
	attrs := make([]slog.Attr, 0, len(all)/2+1)
	for i := 0; i < len(all); i += 2 {
		key, ok := all[i].(string)
		if !ok {
			key = fmt.Sprint(all[i])
		}
		if i+1 == len(all) {
			attrs = append(attrs, slog.String("EXTRA_VALUE_AT_END", a.scrub(key)))
			break
		}
		switch {
		case key == "timestamp" && a.plugin:
			continue // go-plugin adds the plugin's own timestamp; slog has one
		case key == "plugin":
			key = "executable" // go-plugin's; "plugin" is the host's attribute
		}
		attrs = append(attrs, a.attr(key, all[i+1]))
	}
	a.l.LogAttrs(ctx, l, a.scrub(msg), attrs...)
}

func (a *hclogAdapter) attr(key string, v any) slog.Attr {
	if redact.IsSecretKey(key) {
		return slog.String(key, redact.Mask)
	}
	switch v := v.(type) {
	case nil:
		return slog.Any(key, nil)
	case string:
		return slog.String(key, a.scrub(v))
	case error:
		return slog.String(key, a.scrub(v.Error()))
	case bool:
		return slog.Bool(key, v)
	case int:
		return slog.Int(key, v)
	case int64:
		return slog.Int64(key, v)
	case uint64:
		return slog.Uint64(key, v)
	case float64:
		return slog.Float64(key, v)
	}
	return slog.String(key, a.scrub(fmt.Sprint(v)))
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(level hclog.Level) bool {
	return a.l.Enabled(context.Background(), a.level(level))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return slices.Clone(a.implied) }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(slices.Clone(a.implied), args...)
	return &c
}

// Name returns the plugin's log name (the slog "plugin" attribute).
func (a *hclogAdapter) Name() string { return a.name }

// Named returns the logger for the plugin process's stderr: go-plugin names
// it after the executable (the "plugin" attribute already says which plugin
// it is). The one other name go-plugin uses, "stdio", is its stdio
// client's, whose messages stay at Debug.
func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	c.plugin = name != "stdio"
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger { return a.Named(name) }

// SetLevel is a no-op: the slog handler decides.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

// GetLevel returns the lowest level the slog handler accepts, so that
// go-plugin skips parsing plugin lines nobody will see.
func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return writerFunc(func(p []byte) (int, error) {
		a.Log(level, strings.TrimRight(string(p), "\n"))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Limits of the stderr ring.
const (
	stderrLines   = 20
	stderrLineMax = 300
)

// stderrRing keeps the last lines a plugin wrote to stderr, redacted, for
// error messages. It receives the raw stream from go-plugin (a line, then
// "\n"). hclog JSON lines are shown as "level: message k=v"; their trace
// and debug lines are dropped, since they are go-plugin chatter.
type stderrRing struct {
	scrub func(string) string
	raw   lineWriter // splits the raw stream; calls push

	mu    sync.Mutex
	lines []string
}

func newStderrRing(scrub func(string) string) *stderrRing {
	r := &stderrRing{scrub: scrub}
	r.raw.fn = r.push
	return r
}

func (r *stderrRing) Write(p []byte) (int, error) { return r.raw.Write(p) }

// push keeps a raw stderr line.
func (r *stderrRing) push(line string) {
	if s, ok := displayJSONLine(line); ok {
		line = s
	}
	r.pushLine(r.scrub(line))
}

// pushLine keeps an already scrubbed line.
func (r *stderrRing) pushLine(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	if len(line) > stderrLineMax {
		line = strings.ToValidUTF8(line[:stderrLineMax], "") + "…"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) == stderrLines {
		r.lines = append(r.lines[:0], r.lines[1:]...)
	}
	r.lines = append(r.lines, line)
}

// Lines returns the kept lines, oldest first.
func (r *stderrRing) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// lineWriter calls fn for each complete line written to it (lines longer
// than 4 KiB are cut).
type lineWriter struct {
	fn func(string)

	mu      sync.Mutex
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if room := 4096 - len(w.partial); room > 0 {
				w.partial = append(w.partial, p[:min(room, len(p))]...)
			}
			break
		}
		if room := 4096 - len(w.partial); room > 0 {
			w.partial = append(w.partial, p[:min(room, i)]...)
		}
		w.fn(strings.TrimRight(string(w.partial), "\r"))
		w.partial = w.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

// displayJSONLine renders an hclog JSON line; ok is false for other lines,
// and the result is empty for trace and debug lines.
func displayJSONLine(line string) (string, bool) {
	if !strings.HasPrefix(line, "{") {
		return "", false
	}
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return "", false
	}
	msg, ok := m["@message"].(string)
	if !ok {
		return "", false
	}
	level, _ := m["@level"].(string)
	switch level {
	case "trace", "debug":
		return "", true
	}
	var b strings.Builder
	if level != "" {
		b.WriteString(level)
		b.WriteString(": ")
	}
	b.WriteString(msg)
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") && k != "timestamp" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		if redact.IsSecretKey(k) {
			v = redact.Mask
		}
		fmt.Fprintf(&b, " %s=%v", k, v)
	}
	return b.String(), true
}
