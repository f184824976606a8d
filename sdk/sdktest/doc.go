// Package sdktest is the conformance kit for dsync connectors. Every
// connector, built-in or third-party, runs the same suite over the real
// plugin boundary: the kit launches the plugin with go-plugin exactly as
// dsync does (gRPC only, AutoMTLS, dsync's handshake and message limits),
// dispenses the connector and checks the protocol's rules against it. It
// depends on package sdk and on nothing of the coordinator.
//
// # Using the kit
//
// A connector package adds one test file. The test binary doubles as the
// plugin: when the kit re-executes it with a marker in its environment,
// TestMain serves the connector instead of running tests.
//
//	package foo_test
//
//	import (
//		"os"
//		"os/exec"
//		"testing"
//
//		"example.com/dsync-connector-foo/foo"
//		"github.com/dsyncio/dsync/sdk"
//		"github.com/dsyncio/dsync/sdk/sdktest"
//	)
//
//	func TestMain(m *testing.M) {
//		if os.Getenv("FOO_SERVE_PLUGIN") == "1" {
//			sdk.Serve(sdk.Plugin{Connector: foo.New()})
//			os.Exit(0)
//		}
//		os.Exit(m.Run())
//	}
//
//	func TestConformance(t *testing.T) {
//		sdktest.Run(t, sdktest.Harness{
//			Command: func() *exec.Cmd {
//				cmd := exec.Command(os.Args[0])
//				cmd.Env = append(os.Environ(), "FOO_SERVE_PLUGIN=1")
//				return cmd
//			},
//			// A fresh database per case, seeded with 500 documents.
//			URL:            func(t sdktest.TB) string { return startSeededFoo(t, 500) },
//			ExpectedCounts: map[string]int{"app.users": 500},
//			// Changes come from outside the connector: make some.
//			Mutate: func(t sdktest.TB, url string) []sdktest.Change {
//				updateUser(t, url, 7)
//				deleteUser(t, url, 8)
//				return []sdktest.Change{
//					{Namespace: "app.users", ID: int64(7)},
//					{Namespace: "app.users", ID: int64(8), Delete: true},
//				}
//			},
//			// The sink writes where GetByIds reads.
//			ReadBackWithGetByIDs: true,
//			Expect: sdktest.Expect{Source: true, Sink: true, Updates: true, GetByIDs: true},
//		})
//	}
//
// Connectors built into dsync are tested through the dsync binary instead
// (Command runs its hidden plugin-serve command). While developing,
// Harness.Connector serves a connector in-process (go-plugin reattach, no
// mTLS) for quicker iteration under a debugger; a connector must pass with
// Command.
//
// `dsync conformance --plugin PATH URL` runs the same suite against any
// plugin executable through [RunCases], which needs no package testing and
// reports a [CaseResult] per case.
//
// # Cases
//
// Cases have stable names ([CaseNames]); go test runs each as a subtest
// (go test -run 'TestConformance/source/'), and [Harness.Skip] skips one
// with a stated reason. Every case gets a fresh state from [Harness.URL] and
// its own plugin processes; "restart" means SIGKILL the plugin, start a new
// one and Configure it again. Cases a plugin's capabilities do not cover
// are skipped and say why: source cases for a sink-only plugin, update
// cases for a source without the updates capability. [Harness.Expect]
// turns a missing capability into a failure instead.
//
//   - info/get_info: GetInfo after Configure has an id (without the URL's
//     password), a db type, protocol version 1 and a role, and is stable.
//   - info/id_stable_across_restart: the id, db type and capabilities are
//     the same after a restart with the same URL.
//   - info/capabilities_consistent: every claimed capability works
//     (GeneratePlan, StreamUpdates, GetByIds, StreamLSN, WriteData).
//   - info/calls_before_configure: GetInfo, GeneratePlan and WriteData fail
//     with FAILED_PRECONDITION before Configure.
//   - configure/rejects_bad_urls: each of [Harness.BadURLs] fails with
//     INVALID_ARGUMENT and a one-line message, and leaves the plugin
//     unconfigured.
//   - errors/invalid_argument_class: that error arrives as gRPC
//     INVALID_ARGUMENT, not as an internal or retryable error.
//   - errors/unimplemented_class: RPCs outside the plugin's role or
//     capabilities fail with UNIMPLEMENTED.
//   - source/plan_covers_all_docs: the partitions cover every document
//     exactly once, each with an _id, only in requested namespaces, with
//     [Harness.ExpectedCounts] when given; namespace estimates are sane.
//   - source/cursors_durable: a partition resumed from a page cursor after
//     the plugin was killed yields exactly the rest; partitions planned
//     before the restart read the same after it.
//   - source/get_by_ids: request order, nil for missing ids, mixed,
//     repeated and empty requests.
//   - source/updates_in_order_and_resumable: the stream from the plan's
//     update cursor delivers well-formed batches (cursor, source time,
//     namespace) and, with [Harness.Mutate], each id's changes in the order
//     they were made; after AckUpdates and a restart, the stream reopened
//     from a mid-stream cursor repeats exactly what followed that cursor.
//   - sink/write_data_idempotent: writing a batch twice gives the same
//     state; new versions of the same ids replace (not merge) them; with
//     ReadBackWithGetByIDs, reading the namespace back through ListData
//     lists each id once (a sink that appends fails here).
//   - sink/write_data_large_batch: 5 MiB documents in a 10 MiB batch pass
//     the gRPC limits.
//   - sink/write_updates_ordered: insert, partial update, replace, delete
//     and insert again of one id in one call end in the last state, twice
//     in a row; deleting a missing id succeeds; replacing one inserts it.
//   - cancel/unary_calls: calls with a canceled or expired context return
//     within 2 s with CANCELED or DEADLINE_EXCEEDED and leave the plugin
//     usable.
//   - cancel/stream_mid_way: a stream canceled after its first response
//     returns within 2 s, the plugin answers at once, the stream can be
//     reopened right away, and a stream deadline ends it.
//
// A transform plugin ([Harness.Transform]) runs these cases instead, with
// the documents of [TransformHarness.Docs] and changes derived from them,
// through the same client and data type negotiation as dsync:
//
//   - transform/get_transform_info: GetTransformInfo answers before
//     Configure, lists data types of the protocol, produces the type dsync
//     sends (BSON when accepted, else the first accepted one), and is
//     stable.
//   - transform/calls_before_configure: Transform before Configure fails
//     with FAILED_PRECONDITION.
//   - transform/configure_rejects_bad_specs: each of
//     [TransformHarness.BadSpecs] fails with INVALID_ARGUMENT and a
//     one-line message and leaves the plugin unconfigured.
//   - transform/documents_deterministic: the same documents give the same
//     output twice and after a restart; every output document has an _id;
//     no documents give none.
//   - transform/updates_deterministic_and_ordered: the same for inserts,
//     partial updates, replaces and deletes; within an output namespace the
//     changes of each id keep their order. A transform that refuses partial
//     updates with FAILED_PRECONDITION (it needs whole documents) is
//     checked with the other changes.
//   - transform/errors_keep_their_class: malformed documents and ids, an
//     unknown data type and a data type the plugin does not accept fail
//     with INVALID_ARGUMENT (never retryable or internal), and the plugin
//     keeps working.
//
// [Detect] tells a connector from a transform, for tools that check any
// plugin executable.
//
// Sink cases verify end states only when writes can be read back
// ([Harness.ReadBack] or [Harness.ReadBackWithGetByIDs]); otherwise they
// check that writes succeed and say so in the log.
//
// After every case the kit checks that the goroutines started during the
// case have ended (go.uber.org/goleak, retried for a few seconds so that
// gRPC and go-plugin goroutines of closed connections can finish).
// Goroutines a harness starts during a case (a server started in URL, say)
// must be stopped by the cleanups it registers; when the process runs other
// work concurrently (parallel tests), set [Harness.NoLeakCheck].
//
// Plugin stderr goes to the case log ([TB.Logf], [CaseResult.Log]); the
// last lines are repeated in the failure message when a plugin fails to
// start or configure.
package sdktest
