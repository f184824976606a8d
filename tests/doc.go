// Package tests holds the end-to-end tests of dsync: they build the dsync
// binary and the testsink plugin (package testsink) once, then run
// `dsync sync` as a user would, as a child process whose plugins are real
// subprocesses, and inspect what it left behind: the testsink store, the
// checkpoint store, the exit code and the output.
//
// What the tests establish:
//   - copy and CDC correctness: after a copy of random:// into testsink
//     every document is stored once with the exact bytes of
//     random.Options.Doc; after CDC the store equals the state the random
//     source's events produce up to the printed cut-over cursor;
//   - crash safety: the coordinator is killed with SIGKILL at ten seeded
//     random points across copy and CDC, a plugin is killed mid-copy, and
//     reruns of the same command finish with exact data; documents copied
//     again after each kill are counted (testsink counters) and bounded by
//     one page per partition read in parallel;
//   - signals: SIGINT stops, checkpoints and exits 0; a second SIGINT exits
//     at once with 1; reruns finish with exact data;
//   - bad input: one line on stderr starting with "dsync:", exit code 2 for
//     a usage error (bad argument, URL, option, plugin path) and 1 for a
//     failure (plugin that cannot start, state directory unusable or
//     locked, flow options changed, sink rejecting a document); a refused
//     run leaves the checkpoint store unchanged (a sink rejecting a
//     document fails a flow that has started: it stays resumable).
//
// Bad-input runs use --log-file, so that stderr holds only the error line
// (the log, plugin lines included, goes to the file), and --progress none,
// so that stdout holds at most the one-line summary.
//
// The crash test draws its kill times from a seeded generator; it logs the
// seed, and DSYNC_E2E_SEED=<seed> draws the same times again. It writes a
// summary line of its re-copy figures with t.Logf and, when
// DSYNC_E2E_SUMMARY names a file, appends it there for the benchmarks to
// quote.
//
// Every dsync runs in a session of its own, so that the tests can check
// that no plugin outlives it, even after a SIGKILL. The tests need Linux
// (/proc) and fail, rather than skip, without it; they do not run in
// parallel, as several of them depend on timing.
package tests
