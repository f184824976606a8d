// Package mongodb is the mongodb:// and mongodb+srv:// connector: a source
// (plan, pages, change data capture, reads by _id) and a sink for MongoDB
// and servers that speak its wire protocol, such as FerretDB. It uses the
// official Go driver (go.mongodb.org/mongo-driver/v2).
//
// # URL
//
//	mongodb://[user:password@]host[:port][,host...]/[authdb][?options]
//	mongodb+srv://[user:password@]host/[authdb][?options]
//
// Every option of the driver is accepted
// (https://www.mongodb.com/docs/manual/reference/connection-string-options/).
// The dsync options below are removed before the URL reaches the driver;
// they may also be given as connector settings of the same names. Names are
// case-insensitive; an unknown option fails Configure with an invalid
// argument, as does an out-of-range value.
//
//	cdc             changestream | oplog; default: change streams where the
//	                server has them, else the oplog
//	partitionDocs   target documents per copy partition (default 1000000)
//	partitionBytes  target bytes per copy partition (default 256 MiB)
//	pageDocs        documents per ListData page (default 1000)
//	pageBytes       bytes per ListData page (default 8 MiB; a larger
//	                document is sent alone)
//	bulkSize        operations per bulk write (default 1000; 16 on FerretDB)
//
// Writes use w:majority unless the URL sets a write concern. Credentials
// never appear in logs, errors or Info: messages show the URL with its
// password masked. Info.ID names the deployment, not the login:
// "<scheme>:[<replica set>/]<sorted seed hosts>" (host:port, lower case;
// the SRV name for mongodb+srv), so a changed password or option keeps the
// same flow.
//
// # Plan
//
// Namespaces are "db.coll", "db" (every collection of db), or none: every
// collection of every database except admin, local and config. system.*
// collections, views and time series are never planned; naming a missing
// collection or a view is an invalid argument. When updates are requested,
// the change position is captured first, before any data is read.
//
// A collection is split into max(count/partitionDocs, size/partitionBytes)
// partitions (estimates from $collStats, at most 10000), at _id split
// points taken from a sorted $sample where the server has it, else from one
// sorted scan of _id (FerretDB).
//
// Partitions are ranges in MongoDB's sort order of _id over every BSON
// type, not only the type of the split points. MongoDB compares values only
// within a type bracket (numbers; strings and symbols; documents; binary;
// ObjectId; booleans; dates; timestamps; ...), and {_id: {$gte: a, $lt: b}}
// never matches an _id of another bracket, so a range that crosses brackets
// is queried as the union of: the part of the low bracket at or above the
// low split point, every whole bracket in between (selected with $type),
// and the part of the high bracket below the high split point. The first
// partition starts before MinKey and the last ends after MaxKey, so every
// _id of every type falls in exactly one partition whatever types the
// split points have. Split points that cannot be comparison operands (null,
// MinKey, MaxKey, undefined, NaN) are moved to the start of their bracket.
//
// # Cursors
//
// Cursors are BSON documents. A partition cursor holds the namespace and
// the range; a ListData cursor holds the last _id returned and the
// partition's upper bound; an update cursor holds the mode and a change
// stream resume token (or cluster time), or the timestamp of the last
// oplog entry handled. All are durable: a new process resumes from them.
//
// ListData returns pages sorted by _id (hinted on the _id index, except on
// FerretDB), of at most pageDocs documents and pageBytes bytes. The server
// cursor of a partition is kept between pages (up to 256 of them, closed
// after 5 idle minutes), so a partition is read with one query; a call
// whose cursor does not match a kept one, or whose server cursor expired,
// reopens a keyset query after the cursor's _id, so a restarted process
// re-reads at most one page.
//
// # Change data capture
//
// One update partition covers every planned collection; collections
// created after the plan are not streamed. Change streams (MongoDB 4.0+
// replica sets and sharded clusters) are used by default. The stream is
// opened on the database when every namespace is in one, else on the
// deployment, with the namespaces matched in its $match; fullDocument is
// updateLookup, so inserts, updates and replaces become full-document
// updates (an update whose document was deleted since is skipped: its
// delete follows) and deletes become deletes. The stream resumes with
// startAfter (resumeAfter before 4.2) from the saved token. Events over
// 16 MiB are split with $changeStreamSplitLargeEvent on servers that have
// it (7.0, 6.0.9+) and reassembled; a cursor never points inside a split
// event. A drop, rename or dropDatabase of a streamed namespace, or an
// invalidate, stops the run with ErrNamespaceChanged. Lost history (error
// 286) is a failed precondition (ErrHistoryLost): resync with --reset.
//
// The oplog mode tails local.oplog.rs (servers without change streams:
// standalone servers with an oplog, FerretDB once local.oplog.rs exists).
// The newest entry's ts is captured at plan time. The tail is a
// tailable-await cursor on ts >= cursor, filtered by namespace (plus
// commands and no-ops), opened with a batch of one so that its first entry
// is the one at the cursor, which is skipped; when that entry is gone, or
// the oldest entry is newer than the cursor, the stream fails with
// ErrHistoryLost ("oplog history lost ... resync with --reset"). Later
// getMores ask for 1000 entries and wait 1 s (10 s on FerretDB, whose
// tailable cursors rescan the oplog while they wait: keep its capped size
// small enough to scan well within that). Inserts and deletes map
// directly; for an update the current document is read by _id, one $in
// query per namespace and batch (so $v:1 modifiers and $v:2 diffs are both
// handled; a document deleted since is skipped), except where the entry
// states the whole document (a replacement, or FerretDB's
// {$v: 1, $set: <whole document>}). applyOps entries are unpacked; drop,
// dropDatabase and renameCollection of streamed namespaces stop the run;
// multi-entry and prepared transactions are not supported (use change
// streams). The cursor is the newest ts handled. An oplog that was empty at
// plan time is read from its start.
//
// Batches hold consecutive changes of one namespace, at most 1000 and about
// 8 MiB, and are sent as soon as the server has no more for now;
// SourceTime is the change's wall time (its timestamp's seconds where the
// server gives no wall time). A stream first sends its starting cursor with
// the time of that position, then, whenever it has caught up and sent
// nothing for 2 seconds, a heartbeat with the current time and the latest
// cursor. AckUpdates does nothing.
//
// # Sink
//
// WriteData inserts with unordered InsertMany calls (at most 1000 documents
// and 16 MiB each); documents whose _id exists are then replaced
// (ReplaceOne with upsert), so writes are idempotent. WriteUpdates reduces
// each _id's updates in the batch to one operation where it can (the last
// insert, replace or delete wins; partial updates are applied to a document
// written earlier in the batch, or merged when their paths do not overlap)
// and runs unordered bulks of ReplaceOne (upsert), DeleteOne and UpdateOne
// ($set/$unset, upsert); what cannot be merged runs in a later bulk, so the
// result equals applying the updates in order. Bulks have at most bulkSize
// operations: FerretDB can hang on larger update bulks. Network errors,
// timeouts, failovers ("not primary") and lost cursors are retryable;
// other write errors are fatal and name the namespace and the _id.
//
// # Indexes
//
// ListIndexes gives a collection's secondary indexes as createIndexes
// specifications (every listIndexes field but v, ns and background; the _id
// index and a clustered index come with the collection and are left out).
// CreateIndexes creates those that are missing, in one createIndexes
// command (one per index on FerretDB); an index that exists with the same
// name and definition is left alone, so a resumed run creates nothing
// twice. An existing index of the same name with another definition
// (ErrIndexConflict), or an index the server refuses, is a failed
// precondition naming the index. FerretDB 1.24 builds single-field and
// compound indexes, unique or sparse, and refuses TTL, partial, collation,
// hidden, text and 2dsphere indexes.
//
// GetByIDs reads with $in (1000 ids per query) and returns documents in
// request order, nil where missing.
//
// # Tests
//
// The tests run against embedded FerretDB servers (package
// internal/testserver/ferret), including the conformance kit with this
// connector as a plugin subprocess. Set DSYNC_TEST_MONGODB_URI to a replica
// set, e.g. mongodb://localhost:27017/?replicaSet=rs0, to also run the
// change-stream suite against real MongoDB (it creates and drops databases
// named dsync_test_*); without it that test is skipped and says so.
package mongodb
