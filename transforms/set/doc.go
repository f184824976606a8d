// Package set implements the built-in transform set, which adds fields with
// constant or computed values to every document.
//
// # Spec
//
//	set:PATH=VALUE[,PATH=VALUE...]
//
// PATH is a field name or a dotted path into embedded documents (missing
// parents are created); paths may not repeat or overlap, and may not be or
// be inside _id. VALUE is one of:
//
//	a JSON value   in relaxed MongoDB Extended JSON: "staging", 42 (an
//	               int32; 3000000000 is an int64), 1.5, true, null,
//	               {"tier": 2}, [1, 2], {"$date": "2024-01-01T00:00:00Z"},
//	               {"$oid": "..."}. Strings need double quotes, and a
//	               string starting with '$' must be quoted.
//	$namespace     the namespace of the document as this transform sees it:
//	               after --namespace mapping and the transforms before it
//	               (put set before a namespace transform to record the
//	               original name).
//	$id            a copy of the document's _id.
//	$now           the time the document or change passed through this
//	               transform, a UTC datetime in milliseconds (the same for
//	               all documents of one batch).
//
// Example: set:env="staging",source=$namespace,syncedAt=$now.
//
// The fields go first in their parent document, right after _id at the
// top level, in the order of the spec; a field of the same name is
// replaced and moves there. Since changes add new fields last, a document
// then has the same field order whether it was copied or built by changes
// (except when set creates a parent document that changes also create:
// the copy puts it first, a change last). Missing parents are created; a
// value on the way to PATH that is not a document fails the run with an
// error naming the document.
//
// Every value but $now is the same each time a document passes, so the
// output is deterministic. $now is not: a document copied again after a
// restart gets a later time, and comparing source and sink needs verify's
// --exclude-field for it.
//
// # Changes
//
// Inserted and replacing documents get the fields like copied ones; deletes
// pass unchanged. A partial update that sets a field at PATH sets it to
// VALUE instead; one that sets or unsets a field inside PATH is dropped
// (PATH keeps VALUE); unsetting PATH itself is dropped too. Setting a
// document above PATH adds the field inside its value, and unsetting it
// becomes setting it to a document holding only the added fields. Fields
// with $now are set by every partial update, since the document changed
// then; the other values cannot change and are not repeated.
package set
