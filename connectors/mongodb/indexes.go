package mongodb

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/dsyncio/dsync/internal/redact"
	"github.com/dsyncio/dsync/sdk"
)

// indexInternalFields are listIndexes fields that describe the server's
// copy of an index, not its definition: createIndexes must not get them.
var indexInternalFields = map[string]bool{"v": true, "ns": true, "background": true, "buildUUID": true}

// indexDefaultFalse are boolean options whose absence means false, so that
// {sparse: false} and no sparse compare equal.
var indexDefaultFalse = map[string]bool{"unique": true, "sparse": true, "hidden": true, "prepareUnique": true}

// ListIndexes returns the secondary indexes of a collection as createIndexes
// specifications: every field listIndexes gives (key, name, unique, sparse,
// expireAfterSeconds, partialFilterExpression, collation, the text and geo
// options, hidden, ...) except v, ns and background. The _id index, and the
// clustered index of a clustered collection, come with the collection and
// are left out. A missing collection has no indexes.
func (c *Connector) ListIndexes(ctx context.Context, namespace string) ([]bson.Raw, error) {
	st, err := c.state()
	if err != nil {
		return nil, err
	}
	coll, err := st.coll(namespace)
	if err != nil {
		return nil, err
	}
	all, err := st.listIndexes(ctx, coll)
	if err != nil {
		return nil, c.classify(err, "mongodb: list indexes of %s", namespace)
	}
	var out []bson.Raw
	for _, spec := range all {
		if isIDIndex(spec) {
			continue
		}
		out = append(out, spec)
	}
	return out, nil
}

// listIndexes returns every index of coll, _id index included, as
// createIndexes specifications.
func (st *state) listIndexes(ctx context.Context, coll *mongo.Collection) ([]bson.Raw, error) {
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		if hasCode(err, codeNamespaceNotFound) {
			return nil, nil
		}
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []bson.Raw
	for cur.Next(ctx) {
		spec, err := indexSpec(cur.Current)
		if err != nil {
			return nil, err
		}
		out = append(out, spec)
	}
	return out, cur.Err()
}

// indexSpec turns a listIndexes entry into a createIndexes specification.
func indexSpec(entry bson.Raw) (bson.Raw, error) {
	elems, err := entry.Elements()
	if err != nil {
		return nil, fmt.Errorf("index specification: %w", err)
	}
	out := bson.D{}
	for _, e := range elems {
		if indexInternalFields[e.Key()] {
			continue
		}
		out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
	}
	return bson.Marshal(out)
}

// isIDIndex reports whether spec is the _id index (or the clustered index),
// which exists with the collection.
func isIDIndex(spec bson.Raw) bool {
	if b, ok := spec.Lookup("clustered").BooleanOK(); ok && b {
		return true
	}
	if name, _ := spec.Lookup("name").StringValueOK(); name == "_id_" {
		return true
	}
	key, ok := spec.Lookup("key").DocumentOK()
	if !ok {
		return false
	}
	elems, err := key.Elements()
	return err == nil && len(elems) == 1 && elems[0].Key() == "_id" && !isIndexType(elems[0].Value())
}

// isIndexType reports whether a key value names a special index type
// ("text", "2dsphere", "hashed", ...) rather than a direction.
func isIndexType(v bson.RawValue) bool {
	_, ok := v.StringValueOK()
	return ok
}

