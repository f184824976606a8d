// Package verify compares two datasets document by document and proves,
// or disproves, that they are equal: the library behind `dsync verify A B`.
// It talks to both sides only through the interfaces of package spi, so
// any connector that can be a source can be verified against any other.
//
// Run it with [Run] (or [New] and [Verifier.Run]); render the [Result]
// with [WriteSummary] and [WriteReport].
//
// # Algorithm
//
// Plan. Both sides are asked for copy partitions only (spi.PlanRequest
// with InitialSync and never Updates: a verification must not create
// change-stream resources such as replication slots). A's namespaces that
// [coordinator.NamespaceMap] selects are paired with their image in B; a
// namespace that only one side's plan has gets a pair too, the other side
// being empty. Each side's count of each namespace (NamespaceMetadata) is
// taken, the sample drawn, and the run stored in one atomic batch before
// any data is read.
//
// Scan. Options.Parallel workers read the partitions of both sides from
// their stored cursors. A page of A is compared with B's documents of the
// same ids, fetched with GetByIds in batches of at most BatchDocs ids and
// BatchBytes of A's documents: never by replaying A's cursors on B, whose
// order and ranges may differ. A page of B is only recorded. Every id a
// scan returns is recorded under its own key (side, partition, page,
// position), so duplicates are kept apart, with the page's mismatches and
// the partition's next cursor in one atomic batch.
//
// Reconcile. Per namespace, the recorded ids of both scans are merged in
// key order (they are sorted by the store; nothing is held in memory):
//   - an id returned more than once by one side's scan is a coverage
//     problem (duplicate): that side's partitions overlap;
//   - an id only A's scan returned was looked up in B by the scan: if B
//     had it, B holds a document its own scan did not return (coverage
//     problem, unscanned);
//   - an id only B's scan returned is looked up in A: absent, it is an
//     extra document of B; present, it is compared, and A holds a
//     document its own scan did not return (unscanned).
//
// Then each side's number of distinct ids is compared with its count of
// the namespace, taken before and again after the scan.
//
// The reverse pass is thus a scan of B by B's own plan, plus lookups in A
// of only the ids A's scan did not return. It is never skipped: only exact
// counts could prove it unnecessary, and the protocol's counts are
// estimates.
//
// # Coverage proof
//
// A copy and a verification that read with the same partitions share
// their blind spots: a document no partition of A returns is neither
// copied nor compared. Equality is therefore proven only when each scan
// provably returned every document of its side exactly once:
//
//  1. No duplicates: each side's scan returned each id once (checked
//     exactly, from the recorded ids). Without this, a duplicate could
//     make up for a missed document in the counts below.
//  2. Lookups agree with scans: every id found by a lookup on a side is
//     also among that side's scanned ids. This catches a blind spot for
//     every document the other side has.
//  3. Counts: each side's distinct scanned ids are at least its own count
//     of the namespace, before or after the scan. This catches what 2
//     cannot: a document that only one side holds and whose own scan
//     skipped it (a document never copied, that the copy's and the
//     verify's plans both miss).
//
// With 1-3 and no mismatch, the scans returned exactly the documents each
// side holds, every document of A was found equal in B, and every
// document of B was scanned and found in A: the sides are equal. Step 3
// takes the counts as exact; a connector whose NamespaceMetadata is an
// estimate makes it fail falsely, and Options.EstimatedCounts turns its
// failures into warnings (losing the proof that step 3 gives). Data that
// changes during the scans can also move counts; see Live data.
//
// A sampled run (Options.SamplePercent) reads a share of each side's
// partitions: it compares the documents of A's sample with B and looks up
// in A the documents of B's sample that A's sample did not return (extra
// documents, or documents compared there), but it cannot prove coverage
// and does not check it; the summary says so.
//
// # Comparison
//
// Two documents are equal when their canonical encodings are equal
// (identical bytes are equal without encoding). The encoding keeps every
// BSON type: int32 1, int64 1, double 1.0 and string "1" all differ,
// unless NumericEquivalence reduces the numeric types to their exact value
// (double 0.1 still differs from decimal 0.1, which is exactly one tenth).
// Field order is part of the encoding at every depth unless
// IgnoreFieldOrder sorts fields by name; array order always is.
// ExcludeFields are removed first. Documents are compared by their
// encodings rather than by hashes of them, so no collision can hide a
// difference; records keep a SHA-256 prefix of each side's encoding to
// tell, on a recheck, whether a document changed. Only for a mismatch is
// the field-level diff computed: dotted paths, each missing on A, missing
// on B, with another value, with another type, or a (sub)document whose
// fields are in another order.
//
// # Resumption and memory
//
// Every step writes its progress with its results: a page's mismatches
// and recorded ids with the partition's cursor, a namespace's
// reconciliation with the namespace's record, a recheck or a repair with
// the records it settles. After a stop (context cancelled) or a crash,
// running the same verification continues from there: pages read but not
// checkpointed are read again and give the same keys. The run id is the
// hash of the datasets' ids, the mapping and the options that change what
// counts as a difference ([RunID]); a finished run is started over by the
// next one, a stopped one resumed unless Options.Reset.
//
// Memory depends on the options, not on the dataset: each worker holds one
// page of A and one batch of B, reconciliation and rechecks hold one batch
// of ids, and results, recorded ids and mismatches live in the store and
// are streamed from it (Result.Mismatches). The plans' partition lists are
// held while the run lasts.
//
// # Live data
//
// With Options.Recheck, once the scans are done, every open mismatch is
// fetched again from both sides after the settle time and compared again,
// up to RecheckAttempts times while the set of differences keeps
// changing: a document that was being changed while it was compared is
// reported only if it still differs. An unscanned document found equal on
// both sides at a recheck is taken as one created during the scan. Count
// checks (step 3 of the proof) are not rechecked, and a scan of a changing
// namespace sees neither the documents deleted before it reached them nor
// those inserted behind it: when both happen it can return fewer documents
// than either count. Verify a changing dataset with EstimatedCounts, or
// after the changes have stopped.
//
// # Repair
//
// With Options.Repair, B must be a sink. After the rechecks, every open
// difference is fixed on B as A holds it now: A's document is written
// (WriteData: insert or replace by id), or B's deleted (WriteUpdates with
// a delete) where A has none. The ids are then fetched again from both
// sides and compared; a repaired id that still differs stays open.
// Documents are written as A holds them, without transforms. Coverage
// problems are not repairable.
//
// # Key schema
//
// Under checkpoint's verify/<run>/ namespace (keys are ASCII, values JSON):
//
//	meta                            run options, phase, sample seed, counts
//	pair/<%06d pair>                namespaces of A and B, counts, reconciliation
//	pa/<%08d index>, pb/<%08d>      a partition of A's (B's) plan and its progress
//	seen/<pair>/<id>/<side><part><page><pos>
//	                                an id a scan returned (empty value)
//	diff/<pair>/<id>                a difference of data: missing, extra, different
//	cov/<pair>/<id>/<kind>          a per-id coverage problem
//
// <id> is the hex of the _id's BSON type and value bytes, so int32 1 and
// int64 1 are different ids, and one id's keys are adjacent.
package verify
