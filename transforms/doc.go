// Package transforms documents the built-in transforms of dsync, one
// package each, served by the dsync binary like third-party transform
// plugins (`dsync plugin serve transform <name>`) and selected with
// `dsync sync --transform NAME:SPEC`, repeatable and applied in order:
//
//	rename     rename or move fields           (package rename)
//	drop       remove fields                   (package project)
//	keep       keep only some fields and _id   (package project)
//	filter     pass documents matching a query (package filter)
//	mask       hash or redact field values     (package mask)
//	set        add constant or computed fields (package set)
//	namespace  rename namespaces               (package namespace)
//
// What they share:
//
//   - A spec is parsed once by Configure; a bad one is an InvalidArgument
//     error of one line that starts with the transform's name and says how
//     to write it (dsync then exits with status 2).
//   - Field paths are dotted ("address.city") and reach into embedded
//     documents; the projections (drop, keep), mask and filter also reach
//     into the documents of arrays, as MongoDB does.
//   - _id cannot be renamed, dropped, masked or set: sinks replace and
//     delete documents by _id.
//   - Output depends only on the input and the spec (set's $now aside), so a
//     document copied again after a restart comes out the same.
//   - Copied documents and the documents of inserts and replaces go through
//     the same code. Deletes pass by _id. Partial updates ($set fields and
//     unset paths) are translated so that applying them to the transformed
//     document gives the transformed new document; where that needs the
//     full document, the run fails with a FailedPrecondition error that
//     names the document and says why, rather than let the sink drift. Each
//     package's tests prove this agreement on generated documents and
//     change events (see internal/transformtest.CheckCDC).
//   - Errors met while transforming name the transform, the namespace and
//     the _id, and stop the run.
//
// The tests of this package run every built-in through the real plugin
// boundary, a `dsync plugin serve transform` subprocess behind the plugin
// host, and compare its output with the in-process transform.
package transforms
