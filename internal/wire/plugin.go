package wire

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/dsyncio/dsync/internal/spi"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
)

// MaxMessageSize bounds gRPC messages in both directions: a document may be
// 16 MiB and a page holds several.
const MaxMessageSize = 64 << 20

// Plugin names in the go-plugin plugin set.
const (
	ConnectorPluginName = "connector"
	TransformPluginName = "transform"
)

// Handshake is the go-plugin handshake shared by dsync and every plugin. The
// magic cookie only guards against running a plugin by hand; it is not a
// security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  spi.ProtocolVersion,
	MagicCookieKey:   "DSYNC_PLUGIN",
	MagicCookieValue: "d5f1c0e7-8a1b-4c52-9e0f-3c7b2a6d9e41",
}

// ConnectorPlugin is the go-plugin glue for ConnectorService. Impl is set on
// the plugin side only.
type ConnectorPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl spi.Connector
}

// GRPCServer registers the connector service.
func (p *ConnectorPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	dsyncv1.RegisterConnectorServiceServer(s, NewConnectorServer(p.Impl))
	return nil
}

// GRPCClient returns a *ConnectorClient.
func (p *ConnectorPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewConnectorClient(c), nil
}

// TransformPlugin is the go-plugin glue for TransformService.
type TransformPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl spi.Transform
}

// GRPCServer registers the transform service.
func (p *TransformPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	dsyncv1.RegisterTransformServiceServer(s, NewTransformServer(p.Impl))
	return nil
}

// GRPCClient returns a *TransformClient.
func (p *TransformPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewTransformClient(c), nil
}

// VersionedPlugins is the plugin set the host offers: protocol version 1
// with a connector and a transform.
func VersionedPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		spi.ProtocolVersion: {
			ConnectorPluginName: &ConnectorPlugin{},
			TransformPluginName: &TransformPlugin{},
		},
	}
}

// ServerOptions are the gRPC options of a plugin server.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize)}
}

// DialOptions are the gRPC options of the host side.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageSize),
		grpc.MaxCallSendMsgSize(MaxMessageSize),
	)}
}

// ServeOptions configures Serve. Exactly one of Connector and Transform is
// set.
type ServeOptions struct {
	Connector spi.Connector
	Transform spi.Transform
	// Test, when set, serves in-process for tests (go-plugin reattach); the
	// parent watchdog is off then.
	Test *plugin.ServeTestConfig
}

// Serve serves a plugin until the host shuts it down, then calls Close on
// the implementation if it has one. Logs go to stderr as JSON lines in the
// format go-plugin hosts parse, so levels survive. The plugin exits on its
// own when its host process dies, even by SIGKILL.
func Serve(opts ServeOptions) {
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Trace})
	slog.SetDefault(slog.New(NewPluginLogHandler(os.Stderr)))
	set := plugin.PluginSet{}
	var impl any
	if opts.Connector != nil {
		set[ConnectorPluginName] = &ConnectorPlugin{Impl: opts.Connector}
		impl = opts.Connector
	}
	if opts.Transform != nil {
		set[TransformPluginName] = &TransformPlugin{Impl: opts.Transform}
		impl = opts.Transform
	}
	if opts.Test == nil {
		go watchParent(os.Getppid(), time.Second/2)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{spi.ProtocolVersion: set},
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(o, ServerOptions()...)...)
		},
		Logger: logger,
		Test:   opts.Test,
	})
	if c, ok := impl.(spi.Closer); ok {
		if err := c.Close(); err != nil {
			slog.Error("close plugin", "err", err)
		}
	}
}

// watchParent exits the process when its parent changes (the host died and
// the plugin was re-parented). The host also sets a parent-death signal;
// this covers platforms and races where that does not fire.
func watchParent(ppid int, every time.Duration) {
	if ppid <= 1 {
		return
	}
	for range time.Tick(every) {
		if os.Getppid() != ppid {
			slog.Error("host process is gone; exiting")
			os.Exit(3)
		}
	}
}

// NewPluginLogHandler returns a slog handler writing hclog-style JSON lines
// ("@level", "@message", "@timestamp"), which a go-plugin host re-logs at the
// same level.
func NewPluginLogHandler(w io.Writer) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				return slog.String("@level", levelName(a.Value.Any()))
			case slog.MessageKey:
				return slog.Attr{Key: "@message", Value: a.Value}
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			}
			return a
		},
	})
}

func levelName(v any) string {
	l, ok := v.(slog.Level)
	if !ok {
		return "info"
	}
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
