// Package filter implements the built-in transform filter, which passes
// only the documents that match a MongoDB-style query.
//
// # Spec
//
//	filter:QUERY
//
// QUERY is a query document in relaxed MongoDB Extended JSON, e.g.
//
//	filter:{"status": "active", "age": {"$gte": 18}}
//	filter:{"$or": [{"plan": {"$in": ["pro", "team"]}}, {"trial": {"$exists": false}}]}
//	filter:{"createdAt": {"$gte": {"$date": "2024-01-01T00:00:00Z"}}}
//
// Supported: implicit equality ({"f": v}, a document value matching
// exactly, field order included), $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin,
// $exists, $not (of operators), and $and, $or, $nor at any level. Field
// names are dotted paths; as in MongoDB they reach into embedded documents
// and into the documents of arrays, a numeric segment also addresses an
// array element, and a condition on an array field matches when the array
// or any of its elements satisfies it. Values compare in BSON order:
// numbers by exact value whatever their type (int32 1, int64 1, double 1.0
// and decimal 1 are equal; NaN equals NaN and sorts below every number),
// and range operators only match values of the operand's type bracket (a
// string is never $gt a number). {"f": null} matches a missing f too.
// Anything else ($regex, $expr, $where, ...) is an error.
//
// # Copy
//
// A copied document that does not match is dropped; dsync counts dropped
// documents and reports them in its summary.
//
// # Changes
//
// The sink must end up with exactly the matching documents, including when
// a document starts or stops matching. An insert or replace of a matching
// document passes (a replace of an id the sink does not hold inserts it); an
// insert or replace of a document that does not match becomes a delete of
// its _id, so the sink never keeps a stale copy of a document that left the
// filter. Deletes pass by _id.
//
// A partial update carries only the changed fields, so whether the document
// matches afterwards, or matched before (and so is in the sink at all), is
// in general unknown. Passing it on anyway would be wrong both ways: sinks
// apply partial updates as upserts, so a document that the filter excluded
// would appear in the sink as a fragment, and a document that stopped
// matching would stay. Partial updates are therefore decided only when that
// is possible without the full document:
//
//   - When the query reads only _id (or fields inside _id), which never
//     changes, every change is decided by its _id; changes of documents
//     that do not match are dropped.
//   - When the update sets or unsets every field the query reads and the
//     resulting values do not match, it becomes a delete of its _id.
//
// Any other partial update fails the run with a FailedPrecondition error
// naming the document: use filter with a source that sends full documents
// for updates, or filter on _id. dsync's MongoDB connector sends full
// documents; its PostgreSQL connector does too, except for an update that
// leaves a large (TOASTed) value unchanged, which PostgreSQL does not log.
package filter