// CreateIndexes creates the indexes described by specs (createIndexes
// specifications, as ListIndexes returns) on a collection, creating the
// collection if needed. It is idempotent: an index that exists with the
// same name and definition is left alone. An index whose name exists with
// another definition, or that the server refuses (an option it does not
// implement, a key that conflicts with an existing index, ...), fails with
// a failed precondition naming the index. A specification without a name
// gets the server's default name (field_direction joined by "_").
//
// Indexes are built with one createIndexes command, so that the server
// scans the collection once; when the server refuses it, each index is
// created alone to name the one at fault. On FerretDB each index always
// gets its own command. The server's default commit quorum (every voting
// member, MongoDB 4.4+) makes a created index durable.
func (c *Connector) CreateIndexes(ctx context.Context, namespace string, specs []bson.Raw) error {
	st, err := c.state()
	if err != nil {
		return err
	}
	coll, err := st.coll(namespace)
	if err != nil {
		return err
	}
	existing, err := st.listIndexes(ctx, coll)
	if err != nil {
		return c.classify(err, "mongodb: list indexes of %s", namespace)
	}
	byName := map[string]bson.Raw{}
	for _, e := range existing {
		if name, ok := e.Lookup("name").StringValueOK(); ok {
			byName[name] = e
		}
	}
	var todo []bson.Raw
	var names []string
	for i, raw := range specs {
		spec, name, err := namedIndexSpec(raw)
		if err != nil {
			return sdk.InvalidArgument("mongodb: index %d for %s: %v", i, namespace, err)
		}
		if isIDIndex(spec) {
			continue
		}
		if have, ok := byName[name]; ok {
			if sameIndex(have, spec) {
				continue
			}
			return sdk.FailedPrecondition(fmt.Errorf("%w: index %q of %s exists with another definition: it is %s, the source's is %s; drop or rename it on the target",
				ErrIndexConflict, name, namespace, indexDefinition(have), indexDefinition(spec)))
		}
		if slices.Contains(names, name) {
			return sdk.InvalidArgument("mongodb: index %q for %s is given twice", name, namespace)
		}
		todo = append(todo, spec)
		names = append(names, name)
	}
	if len(todo) == 0 {
		return nil
	}
	if len(todo) > 1 && !st.server.ferret {
		err := createIndexes(ctx, coll, todo)
		if err == nil || !isServerError(err) {
			return st.indexError(err, namespace, names)
		}
		// Find the index the server refuses; the others may exist by now.
	}
	for i, spec := range todo {
		err := createIndexes(ctx, coll, []bson.Raw{spec})
		if err != nil && hasCode(err, codeIndexOptionsConflict, codeIndexKeySpecsConflict) && len(todo) > 1 && !st.server.ferret {
			if again, lerr := st.listIndexes(ctx, coll); lerr == nil && containsSame(again, names[i], spec) {
				continue
			}
		}
		if err := st.indexError(err, namespace, names[i:i+1]); err != nil {
			return err
		}
	}
	return nil
}

// createIndexes runs one createIndexes command.
func createIndexes(ctx context.Context, coll *mongo.Collection, specs []bson.Raw) error {
	arr := make(bson.A, len(specs))
	for i, s := range specs {
		arr[i] = s
	}
	return coll.Database().RunCommand(ctx, bson.D{
		{Key: "createIndexes", Value: coll.Name()},
		{Key: "indexes", Value: arr},
	}).Err()
}

// indexError classifies a createIndexes failure: a refusal by the server is
// a failed precondition naming the indexes; network trouble stays
// retryable.
func (st *state) indexError(err error, ns string, names []string) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("mongodb: create index %q on %s", strings.Join(names, ", "), ns)
	if len(names) > 1 {
		what = fmt.Sprintf("mongodb: create indexes %q on %s", names, ns)
	}
	if isServerError(err) {
		msg := redact.String(err.Error(), st.cc.secrets...)
		return sdk.FailedPrecondition(&scrubbed{msg: what + ": the server refuses it: " + msg, err: err})
	}
	return classifyErr(err, st.cc.secrets, what)
}

// containsSame reports whether indexes has one named name defined as spec.
func containsSame(indexes []bson.Raw, name string, spec bson.Raw) bool {
	for _, have := range indexes {
		if n, _ := have.Lookup("name").StringValueOK(); n == name && sameIndex(have, spec) {
			return true
		}
	}
	return false
}

