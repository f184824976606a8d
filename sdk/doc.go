// Package sdk is everything needed to write a dsync connector or transform
// in Go. It is the only dsync package a plugin imports.
//
// # Write a connector in 5 minutes
//
// A connector is a Go program that serves the dsync plugin protocol. dsync
// starts it as a subprocess, talks to it over gRPC with mutual TLS, and stops
// it when done. Name the executable dsync-connector-<scheme> and put it on
// PATH (or in --plugin-dir): dsync then uses it for every URL with that
// scheme, e.g. `dsync sync myscheme://... null://`.
//
// 1. Implement [Connector]: [Connector.Configure] receives the URL the user
// typed (it never appears in argv or the environment, so secrets stay out of
// process listings) and [Connector.Info] describes the dataset. Report bad
// input with [InvalidArgument] and a message that says what to change:
//
//	type Conn struct{ dir string }
//
//	func (c *Conn) Configure(ctx context.Context, cfg sdk.Config) error {
//		u, err := url.Parse(cfg.URL)
//		if err != nil || u.Path == "" {
//			return sdk.InvalidArgument("expected files:///path/to/dir, got %q", cfg.URL)
//		}
//		c.dir = u.Path
//		return nil
//	}
//
//	func (c *Conn) Info(ctx context.Context) (sdk.Info, error) {
//		return sdk.Info{
//			ID:     "files:" + c.dir, // stable, no secrets
//			DBType: "files",
//			Source: &sdk.SourceCapabilities{DefaultPlan: true, MultiNamespacePlan: true},
//			Sink:   &sdk.SinkCapabilities{},
//		}, nil
//	}
//
// 2. To be a source, implement [Source]: [Source.GeneratePlan] splits the
// namespaces into partitions that together cover every document exactly
// once, and [Source.ListData] returns one page of a partition plus a cursor.
// Cursors must be durable — "the last _id returned" rather than "page 3 of a
// server cursor I hold in memory" — because dsync checkpoints them and
// resumes from them after a crash of either process. Documents are BSON
// ([go.mongodb.org/mongo-driver/v2/bson.Raw]) with an _id field.
//
// 3. To be a sink, implement [Sink]: [Sink.WriteData] inserts or replaces by
// _id and [Sink.WriteUpdates] applies changes in order. Both must be
// idempotent (dsync replays from its last checkpoint after a crash) and
// return only once the data is durable.
//
// 4. Optional abilities are optional interfaces, discovered by type
// assertion: [UpdateStreamer] for change data capture (required for
// `--mode full|cdc`), [UpdateAcker] to release change history once dsync has
// checkpointed it, [IDGetter] for `dsync verify`, [LSNStreamer] for lag in
// events, [Closer] for cleanup. Claiming a capability in [Info] without the
// interface is reported as an error.
//
// 5. Serve it:
//
//	func main() { sdk.Serve(sdk.Plugin{Connector: &Conn{}}) }
//
// 6. Prove it with the conformance suite, from a Go test with package
// sdk/sdktest or from the command line with `dsync conformance`.
//
// # Errors
//
// Every error crosses the process boundary with its class: return
// [Retryable] for transient failures (dsync retries with backoff from its
// last checkpoint), [InvalidArgument] for bad user input, [FailedPrecondition]
// for states the user must resolve; anything else is fatal and stops the run
// with your message. Messages are shown to users: make them one line and
// actionable, and never include credentials.
//
// # Concurrency and cancellation
//
// dsync calls ListData for different partitions concurrently, and writes for
// different ids concurrently; it never writes the same id concurrently. Every
// method receives a context that is cancelled when the user stops the run:
// honour it and return promptly. Log with log/slog: records reach the dsync
// log tagged with the plugin's name, at their level.
//
// # Plugins in other languages
//
// Any language with gRPC can implement proto/dsync/v1/dsync.proto directly.
// The plugin must:
//
//   - refuse to run unless the environment variable DSYNC_PLUGIN equals
//     d5f1c0e7-8a1b-4c52-9e0f-3c7b2a6d9e41 (so it is not run by mistake);
//   - serve gRPC on a unix socket (in $PLUGIN_UNIX_SOCKET_DIR when set) or on
//     127.0.0.1, with ConnectorService or TransformService and the standard
//     grpc.health.v1.Health service reporting SERVING for the service name
//     "plugin";
//   - when PLUGIN_CLIENT_CERT is set (dsync always sets it), serve TLS with a
//     self-signed certificate of its own and require the client certificate
//     given in PLUGIN_CLIENT_CERT (PEM);
//   - print one handshake line on stdout and flush it:
//     `1|1|unix|/path/to/plugin.sock|grpc|<cert>` — core protocol version 1,
//     dsync protocol version 1, network (unix or tcp), address, protocol
//     grpc, and its own certificate as base64 DER without padding;
//   - exit when its parent process dies (on Linux dsync asks the kernel to
//     send it SIGTERM then; elsewhere poll the parent pid), and serve
//     plugin.GRPCController/Shutdown for a clean stop (otherwise it is killed
//     after 2 seconds).
//
// A plugin that cannot do mutual TLS is accepted only when the user names it
// in --plugin-insecure. A plugin may speak DATA_TYPE_JSON (relaxed Extended
// JSON) only; dsync converts from and to BSON. The guide, with
// the handshake step by step, is docs/plugins.md in the dsync repository;
// examples/python-connector and examples/node-transform implement it, and
// `dsync conformance --plugin PATH URL` checks the result.
package sdk
