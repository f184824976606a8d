// Package checkpoint is dsync's durable state: the Pebble-backed store that
// lets a sync resume exactly where it stopped after any crash.
//
// # Contract
//
// One state directory holds every flow. [Open] takes an exclusive lock on it
// (a flock on <dir>/dsync.lock recording the owner's pid and command) before
// opening Pebble, so a second dsync, or a second [Store] in one process, gets
// a *[LockedError] naming the owner instead of sharing the directory. The
// lock file holds one JSON line: {"pid":N,"command":"...","since":"<time>"}. Pebble
// allows one process per directory even for reading, so the `dsync state`
// commands take the same lock and cannot run beside a sync. The kernel drops
// the lock when its owner dies, even by SIGKILL; a stale lock file is
// harmless.
//
// Every write is one atomic Pebble batch committed with fsync: when a method
// returns nil the change survives a crash of the process or the machine, and
// after a crash either all of a batch is visible or none of it.
// Positions only move forward: a checkpoint whose sequence number is not
// greater than the stored one fails with [ErrStale] and writes nothing, a done
// partition stays done ([ErrPartitionDone]), and phases go copy, cdc, done.
// A flow leaves the copy phase only once every partition is done
// ([ErrCopyIncomplete]), which is the barrier between copy and CDC writes.
//
// The store is safe for concurrent use. Writes are checked against the
// stored state one at a time, in the order they commit, and writes from
// concurrent goroutines share fsyncs; [Store.Checkpoint] puts several
// partitions in one batch and one fsync. A read may observe a write whose
// call has not returned yet, never one that will not commit.
//
// # Key schema (version 1)
//
// Keys are ASCII. Flow and verify-run ids are restricted to [A-Za-z0-9._-], so
// no id's key range contains another's. Indexes are zero-padded decimals so
// key order is index order.
//
//	dsync/schema                  schema version, decimal ASCII ("1")
//	flow/<id>/meta                flow: source, sink, mode, options, dsync and
//	                              protocol versions, creation time, phase
//	flow/<id>/part/<%08d index>   copy partition: plan (namespace, sink
//	                              namespace, definition, estimate) and progress
//	                              (cursor, seq, done, docs, bytes)
//	flow/<id>/state               last update time and the number of
//	                              partitions not done (rewritten by every
//	                              checkpoint, so kept apart from meta)
//	flow/<id>/upd/<%04d index>    update partition: namespaces, stream cursor,
//	                              seq, events, source time
//	verify/<run>/<key>            verify progress: opaque values under keys
//	                              chosen by the verifier
//
// A flow's keys are exactly the range [flow/<id>/, flow/<id>0), which
// [Store.ResetFlow] deletes with one range deletion; likewise
// [verify/<run>/, verify/<run>0) for [Store.ResetVerify].
//
// Values other than the schema version and verify values are JSON objects
// with snake_case field names; byte strings are base64, times RFC 3339 in
// UTC, and zero or empty fields are omitted (an empty cursor reads back as
// nil). Readers ignore unknown fields, so adding an optional field needs no
// new schema version; renaming, retyping or moving data does. Such changes
// bump [SchemaVersion] and add a migration that rewrites the store in one
// synced batch per version step; a read-write [Open] runs the migrations, a
// store written by a newer schema is refused with [ErrSchemaTooNew].
package checkpoint
