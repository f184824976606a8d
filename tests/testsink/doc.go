// Package testsink is a dsync connector over a local Pebble store, built so
// that end-to-end and crash tests can prove that a run lost nothing and
// duplicated nothing.
//
// # Connector
//
// The plugin executable is dsync-connector-testsink (see [BuildBinary]); the
// dsync host finds it on PATH for URLs of the form
//
//	testsink:///absolute/path/to/dir?fail=fatal-id:42&delay=5ms
//
// Options ([Options], parsed by [ParseURL]):
//   - fail=fatal-id:<id> rejects every write carrying a document whose _id
//     stringifies to <id> (see [Options.FatalIDs]) with a fatal error naming
//     the namespace and the id; the whole call is rejected and nothing of it
//     is stored. May be repeated.
//   - delay=<duration> sleeps that long at the start of every write call.
//   - partition-docs=<n> sizes the copy partitions of the source side
//     (default 10000 documents).
//   - page-docs=<n> bounds ListData pages (default 1000 documents; pages
//     are also cut at 4 MiB).
//
// sdk.Config.Settings are ignored. Invalid URLs fail Configure with an
// sdk.KindInvalidArgument error.
//
// As a sink ([sdk.Sink]):
//   - WriteData stores the exact BSON bytes of each document under
//     (namespace, _id), replacing any previous version.
//   - WriteUpdates applies updates in order: insert and replace store the
//     full document, delete removes it (a missing id is fine), partial sets
//     the fields of Update.Doc (dotted paths reach into embedded documents;
//     a numeric component indexes an existing array) and removes the fields
//     of Update.Unset. A partial update of a missing document creates it
//     from the _id and the set fields. Where a dotted path runs into a value
//     that is not a document, the value is replaced by a document, so that
//     replaying a stream from an earlier position converges.
//   - Each call is one Pebble batch committed with pebble.Sync: it returns
//     only once durable, and it is atomic, so a call that fails or is
//     interrupted leaves nothing behind. Calls are idempotent.
//   - The same batch adds to counters ([Counters]): documents received by
//     WriteData and updates received by WriteUpdates, in total and per
//     namespace, duplicates included. Re-copied documents of a namespace are
//     therefore NamespaceCounters.DocsWritten minus the number of documents
//     stored (when nothing was deleted).
//
// Documents are keyed by namespace and the _id's BSON type and value bytes:
// int32 1, int64 1, double 1.0 and string "1" are four different ids. Keys
// iterate in byte order, which is the order the source side reads.
//
// As a source ([sdk.Source], [sdk.IDGetter]) over the same store, so that
// dsync verify and the conformance kit can read it back: the default plan
// covers every namespace holding documents; a namespace is cut into
// partitions of about partition-docs documents by key range; cursors are
// durable keyset cursors (the last key returned); GetByIDs returns documents
// in request order with nil for missing ids. There is no change stream: a
// plan request for updates fails with sdk.KindUnimplemented.
//
// Info.ID is "testsink:" followed by the cleaned absolute directory, so the
// same directory is the same dataset.
//
// # Inspection
//
// Pebble admits one process at a time: the plugin opens the store in
// Configure and closes it in Close. Once the plugin has exited (even after a
// SIGKILL), [Open] opens the store read-only for assertions: [Store.Docs],
// [Store.Each], [Store.Get], [Store.Namespaces], [Store.Counters]. Map keys
// of Docs are [IDString] values.
package testsink
