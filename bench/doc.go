// Command bench measures dsync's throughput and memory and writes the
// figures, with the machine they were measured on, as a Markdown report
// (bench/RESULTS.md through `make bench`).
//
//	go run ./bench [-out FILE] [-dsync PATH] [-quick]
//
// -out is the report file ("-" or empty: standard output), -dsync the dsync
// executable that serves the built-in plugins and runs the end-to-end syncs
// (default bin/dsync, built by `make build`), and -quick a smoke mode with
// small datasets that finishes in seconds; its figures are not meaningful.
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
//
// MB are 10^6 bytes of BSON documents; RSS is in MiB. The program needs
// Linux (/proc). It fails, rather than reporting wrong figures, when a run
// copies other than the planned number of documents. A coordinator peak RSS
// that is not flat is reported, not an error: the figures of a busy machine
// vary from run to run.
package main