// namedIndexSpec checks that raw has a key document and returns it with
// its name, adding the server's default name where it has none.
func namedIndexSpec(raw bson.Raw) (bson.Raw, string, error) {
	if err := raw.Validate(); err != nil {
		return nil, "", err
	}
	spec, err := indexSpec(raw)
	if err != nil {
		return nil, "", err
	}
	key, ok := spec.Lookup("key").DocumentOK()
	if !ok {
		return nil, "", fmt.Errorf("no key document in %s", spec)
	}
	keys, err := key.Elements()
	if err != nil || len(keys) == 0 {
		return nil, "", fmt.Errorf("empty key document in %s", spec)
	}
	if v, err := spec.LookupErr("name"); err == nil {
		name, ok := v.StringValueOK()
		if !ok || name == "" {
			return nil, "", fmt.Errorf("name is not a non-empty string in %s", spec)
		}
		return spec, name, nil
	}
	parts := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		parts = append(parts, k.Key(), keyValueName(k.Value()))
	}
	name := strings.Join(parts, "_")
	elems, _ := spec.Elements()
	d := bson.D{}
	for _, e := range elems {
		d = append(d, bson.E{Key: e.Key(), Value: e.Value()})
	}
	d = append(d, bson.E{Key: "name", Value: name})
	spec, err = bson.Marshal(d)
	return spec, name, err
}

// keyValueName renders a key value as MongoDB does in default index names.
func keyValueName(v bson.RawValue) string {
	if s, ok := v.StringValueOK(); ok {
		return s
	}
	if f, ok := numberValue(v); ok && f == math.Trunc(f) {
		return fmt.Sprintf("%d", int64(f))
	}
	return v.String()
}

// sameIndex reports whether two specifications define the same index:
// the same fields apart from internal ones, in any order, with numbers
// compared by value (1 = 1.0 = NumberLong(1)) and false booleans equal to
// absent ones. Key order matters.
func sameIndex(a, b bson.Raw) bool {
	ca, errA := canonicalIndex(a)
	cb, errB := canonicalIndex(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// canonicalIndex renders a specification for comparison.
func canonicalIndex(spec bson.Raw) ([]byte, error) {
	elems, err := spec.Elements()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(elems, func(x, y bson.RawElement) int { return strings.Compare(x.Key(), y.Key()) })
	var buf bytes.Buffer
	for _, e := range elems {
		k, v := e.Key(), e.Value()
		if indexInternalFields[k] {
			continue
		}
		if b, ok := v.BooleanOK(); ok && !b && indexDefaultFalse[k] {
			continue
		}
		fmt.Fprintf(&buf, "%q:", k)
		canonicalValue(&buf, v)
		buf.WriteByte(',')
	}
	return buf.Bytes(), nil
}

func canonicalValue(buf *bytes.Buffer, v bson.RawValue) {
	if f, ok := numberValue(v); ok {
		fmt.Fprintf(buf, "n%v", f)
		return
	}
	switch v.Type {
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		open, end := byte('{'), byte('}')
		if v.Type == bson.TypeArray {
			open, end = '[', ']'
		}
		buf.WriteByte(open)
		elems, _ := bson.Raw(v.Value).Elements()
		for _, e := range elems {
			fmt.Fprintf(buf, "%q:", e.Key())
			canonicalValue(buf, e.Value())
			buf.WriteByte(',')
		}
		buf.WriteByte(end)
	default:
		fmt.Fprintf(buf, "%d:%x", v.Type, v.Value)
	}
}

// numberValue returns a numeric value as a float64.
func numberValue(v bson.RawValue) (float64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return float64(v.Int32()), true
	case bson.TypeInt64:
		return float64(v.Int64()), true
	case bson.TypeDouble:
		return v.Double(), true
	}
	return 0, false
}

// indexDefinition renders a specification for messages.
func indexDefinition(spec bson.Raw) string {
	return spec.String()
}
