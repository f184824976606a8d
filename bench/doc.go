// Command bench measures dsync's throughput and memory and writes the
// figures, with the machine they were measured on, as a Markdown report
// (bench/RESULTS.md through `make bench`).
//
//	go run ./bench [-out FILE] [-dsync PATH] [-quick] [-testsink PATH] [-no-db]
//
// -out is the report file ("-" or empty: standard output), -dsync the dsync
// executable that serves the built-in plugins and runs the end-to-end syncs
// (default bin/dsync, built by `make build`), and -quick a smoke mode with
// small datasets that finishes in seconds; its figures are not meaningful.
// -testsink is the dsync-connector-testsink plugin of figure 4 (built from
// ./tests/testsink/cmd/dsync-connector-testsink when not given), and -no-db
// skips figures 5 and 6, which start database servers.
//
// # Figures
//
//  1. ListData throughput of the random:// source, 1 KiB documents, default
//     page size: one loop reads one partition page by page, in process
//     (random.New) and through the real plugin boundary (the dsync
//     executable serving `plugin serve connector random`, launched by
//     pluginhost with AutoMTLS, read through Plugin.Connector). Each is
//     the median of several alternating runs; the gRPC/in-process ratio
//     comes from the same run of the program.
//  2. End-to-end `dsync sync random://... null:// --mode initial` at two
//     dataset sizes ten times apart, the sizes taking turns, each run with
//     a fresh state directory: wall time, docs/s, MB/s and the peak RSS
//     (VmHWM, sampled from /proc every 50 ms) of the coordinator and of
//     each plugin process, with the ratio of the end-to-end docs/s to the
//     in-process ListData figure. The coordinator's peak must stay within
//     20% as the dataset grows tenfold: its memory is bounded by
//     --max-inflight, not by the dataset.
//  3. The same random:// → null:// sync with and without one no-op
//     transform plugin (`--transform rename:nosuchfield=other`, a rename of
//     a field the documents lack), alternating: the docs/s ratio.
//  4. `dsync verify` of random:// against a testsink copy of it, at two
//     sizes ten times apart (100k and 1M documents of 1 KiB: 2M would not
//     fit the time of `make bench`): docs/s and peak RSS of the verify
//     coordinator and plugins (flat within 20%), against the copy's docs/s
//     of the same data.
//  5. MongoDB → MongoDB between two embedded FerretDB servers: `dsync sync
//     --mode initial` against a direct driver copy (find → unordered
//     InsertMany, 4 range cursors and 1 cursor), the ratio to the faster.
//  6. PostgreSQL → PostgreSQL between two throwaway clusters: `dsync sync
//     --mode initial` of one table against `pg_dump --data-only | psql`;
//     then `dsync sync --mode cdc` while a writer makes 1000 changes/s, one
//     per transaction: apply rate and source-commit → sink-visible latency
//     (p50, p99) from a poller on the sink, then the drain rate of a burst.
//     Without PostgreSQL binaries the figure says so instead.
//
// MB are 10^6 bytes of BSON documents; RSS is in MiB. The program needs
// Linux (/proc). It fails, rather than reporting wrong figures, when a run
// copies other than the planned number of documents. A coordinator peak RSS
// that is not flat is reported, not an error: the figures of a busy machine
// vary from run to run.
package main
