package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/coordinator/pluginhost"
	"github.com/dsyncio/dsync/internal/spi"
)

// parseSize reads a byte size such as 4MiB, 64MB, 512k or 1048576.
func parseSize(flag, s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
		{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1},
	}
	lower := strings.ToLower(t)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			mult = u.mult
			lower = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, usageErrorf("--%s %q: want a positive size such as 4MiB, 64MB or 1048576", flag, s)
	}
	return n * mult, nil
}

// logSetup builds the logger from --log-level and --log-file. The returned
// closer closes the log file. Without a log file, the log goes to stderr
// through the returned logWriter, which the progress display may redirect.
func logSetup(c *cli.Context, stderr io.Writer) (*slog.Logger, *logWriter, func(), error) {
	var level slog.Level
	switch strings.ToLower(c.String("log-level")) {
	case "debug":
		level = slog.LevelDebug
	case "info", "":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, nil, nil, usageErrorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	lw := &logWriter{w: stderr}
	var w io.Writer = lw
	closer := func() {}
	if path := c.String("log-file"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, nil, nil, usageErrorf("--log-file: %v", err)
		}
		w, closer, lw = f, func() { f.Close() }, nil
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), lw, closer, nil
}

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"DSYNC_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-file", Usage: "append the log to this file instead of stderr", EnvVars: []string{"DSYNC_LOG_FILE"}},
	}
}

func pluginFlags() []cli.Flag {
	return []cli.Flag{
		pluginDirFlag(),
		&cli.StringSliceFlag{Name: "plugin-insecure", Usage: "allow the named plugin to run without mutual TLS (repeatable; a warning is logged)",
			EnvVars: []string{"DSYNC_PLUGIN_INSECURE"}},
	}
}

// newHost starts a plugin host with the built-ins of this binary.
func newHost(c *cli.Context, logger *slog.Logger) (*pluginhost.Host, error) {
	return pluginhost.New(pluginhost.Options{
		Builtins: pluginhost.Builtins{
			Connectors: builtin.ConnectorSchemes(),
			Transforms: builtin.TransformNames(),
		},
		PluginDir: c.String("plugin-dir"),
		Insecure:  c.StringSlice("plugin-insecure"),
		Logger:    logger,
	})
}

// startErr classifies a plugin start error: bad user input is a usage
// error (exit 2), anything else a failure.
func startErr(err error) error {
	if spi.KindOf(err) == spi.KindInvalidArgument || isResolveError(err) {
		return &exitError{code: ExitUsage, err: err}
	}
	return failure(err)
}

func isResolveError(err error) bool {
	for _, s := range []error{pluginhost.ErrUnknownScheme, pluginhost.ErrUnknownTransform, pluginhost.ErrMalformedURL,
		pluginhost.ErrMalformedTransform, pluginhost.ErrPluginNotFound, pluginhost.ErrNotExecutable} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// startConnector starts a connector plugin and checks it can play role.
func startConnector(ctx context.Context, h *pluginhost.Host, role pluginhost.Role, arg, explicit string, settings map[string]string) (*pluginhost.Plugin, error) {
	p, err := h.Start(ctx, pluginhost.Spec{Role: role, Arg: arg, ExplicitPath: explicit, Settings: settings})
	if err != nil {
		return nil, startErr(err)
	}
	info := p.Info()
	switch {
	case role == pluginhost.RoleSource && info.Source == nil:
		p.Close()
		return nil, usageErrorf("%s cannot be a source (it is a sink-only connector)", p)
	case role == pluginhost.RoleSink && info.Sink == nil:
		p.Close()
		return nil, usageErrorf("%s cannot be a sink (it is a source-only connector)", p)
	}
	return p, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// logWriter lets the log move above the progress bars while they are drawn
// on the same terminal, and back afterwards.
type logWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	w := l.w
	l.mu.Unlock()
	return w.Write(b)
}

func (l *logWriter) set(w io.Writer) {
	l.mu.Lock()
	l.w = w
	l.mu.Unlock()
}
