// Package rename implements the built-in transform rename, which renames or
// moves fields.
//
// # Spec
//
//	rename:OLD=NEW[,OLD=NEW...]
//
// OLD and NEW are field names or dotted paths into embedded documents, e.g.
// rename:name=fullName,addr.zip=address.postcode. Paths descend through
// embedded documents only, not into arrays (as MongoDB's $rename). The
// renames apply together, so rename:a=b,b=a swaps two fields; otherwise no
// two paths of a spec may overlap (a and a.b), an OLD may appear once and a
// NEW once, and neither may be or be inside _id.
//
// In the output, NEW holds what OLD held in the input, and only that: a
// field already at NEW is discarded even when the document has no OLD, so
// that every output document means the same thing by NEW. A field renamed
// within its parent document keeps its place; a field moved to another
// parent goes last there, and missing parents are created last in their
// parents. Moving a field under a value that is not a document fails the
// run with an error naming the document.
//
// # Changes
//
// Inserted and replacing documents are renamed like copied ones; deletes
// pass unchanged. In a partial update, a field set or unset at or under OLD
// is set or unset at the same place under NEW, and one at or under a NEW
// that is no OLD is dropped (the output's NEW only ever comes from OLD).
// Setting a document above OLD renames inside its value; when NEW is
// outside that document, the update also sets NEW to the value OLD has in it,
// or unsets NEW when it has none. Setting or unsetting a field above a NEW
// whose OLD lies outside it cannot be translated without the full document
// (the sink would lose NEW): such an update fails the run with a
// FailedPrecondition error.
//
// Moves and partial updates: a field moved out of an embedded document
// leaves that document in place, possibly empty, as MongoDB's $rename does.
// Two details then depend on the order of changes rather than on the
// document alone: a moved field may sit elsewhere in the sink than in a
// fresh copy (updates add fields last; compare with verify's
// --ignore-field-order), and a partial update that creates the parent of a
// moved field through that field ($set meta.seq on a document without
// meta) leaves no empty parent in the sink, where a fresh copy has one.
// Renames within a parent have neither effect.
package rename
