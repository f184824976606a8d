package pluginhost

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/dsyncio/dsync/internal/redact"
)

func TestStderrRing(t *testing.T) {
	r := newStderrRing(func(s string) string { return redact.String(s, "hunter22") })
	write := func(s string) {
		if _, err := r.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"@level":"debug","@message":"plugin address","address":"/tmp/x"}` + "\n")
	write(`{"@level":"error","@message":"connect failed","err":"auth hunter22","password":"p4ss","@timestamp":"x"}` + "\n")
	write("panic: boom ")
	write("with hunter22\n\n")
	write("partial")
	want := []string{"error: connect failed err=auth xxxxx password=xxxxx", "panic: boom with xxxxx"}
	if got := r.Lines(); !slices.Equal(got, want) {
		t.Fatalf("Lines() = %q, want %q", got, want)
	}
	for i := range 30 {
		write(fmt.Sprintf("line %d\n", i))
	}
	got := r.Lines()
	if len(got) != stderrLines || got[0] != "line 10" || got[len(got)-1] != "line 29" {
		t.Errorf("after 30 more lines: %q", got)
	}
	write(strings.Repeat("x", 10000) + "\n")
	if l := r.Lines()[stderrLines-1]; len(l) > stderrLineMax+len("…") {
		t.Errorf("long line kept with %d bytes", len(l))
	}
}

func TestHCLogAdapter(t *testing.T) {
	logs := &logBuffer{}
	l := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("plugin", "source.x")
	a := newHCLogAdapter(l, "source.x", func(s string) string { return redact.String(s, "hunter22") })
	a.Error("go-plugin internal error") // demoted to Debug: not shown at Info
	a.Named("stdio").Warn("stdio service not available")
	stderr := a.Named("dsync-connector-x")
	if stderr.GetLevel() != hclog.Info || stderr.IsDebug() || a.GetLevel() != hclog.Off {
		t.Errorf("GetLevel() = %v (plugin), %v (go-plugin)", stderr.GetLevel(), a.GetLevel())
	}
	stderr.Warn("login failed for hunter22", "token", "abc", "err", errors.New("x hunter22"), "n", 3, "plugin", "/bin/x")
	stderr.With("k", "v").Info("with implied")
	out := logs.String()
	if strings.Contains(out, "internal error") || strings.Contains(out, "stdio service") {
		t.Errorf("go-plugin's own messages should be at Debug:\n%s", out)
	}
	for _, s := range []string{`level=WARN msg="login failed for xxxxx" plugin=source.x token=xxxxx err="x xxxxx" n=3 executable=/bin/x`,
		`level=INFO msg="with implied" plugin=source.x k=v`} {
		if !strings.Contains(out, s) {
			t.Errorf("log does not contain %s:\n%s", s, out)
		}
	}
	if strings.Contains(out, "hunter22") || strings.Contains(out, "abc") {
		t.Errorf("log leaks a secret:\n%s", out)
	}
}

func TestPluginErrorMessage(t *testing.T) {
	cause := errors.New("rpc error:\n  code = Unavailable")
	err := &PluginError{Plugin: `source plugin "x" (/p/x)`, Problem: ErrExitedEarly, Detail: "(exit status 3)",
		Stderr: []string{"a", "b"}}
	if got, want := err.Error(), `source plugin "x" (/p/x): exited before handshake (exit status 3); last stderr: a | b`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = &PluginError{Plugin: "p", Problem: ErrHandshake, Detail: "bad line", Err: cause}
	if got, want := err.Error(), "p: handshake failed: bad line: rpc error: code = Unavailable"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrHandshake) || !errors.Is(err, cause) {
		t.Error("errors.Is does not see the problem and the cause")
	}
}

func TestBackoff(t *testing.T) {
	p := &Plugin{h: &Host{opts: Options{RestartBackoff: 100 * time.Millisecond, MaxRestartBackoff: time.Second}}}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 20 {
			if d := p.backoff(n); d < want/2 || d > want {
				t.Errorf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestOptions(t *testing.T) {
	o := (&Options{}).EnsureDefaults()
	if o.Self == "" || o.Logger == nil || o.SocketDir == "" || o.StartTimeout != DefaultStartTimeout ||
		o.ShutdownTimeout != DefaultShutdownTimeout || o.MaxRestarts != DefaultMaxRestarts ||
		o.RestartBackoff != DefaultRestartBackoff || o.MaxRestartBackoff != DefaultMaxRestartBackoff {
		t.Errorf("EnsureDefaults() = %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	for _, bad := range []Options{
		{Builtins: Builtins{Connectors: []string{"Mongo DB"}}},
		{Builtins: Builtins{Connectors: []string{"grpc"}}},
		{Builtins: Builtins{Transforms: []string{"a:b"}}},
	} {
		if err := bad.EnsureDefaults().Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Validate(%+v) = %v", bad.Builtins, err)
		}
	}
	if _, err := New(Options{Builtins: Builtins{Connectors: []string{"Bad Scheme"}}}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("New with bad options = %v", err)
	}
}
