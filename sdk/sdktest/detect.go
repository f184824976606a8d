package sdktest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"

	"github.com/dsyncio/dsync/internal/wire"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
)

// PluginKind is the service a plugin serves.
type PluginKind int

// Plugin kinds.
const (
	// KindConnector serves dsync.v1.ConnectorService.
	KindConnector PluginKind = iota + 1
	// KindTransform serves dsync.v1.TransformService.
	KindTransform
)

// String returns "connector" or "transform".
func (k PluginKind) String() string {
	switch k {
	case KindConnector:
		return "connector"
	case KindTransform:
		return "transform"
	}
	return fmt.Sprintf("PluginKind(%d)", int(k))
}

// Detect starts the plugin of h.Command once, exactly as the suite does
// (AutoMTLS unless h.Insecure), and reports whether it is a connector or a
// transform, so that a tool can set Harness.Transform before running the
// suite. It asks the transform service for its data types, which works
// before Configure, and otherwise the connector service for its info, which
// fails with FAILED_PRECONDITION before Configure; the plugin is stopped
// before Detect returns. The error says why the plugin could not be started
// or serves neither service, with its last stderr lines.
func Detect(ctx context.Context, h Harness) (PluginKind, error) {
	if h.Command == nil {
		return 0, errors.New("sdktest: Detect needs Harness.Command")
	}
	cmd := h.Command()
	if cmd == nil {
		return 0, errors.New("sdktest: Harness.Command returned a nil command")
	}
	dir, err := os.MkdirTemp("", "dsync-sdktest-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+dir)
	tail := &tailWriter{max: shownLines}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.VersionedPlugins(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  wire.DialOptions(),
		StartTimeout:     startTimeout,
		Cmd:              cmd,
		AutoMTLS:         !h.Insecure,
		Stderr:           tail,
		SyncStdout:       tail,
		SyncStderr:       tail,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: tail, Level: hclog.Error, DisableTime: true}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		return 0, fmt.Errorf("start the plugin: %w%s", err, tail.note())
	}
	gc, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		return 0, fmt.Errorf("the plugin does not speak gRPC (%T)", rpc)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	_, terr := dsyncv1.NewTransformServiceClient(gc.Conn).GetTransformInfo(ctx, &dsyncv1.GetTransformInfoRequest{})
	if terr == nil {
		return KindTransform, nil
	}
	_, cerr := dsyncv1.NewConnectorServiceClient(gc.Conn).GetInfo(ctx, &dsyncv1.GetInfoRequest{})
	if cerr == nil || wire.Code(wire.FromStatus(cerr)) != codes.Unimplemented {
		return KindConnector, nil
	}
	return 0, fmt.Errorf("the plugin serves neither %s (GetTransformInfo: %s) nor dsync.v1.ConnectorService (GetInfo: %s)%s",
		transformService, describeErr(wire.FromStatus(terr)), describeErr(wire.FromStatus(cerr)), tail.note())
}

// tailWriter keeps the last lines written to it.
type tailWriter struct {
	mu      sync.Mutex
	max     int
	partial []byte
	lines   []string
}

func (w *tailWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := strings.IndexByte(string(w.partial), '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(w.partial[:i]), "\r"); line != "" {
			w.lines = append(w.lines, line)
			if len(w.lines) > w.max {
				w.lines = w.lines[1:]
			}
		}
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}

func (w *tailWriter) note() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lines) == 0 {
		return ""
	}
	return "\nlast plugin stderr lines:\n  " + strings.Join(w.lines, "\n  ")
}
