// Package postgres is the PostgreSQL connector of dsync: a source that
// copies tables and streams their changes through logical replication
// (pgoutput), and a sink that writes documents into tables. It is built on
// pgx and pglogrepl and needs PostgreSQL 13 or later (15 is tested).
//
// # URL
//
//	postgres://user:password@host:5432/database?sslmode=require&slot=my_slot
//
// postgres:// and postgresql:// URLs in pgx syntax. The query options below
// are dsync's; the connector removes them before pgx reads the URL, so
// every other query parameter is pgx's (sslmode, connect_timeout,
// pool_max_conns, ...) or a server setting sent at connection start (an
// unknown one is refused by the server and reported as an invalid
// argument). The same options may be given as connector settings.
//
//	slot            replication slot for CDC (default dsync_<hash>, see below)
//	publication     publication the slot decodes (default dsync_<hash>)
//	flow            name of the flow; when set, the default names derive from it
//	no_pk           skip (default) | replica-identity-full
//	lossless        true (default) | false: add the metadata field, see below
//	page_rows       rows per ListData page (default 1000; pages stop at 4 MiB)
//	partition_rows  rows a copy partition aims at (default 100000)
//	max_partitions  copy partitions per table at most (default 256)
//
// Every connection sets DateStyle=ISO, TimeZone=UTC, IntervalStyle=postgres,
// extra_float_digits=1 and bytea_output=hex, which the conversions rely on,
// and turns synchronous_commit on where the server default is off, so that
// a returned write is durable.
//
// Info.ID is "postgresql:<system identifier>/<database>" (the cluster's
// pg_control_system() identifier, or IDENTIFY_SYSTEM over a replication
// connection; host and port when neither is permitted): the same database
// gives the same ID whatever the credentials.
//
// # Namespaces and plans
//
// A namespace is "schema.table"; a part that contains a dot or a quote is
// double-quoted ("my.schema".table). A default plan (no namespaces) covers
// every plain and partitioned table with a primary key outside pg_catalog,
// information_schema and pg_* schemas, except partitions (read through
// their parent) and tables that belong to extensions. Tables without a
// primary key are listed in a warning and left out, unless no_pk is
// replica-identity-full: then plain tables without a primary key are
// copied, each row identified by its content (below), and a plan with
// updates sets their REPLICA IDENTITY to FULL so that their updates and
// deletes carry the old row. Rows with identical content are one document.
//
// # Documents
//
// A row becomes a document: _id first, then the other columns in table
// order, NULL as null. Generated columns are left out (logical replication
// does not send them, and a sink computes its own).
//
//   - _id is the primary key value, or for a composite key an embedded
//     document of the key columns in key order: {"_id": {"region": "eu",
//     "id": 7}}. Key columns appear only in _id.
//   - Without a primary key (no_pk=replica-identity-full), _id is the MD5
//     (32 hex digits) of the row's text, ROW(c1, c2, ...)::text.
//   - A table of exactly the columns (_id primary key, doc jsonb) is a
//     document table (below): its documents are the doc column's.
//
// # Type mapping
//
//	PostgreSQL                        BSON
//	smallint, integer                 int32
//	bigint, oid                       int64
//	real, double precision            double (NaN, ±Infinity, -0 kept)
//	numeric                           Decimal128 with the value's scale (1.50 stays 1.50);
//	                                  NaN and ±Infinity map to their Decimal128 forms;
//	                                  more than 34 digits: rounded (inexact), exponent
//	                                  beyond Decimal128's range: string
//	boolean                           bool
//	text, varchar, char(n), name      string (char(n) keeps its padding)
//	bytea                             binary, subtype 0
//	uuid                              binary, subtype 4
//	timestamp, timestamptz            date (UTC; milliseconds: inexact when there are
//	                                  microseconds); infinity and -infinity: string
//	date                              date at midnight UTC (BC dates too); ±infinity: string
//	json, jsonb                       the JSON value: objects as documents (key order
//	                                  of the text), arrays, strings, bool, null,
//	                                  integers as int32 or int64, other numbers double
//	arrays                            arrays of the element mapping; NULL elements null;
//	                                  multi-dimensional arrays nested; bounds other
//	                                  than 1 are dropped (inexact)
//	enums                             string (the label)
//	domains                           as their base type
//	everything else                   string: the text PostgreSQL prints (interval,
//	                                  time, timetz, inet, cidr, macaddr, money, bit,
//	                                  ranges, geometric types, xml, tsvector,
//	                                  composite types, ...)
//
// # Lossless PostgreSQL to PostgreSQL
//
// The mapping above is what a MongoDB-bound document should look like, but
// some values have no exact BSON form: a timestamp's microseconds, a numeric
// of more than 34 digits, a json value's formatting, a jsonb number written
// 1.50, a JSON null (which would read back as SQL NULL), array bounds. For
// those, and only those, the source adds the value's PostgreSQL text to a
// reserved field, [MetaField]:
//
//	{"_id": 1, "created": ISODate("2024-05-01T10:00:00.123Z"), "price": 1.5,
//	 "_dsync_pg": {"created": "2024-05-01 10:00:00.123456+00"}}
//
// The postgres sink writes a column from MetaField when it is there and
// from the field otherwise; so a copy between two PostgreSQL databases
// reproduces every value exactly (tested column by column, and with EXCEPT
// both ways), while every field still holds the natural BSON value. The
// source decides exactness by converting the natural value back: a value is
// exact when the sink would write the same text PostgreSQL prints. A
// MongoDB sink stores MetaField as an ordinary field; lossless=false leaves
// it out, for flows whose target is not PostgreSQL and that accept the
// approximations above. The trade-off: one extra field on documents that
// need it, instead of values whose type changes from row to row.
//
// Primary key values must be exact, as they are compared across databases
// by verify and carried alone by deletes: key columns of the integer,
// float, boolean, text, uuid and bytea types map naturally, numeric keys
// map to Decimal128 and date keys to dates when exact, and every other key
// type (timestamps among them) maps to its PostgreSQL text, a string.
//
// Values are exact as PostgreSQL prints them: an xml value reads back
// without a plain <?xml version="1.0"?> declaration, as in pg_dump.
//
// # Copy
//
// GeneratePlan estimates each table's rows (planner statistics; a count for
// small tables never analyzed) and splits it into up to max_partitions
// primary-key ranges whose bounds are drawn from a TABLESAMPLE of the keys.
// ListData reads a range in key order with one keyset query per page
// (WHERE (key) > (last key) AND (key) < (upper bound) ORDER BY key LIMIT
// n): the page cursor is the last key, valid after any restart, and no
// transaction stays open between pages. A table without a primary key is
// split into ranges of heap blocks read by ctid (its cursor is the last
// tuple id); rows that move during the copy are repaired by CDC, which
// replays every change since the plan. The copy is not one snapshot, as
// the coordinator's barrier and CDC replay make it consistent.
//
// # Change data capture
//
// A plan with updates first makes sure of the server (wal_level=logical)
// and of the tables' replica identity (DEFAULT or FULL; USING INDEX and
// NOTHING are refused with the ALTER TABLE to run), then creates the
// publication (FOR TABLE the planned tables, publish_via_partition_root)
// and after it the slot (pgoutput), each only when absent, and returns the
// slot's position as the update cursor: it precedes every read of the copy,
// so the stream covers every change made during the copy, and replaying a
// change the copy already saw is harmless because writes are idempotent.
//
// Without slot and publication options, both are named
// dsync_<16 hex digits>, a hash of the flow option or else of Info.ID and
// the planned namespaces; those names are dsync's own: a plan alters its
// own publication to the planned tables, and [DropReplication] is meant
// for them. A slot or publication named by the user is used as it is
// (created when absent, never altered): the publication must publish every
// planned table's inserts, updates and deletes. The update cursor records
// both names and whether they are dsync's; [ReplicationOf] reads them back,
// e.g. to clean up after a flow.
//
// StreamUpdates reads the slot from the cursor (protocol version 1,
// transactions in commit order) and sends batches of changes of one table:
//
//   - INSERT: an insert of the row's document;
//   - UPDATE: a replace with the row's document; when the primary key
//     changed, a delete of the old _id and an insert of the new document;
//   - UPDATE that leaves TOASTed values unchanged (logical replication does
//     not send them): with REPLICA IDENTITY FULL they are taken from the
//     old row; otherwise a partial update sets the columns that were sent
//     (and MetaField.<column> for inexact ones, or unsets it), leaving the
//     others as they are; when the key changed too, the row is read as it
//     is now (its later changes follow in the stream);
//   - DELETE: a delete of the old key's _id;
//   - TRUNCATE of a streamed table: the changes before it are sent, then
//     the stream fails with a fatal error wrapping [ErrTruncate]: a
//     truncate cannot be replayed as document changes.
//
// A batch's cursor is the end of the last transaction it completes, or,
// inside a large transaction (batches hold at most 1000 changes or 4 MiB),
// that transaction's commit position and the number of its changes sent;
// a stream resumed from a cursor skips what it covers, so it repeats
// exactly what followed. SourceTime is the commit time. An idle stream sends
// a heartbeat every second whose cursor is the server's position after the
// transactions it skipped (other tables, other databases), so that
// acknowledging it lets the slot release WAL on a database busy elsewhere.
// A cursor older than the slot's position fails with
// [ErrSlotAdvanced], a missing slot with [ErrNoSlot] (both failed
// preconditions).
//
// AckUpdates moves the slot's confirmed_flush_lsn to the cursor's
// position, never beyond: the live stream reports it as its flush position
// (other status reports leave flush unset, which the server ignores, and
// report as written what was received, so that a server shutdown does not
// wait for the flow), and without a live stream in the process,
// pg_replication_slot_advance moves it.
//
// # Sink
//
// A namespace whose table exists gets one row per document:
//
//   - _id fills the primary key (a composite key from an embedded document
//     with the key columns' names), each field the column of its name, read
//     from MetaField when the document has the column's exact text there;
//   - values convert by the column's type: strings, numbers, booleans,
//     Decimal128 and ObjectIds (hex) through the type's text input, dates
//     as timestamps in UTC (a date at midnight as a date), binary as bytea
//     or, subtype 4, as a uuid, documents and arrays as JSON for json and
//     jsonb columns (other BSON types as Extended JSON wrappers), arrays as
//     array literals;
//   - an insert or replace is INSERT ... ON CONFLICT (key) DO UPDATE: the
//     columns a document lacks are reset to their default (a replace), and
//     generated columns are left to the server (GENERATED ALWAYS identity
//     columns are inserted with OVERRIDING SYSTEM VALUE and never changed);
//   - a table without a primary key is written by content: the rows whose
//     ROW(...)::text has the document's _id as MD5 are replaced;
//   - a field without a column, a value the column cannot take, a violated
//     constraint: fatal errors naming the table and the _id.
//
// A namespace without a table gets a document table, created with its
// schema on first write:
//
//	CREATE TABLE schema.table (_id <type> PRIMARY KEY, doc jsonb NOT NULL)
//
// doc holds the whole document (_id included) as MongoDB Extended JSON that
// keeps every BSON type: relaxed for strings, int32, doubles (integral ones
// as 2.0), booleans, null, documents and arrays, so that doc->>'name' and
// jsonb operators work; {"$numberLong": "n"} for int64, {"$date": ...},
// {"$oid": ...}, {"$numberDecimal": ...} and the like otherwise. The _id
// column has the narrowest type that fits the first ids written: bigint for
// int32 and int64 ids, text for strings, text holding 24 hex digits for
// ObjectIds, uuid for UUIDs, jsonb (the id's Extended JSON) for anything
// else or for a mix. When a later id does not fit, the table's _id column
// becomes jsonb (ALTER TABLE, with a warning); this is only done to tables
// dsync created (their comment says so), for others it is a fatal error.
// jsonb does not keep the order of keys: documents read back from a
// document table have their fields in jsonb's order (use verify's
// --ignore-field-order).
//
// WriteUpdates folds the changes of each id in order (a replace followed by
// partial updates is applied in memory) and applies the results of a call
// in one transaction: deletes, upserts, and partial updates of stored rows,
// as an UPDATE of the columns when every path is a column, or otherwise
// (dotted paths, document tables) by reading the stored document (FOR
// UPDATE), applying MongoDB's $set/$unset semantics and writing it back.
// A partial update of a missing row does nothing; a partial update of a
// column without its exact text removes the stale text from MetaField.
//
// Changes of different ids are applied in parallel and the copy is not one
// snapshot, so constraints that span rows (foreign keys, unique constraints
// other than the primary key) can fail on the way to a consistent end
// state: create them after the copy, or give a role that may skip
// foreign-key triggers the server setting session_replication_role=replica
// in the sink URL.
//
// Writes use one INSERT ... SELECT FROM unnest($1::text[], ...) statement
// per group of documents with the same fields; COPY into a temporary table
// and a merge was measured slower (BenchmarkWriteData).
//
// # Verify
//
// GetByIDs reads documents by _id in request order, with nil for missing
// ids and for ids that cannot be keys of the table; a table that does not
// exist has no documents. Its documents are the ones ListData produces.
//
// # Errors
//
// Lost connections, server shutdowns and restarts, serialization failures,
// deadlocks and lack of resources are retryable; bad options, missing
// tables and privileges are invalid arguments or failed preconditions that
// say what to change; the rest is fatal.
package postgres
