// Package random is the random:// source: a deterministic generated dataset
// and change stream, for coordinator tests and benchmarks without a database.
//
// # URL
//
//	random://?namespaces=1&docs=1000&size=1024&seed=1&partitions=4&updates=0&rate=0&page=1000
//
// Every option is optional; the values above are the defaults (see
// [Options]). The same names may be given as connector settings instead.
//
//	namespaces  number of namespaces, random.ns0 ... random.ns<N-1> (1..10000)
//	docs        documents per namespace, _id 0 ... docs-1 (0..10^12)
//	size        bytes per document, at least the fixed fields (0..16 MiB)
//	seed        selects the dataset (unsigned 64-bit)
//	partitions  copy partitions per namespace (1..10^6; at most 10^6 in a plan)
//	updates     change events after the plan (0..10^12)
//	rate        change events per second, decimals allowed; 0 = unlimited
//	page        documents per ListData page, also capped at 4 MiB (1..10^6)
//
// An unknown, repeated, non-numeric or out-of-range option fails Configure
// with sdk.InvalidArgument. Info.ID is [Options.ID], e.g.
// "random:seed=1,namespaces=1,docs=1000,size=1024": it names the initial data
// only, so changing updates, rate, partitions or page keeps the ID, as a
// database keeps its identity while it is written.
//
// # Documents
//
// Document i of namespace n is a pure function of (seed, n, i), see
// [Options.Doc]: _id (int64 i), n (int32), i (int64), v (int64 version, 0
// initially), f (double), ok (bool), at (datetime), tag (string),
// sub {a int64, b string}, arr [3 int32], s (printable string payload). The
// payload makes every document exactly size bytes ([Options.DocSize]).
//
// # Copy
//
// GeneratePlan splits every namespace into contiguous _id ranges
// (min(partitions, docs), one empty partition for an empty namespace) with
// exact counts. Every cursor is durable: ListData cursors are the next index,
// valid in any process configured with the same URL. Namespaces that do not
// exist and duplicates are invalid arguments; no namespaces means all.
//
// # Change events
//
// With updates=N, N events follow the plan; the update partition's cursor,
// captured by GeneratePlan, is position 0. The sequence is a function of
// the options: about 20% inserts of new ids (docs, docs+1, ...), 30% replaces,
// 35% partial updates ($set of top-level and dotted fields, creating a
// sub-document, or removing fields) and 15% deletes of existing ids; an
// event that picks a deleted id inserts it again. No event touches a missing
// document. Each block of 64 consecutive events belongs to one namespace.
// [Options.Events] lists the events and [Options.ExpectedState] gives the
// documents after all of them, for tests; [State.Apply] applies updates with
// MongoDB semantics.
//
// StreamUpdates sends batches of up to 100 consecutive events of one
// namespace (and about 4 MiB); a batch's NextCursor is the position after
// its last event. An empty cursor is position 0. Events of namespaces not in
// the request (none means all) are skipped, and cursors move past them. Without a rate, events are produced as they are read and
// SourceTime is the send time. With a rate, event k is produced at
// epoch+(k+1)/rate and that is its SourceTime; the epoch is the time of
// Configure, moved earlier if the first stream of the process resumes at a
// position not yet produced. After the last event the stream sends a
// heartbeat (no updates, NextCursor unchanged, SourceTime now) at once and
// then every second until ctx is cancelled; it also sends one each second
// while it waits for rate-limited events. It returns ctx.Err() when
// cancelled and never nil. Resuming needs no state: the events before the
// cursor are replayed (ids and types only), which costs memory in proportion
// to the deleted ids.
//
// StreamLSN reports the number of events after its cursor produced so far in
// the requested namespaces, at once and then every second. AckUpdates is a
// no-op.
//
// GetByIDs returns the initial documents, as ListData serves them, whatever
// the change events did: ids outside 0..docs-1 and non-integer ids are
// missing (nil).
package random
