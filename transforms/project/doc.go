// Package project implements the built-in transforms drop and keep, which
// remove fields from documents (a projection).
//
// # Spec
//
//	drop:PATH[,PATH...]   remove these fields, keep the others
//	keep:PATH[,PATH...]   keep only these fields (and _id)
//
// A PATH is a field name or a dotted path into embedded documents, e.g.
// drop:password,address.street. Paths may not repeat or overlap (a and a.b).
// _id cannot be dropped, and keep always keeps _id whole; naming a field
// inside _id is an error.
//
// Like a MongoDB projection, a path applies to every document of an array it
// meets: drop:items.price removes price from each document in the array
// items. keep also removes the elements of such an array that are not
// documents, and keeps an embedded document even when none of its fields is
// kept (keep:a.b turns {a: {c: 1}} into {a: {}}); a value that is neither a
// document nor an array on the way to a kept path is removed.
//
// # Changes
//
// Inserted and replacing documents are projected like copied ones; deletes
// pass unchanged. A partial update keeps the fields to set and the paths to
// unset that the projection keeps; a field set above a projected path (set
// address where drop names address.street) has its value projected; under
// keep, setting such a field to a value that is not a document becomes an
// unset of it. A partial update left with nothing to set or unset is
// dropped.
//
// Like a projection, dropping every field of an embedded document leaves
// it empty rather than removing it. A partial update that creates a
// document only through dropped fields ($set meta.seq on a document without
// meta, under drop:meta.seq) therefore leaves no empty meta in the sink,
// where a fresh copy has one.
//
// Update paths may address array elements by index ("items.1.price"); drop
// applies to them as to documents in arrays. keep cannot map an index,
// because the elements it removes shift the others: a partial update under
// keep whose path goes through an array index of a kept path fails the run
// with a FailedPrecondition error.
package project
