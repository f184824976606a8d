// Package namespace implements the built-in transform namespace, which
// renames namespaces: it routes documents and changes to other sink
// namespaces.
//
// # Spec
//
//	namespace:FROM=TO[,FROM=TO...]
//
// Each entry is either a namespace rule, db.coll=otherdb.othercoll, or a
// database rule, db=otherdb, which maps every namespace db.X to otherdb.X.
// A namespace is "db.collection": the database is the text before the first
// dot, so a collection name may hold dots. A namespace rule takes
// precedence over a database rule covering it; namespaces no rule names
// pass unchanged. A source may appear once, and two rules of the same kind
// may not have the same target. That two namespaces end up in one is only
// detected when the rules say so: mapping a.x to b.x while b.x also exists
// unchanged merges them, so choose targets that do not exist.
//
// FROM is matched against the namespace the transform receives, that is
// after --namespace mapping and after the transforms before it in the chain.
// Unlike --namespace, this transform does not select namespaces: those it
// does not name are kept as they are.
//
// # Checkpoints and verify
//
// The flow's checkpoints are kept per source partition and stream cursor,
// whatever namespace the transform writes to, so a renamed namespace
// resumes like any other; the transform chain, this spec included, is part
// of the flow id. To compare source and sink after a rename, verify the
// source against the sink with the same namespace mapping, e.g.
// --namespace db.coll:otherdb.othercoll.
//
// # Changes
//
// Every update goes to the renamed namespace, unchanged and in order.
package namespace
