package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/dsyncio/dsync/sdk"
)

// Kinds of _id column of a document table, in its comment.
const (
	idBigint   = "bigint"   // int32 and int64 ids
	idStr      = "string"   // string ids (a text column created by dsync)
	idObjectID = "objectid" // ObjectIds, as 24 hex digits in a text column
	idUUID     = "uuid"     // UUIDs (binary subtype 4)
	idJSONB    = "jsonb"    // any id, as its Extended JSON
	idText     = "text"     // a text column dsync did not create: strings and ObjectIds
	idOther    = "other"    // any other column type: converted like a key
)

const docTableComment = "dsync document table (_id: %s)"

// docIDKind returns the kind of a document table's _id column.
func (t *table) docIDKind() string {
	c := t.cols[t.pk[0]]
	var kind string
	if _, err := fmt.Sscanf(t.comment, docTableComment, &kind); err == nil {
		kind = strings.TrimSuffix(kind, ")")
	}
	switch c.typ.kind {
	case kInt32, kInt64:
		return idBigint
	case kUUID:
		return idUUID
	case kJSON, kJSONB:
		return idJSONB
	case kString:
		if kind == idObjectID || kind == idStr {
			return kind
		}
		return idText
	}
	return idOther
}

// ownedDocTable reports whether dsync created the document table (and may
// therefore widen its _id column).
func (t *table) ownedDocTable() bool {
	return strings.HasPrefix(t.comment, "dsync document table")
}

// docIDText appends the _id column text of an id for a kind of document
// table; false when the kind cannot hold the id.
func docIDText(dst []byte, kind string, id bson.RawValue) ([]byte, bool) {
	switch kind {
	case idBigint:
		switch id.Type {
		case bson.TypeInt32:
			v, _ := id.Int32OK()
			return strconv.AppendInt(dst, int64(v), 10), true
		case bson.TypeInt64:
			v, _ := id.Int64OK()
			return strconv.AppendInt(dst, v, 10), true
		}
	case idStr:
		if s, ok := id.StringValueOK(); ok {
			return append(dst, s...), true
		}
	case idObjectID:
		if oid, ok := id.ObjectIDOK(); ok {
			return append(dst, oid.Hex()...), true
		}
	case idText:
		if s, ok := id.StringValueOK(); ok {
			return append(dst, s...), true
		}
		if oid, ok := id.ObjectIDOK(); ok {
			return append(dst, oid.Hex()...), true
		}
	case idUUID:
		if sub, data, ok := id.BinaryOK(); ok && (sub == 4 || sub == 3) && len(data) == 16 {
			return appendUUID(dst, data), true
		}
	case idJSONB:
		out, err := appendJSON(dst, id, true)
		return out, err == nil
	case idOther:
		return dst, false
	}
	return dst, false
}

// idKindFor picks the narrowest _id column kind for a new document table.
func idKindFor(ids []bson.RawValue) string {
	kind := ""
	for _, id := range ids {
		var k string
		switch id.Type {
		case bson.TypeInt32, bson.TypeInt64:
			k = idBigint
		case bson.TypeString:
			k = idStr
		case bson.TypeObjectID:
			k = idObjectID
		case bson.TypeBinary:
			if _, ok := docIDText(nil, idUUID, id); ok {
				k = idUUID
			}
		}
		if k == "" || (kind != "" && k != kind) {
			return idJSONB
		}
		kind = k
	}
	if kind == "" {
		return idJSONB
	}
	return kind
}

var idColumnTypes = map[string]string{idBigint: "bigint", idStr: "text", idObjectID: "text", idUUID: "uuid", idJSONB: "jsonb"}

// sinkCache holds the tables the sink writes. Definitions are reread after
// errors that suggest they changed.
type sinkCache struct {
	mu     sync.Mutex
	tables map[string]*table
	create map[string]*sync.Mutex
}

func (st *state) sinkTable(ctx context.Context, ns string) (*table, error) {
	st.sink.mu.Lock()
	t, ok := st.sink.tables[ns]
	st.sink.mu.Unlock()
	if ok {
		return t, nil
	}
	schema, name, err := parseNamespace(ns)
	if err != nil {
		return nil, err
	}
	t, err = loadTable(ctx, st.pool, st.types, schema, name)
	if errors.Is(err, errNoTable) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err, "read the definition of "+ns)
	}
	t.ns = ns
	st.sink.mu.Lock()
	if st.sink.tables == nil {
		st.sink.tables = map[string]*table{}
	}
	st.sink.tables[ns] = t
	st.sink.mu.Unlock()
	return t, nil
}

// forget drops the cached definitions of ns (sink and source).
func (st *state) forget(ns string) {
	st.sink.mu.Lock()
	delete(st.sink.tables, ns)
	st.sink.mu.Unlock()
	st.srcCache.Delete(ns)
}

func (st *state) createLock(ns string) *sync.Mutex {
	st.sink.mu.Lock()
	defer st.sink.mu.Unlock()
	if st.sink.create == nil {
		st.sink.create = map[string]*sync.Mutex{}
	}
	m := st.sink.create[ns]
	if m == nil {
		m = &sync.Mutex{}
		st.sink.create[ns] = m
	}
	return m
}

// createDocTable creates the document table of ns (and its schema) with
// an _id column that fits ids.
func (st *state) createDocTable(ctx context.Context, ns string, ids []bson.RawValue) (*table, error) {
	m := st.createLock(ns)
	m.Lock()
	defer m.Unlock()
	st.forget(ns)
	if t, err := st.sinkTable(ctx, ns); t != nil || err != nil {
		return t, err
	}
	schema, name, _ := parseNamespace(ns)
	kind := idKindFor(ids)
	ident := quoteIdent(schema) + "." + quoteIdent(name)
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "dsync:"+ns); err != nil {
			return err
		}
		// CREATE SCHEMA IF NOT EXISTS is not safe against a concurrent
		// one (duplicate key in pg_namespace): the document tables of
		// one schema are created in parallel, so the schema is locked too.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "dsync:schema:"+schema); err != nil {
			return err
		}
		for _, sql := range []string{
			"CREATE SCHEMA IF NOT EXISTS " + quoteIdent(schema),
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (_id %s PRIMARY KEY, doc jsonb NOT NULL)", ident, idColumnTypes[kind]),
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		var comment *string
		if err := tx.QueryRow(ctx, "SELECT obj_description($1::regclass, 'pg_class')", ident).Scan(&comment); err != nil {
			return err
		}
		if comment == nil {
			_, err := tx.Exec(ctx, fmt.Sprintf("COMMENT ON TABLE %s IS %s", ident, quoteLiteral(fmt.Sprintf(docTableComment, kind))))
			return err
		}
		return nil
	})
	if err != nil {
		return nil, classify(err, "create document table "+ident)
	}
	slog.Info("postgres: created document table", "table", ident, "_id", idColumnTypes[kind], "kind", kind)
	return st.sinkTable(ctx, ns)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// widenDocTable changes the _id column of a document table dsync created
// to jsonb, which holds any id.
func (st *state) widenDocTable(ctx context.Context, t *table, id bson.RawValue) error {
	m := st.createLock(t.ns)
	m.Lock()
	defer m.Unlock()
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE "+t.ident()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return err
		}
		var typ string
		if err := tx.QueryRow(ctx, "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = '_id'", t.ident()).Scan(&typ); err != nil {
			return err
		}
		if typ == "jsonb" {
			return nil
		}
		for _, sql := range []string{
			"ALTER TABLE " + t.ident() + " ALTER COLUMN _id TYPE jsonb USING doc->'_id'",
			fmt.Sprintf("COMMENT ON TABLE %s IS %s", t.ident(), quoteLiteral(fmt.Sprintf(docTableComment, idJSONB))),
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		slog.Warn("postgres: the _id column of a document table is now jsonb: a new id does not fit its type", "table", t.ident(), "was", typ, "_id", idString(id))
		return nil
	})
	st.forget(t.ns)
	if err != nil {
		return classify(err, "change the _id column of "+t.ident()+" to jsonb")
	}
	return nil
}

// WriteData inserts or replaces documents by _id. An existing table gets
// one row per document, columns from fields; a namespace without a table
// gets a document table (see the package documentation).
func (c *Connector) WriteData(ctx context.Context, namespace string, docs []bson.Raw) error {
	st, err := c.state()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(docs) == 0 {
		return nil
	}
	ops := make([]writeOp, len(docs))
	for i, d := range docs {
		id, err := d.LookupErr("_id")
		if err != nil {
			return sdk.Fatal(fmt.Errorf("postgres: %s: document %d of the batch has no _id", namespace, i))
		}
		ops[i] = writeOp{id: id, doc: d}
	}
	return st.write(ctx, namespace, ops)
}

// writeOp is the final change of one id within a write: an upsert of doc,
// a delete, or partial updates to apply to the stored row.
type writeOp struct {
	id       bson.RawValue
	doc      bson.Raw
	delete   bool
	partials []sdk.Update
}

// write applies ops (at most one per id) in one transaction, reading the
// table's definition again when it changed under it.
func (st *state) write(ctx context.Context, ns string, ops []writeOp) error {
	for attempt := 0; ; attempt++ {
		if attempt == 3 {
			return sdk.Fatal(fmt.Errorf("postgres: write %s: the table keeps changing", ns))
		}
		t, err := st.sinkTable(ctx, ns)
		if err != nil {
			return err
		}
		if t == nil {
			var ids []bson.RawValue
			for _, op := range ops {
				if op.doc != nil {
					ids = append(ids, op.id)
				}
			}
			if len(ids) == 0 {
				return nil // deletes and partial updates of a table that does not exist
			}
			if t, err = st.createDocTable(ctx, ns, ids); err != nil {
				return err
			}
		}
		if t.docTable {
			if widen, id := st.needsWidening(t, ops); widen {
				if !t.ownedDocTable() {
					return sdk.Fatal(fmt.Errorf("postgres: table %s, _id %s: the _id column (%s) cannot hold a BSON %s: change the column to jsonb (ALTER TABLE %s ALTER COLUMN _id TYPE jsonb USING doc->'_id')",
						t, idString(id), t.cols[t.pk[0]].typ.name, bsonTypeName(id.Type), t))
				}
				if err := st.widenDocTable(ctx, t, id); err != nil {
					return err
				}
				continue
			}
		}
		err = pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error { return st.applyOps(ctx, tx, t, ops) })
		if err == nil {
			return nil
		}
		if attempt < 2 && schemaChanged(err) {
			st.forget(ns)
			continue
		}
		var se *sdk.Error
		if errors.As(err, &se) {
			return err
		}
		if isDataError(err) {
			return st.explainDataError(ctx, t, ops, err)
		}
		return classify(err, "write "+t.ident())
	}
}

// schemaChanged reports errors after which a table's definition should be
// read again.
func schemaChanged(err error) bool {
	switch pgCode(err) {
	case "42P01", "42703", "42804", "0A000":
		return true
	}
	return false
}

func (st *state) needsWidening(t *table, ops []writeOp) (bool, bson.RawValue) {
	kind := t.docIDKind()
	if kind == idJSONB {
		return false, bson.RawValue{}
	}
	for _, op := range ops {
		if _, ok := docIDText(nil, kind, op.id); !ok && op.doc != nil {
			return true, op.id
		}
	}
	return false, bson.RawValue{}
}

// applyOps runs in a transaction: deletes, partial updates of stored rows,
// then upserts (including the documents partial updates rewrote). Each id
// has one op, so the order between ids does not matter.
func (st *state) applyOps(ctx context.Context, tx pgx.Tx, t *table, ops []writeOp) error {
	var dels []bson.RawValue
	var ups []writeOp
	var partials []writeOp
	for _, op := range ops {
		switch {
		case op.delete:
			dels = append(dels, op.id)
		case op.doc != nil:
			ups = append(ups, op)
		case len(op.partials) > 0:
			partials = append(partials, op)
		}
	}
	if err := st.deleteIDs(ctx, tx, t, dels); err != nil {
		return err
	}
	if len(partials) > 0 {
		more, err := st.applyPartials(ctx, tx, t, partials)
		if err != nil {
			return err
		}
		ups = append(ups, more...)
	}
	return st.upsert(ctx, tx, t, ups)
}

func (st *state) deleteIDs(ctx context.Context, tx pgx.Tx, t *table, ids []bson.RawValue) error {
	if len(ids) == 0 {
		return nil
	}
	arity := t.keyArity()
	cols := make([][]string, arity)
	for _, id := range ids {
		texts, ok := t.keyTexts(id)
		if !ok {
			continue // cannot exist
		}
		for k := range arity {
			cols[k] = append(cols[k], string(texts[k]))
		}
	}
	if len(cols[0]) == 0 {
		return nil
	}
	args := make([]any, 0, arity)
	if t.hashID() {
		args = append(args, cols[0])
		_, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s AS t WHERE md5(ROW(%s)::text) = ANY($1::text[])", t.from(), t.srcList("t")), args...)
		return err
	}
	var ks, params, conds []string
	for k := range arity {
		ks = append(ks, fmt.Sprintf("k%d", k))
		params = append(params, fmt.Sprintf("$%d::text[]", k+1))
		args = append(args, cols[k])
		c := t.cols[t.pk[k]]
		conds = append(conds, fmt.Sprintf("t.%s = CAST(k.k%d AS %s)", quoteIdent(c.name), k, c.typ.name))
	}
	sql := fmt.Sprintf("DELETE FROM %s AS t USING unnest(%s) AS k(%s) WHERE %s",
		t.from(), strings.Join(params, ", "), strings.Join(ks, ", "), strings.Join(conds, " AND "))
	_, err := tx.Exec(ctx, sql, args...)
	return err
}

// row is a document converted for a table: the text of each column given,
// and the key texts.
type row struct {
	id   bson.RawValue
	key  string // key texts joined, for deduplication
	vals [][]byte
	set  []bool // set[i]: column i has a value (nil vals[i] is NULL)
}

// toRow converts a document for a table with columns.
func (t *table) toRow(id bson.RawValue, doc bson.Raw) (row, error) {
	r := row{id: id, vals: make([][]byte, len(t.cols)), set: make([]bool, len(t.cols))}
	fail := func(format string, args ...any) (row, error) {
		return row{}, sdk.Fatal(fmt.Errorf("postgres: table %s, _id %s: %s", t, idString(id), fmt.Sprintf(format, args...)))
	}
	keys, ok := t.keyTexts(id)
	if !ok && !t.hashID() {
		return fail("the _id does not fit the primary key (%s)", t.keyList(""))
	}
	if t.hashID() {
		keys = nil
	}
	var meta bson.Raw
	elems, err := doc.Elements()
	if err != nil {
		return fail("unreadable document: %v", err)
	}
	for _, e := range elems {
		k := e.Key()
		switch k {
		case "_id":
			continue
		case MetaField:
			m, ok := e.Value().DocumentOK()
			if !ok {
				return fail("%s is a %s, not a document", MetaField, bsonTypeName(e.Value().Type))
			}
			meta = m
			continue
		}
		i, ok := t.byName[k]
		if !ok {
			return fail("field %q has no column in the table", k)
		}
		c := &t.cols[i]
		if c.generated {
			continue
		}
		text, null, err := appendSinkText(nil, e.Value(), c.typ)
		if err != nil {
			return fail("field %q: %v", k, err)
		}
		if c.isKey {
			if null || string(text) != string(keys[indexOf(t.pk, i)]) {
				return fail("field %q differs from the primary key in _id", k)
			}
			continue
		}
		if null {
			text = nil
		} else if text == nil {
			text = []byte{}
		}
		r.vals[i], r.set[i] = text, true
	}
	if meta != nil {
		melems, err := meta.Elements()
		if err != nil {
			return fail("unreadable %s: %v", MetaField, err)
		}
		for _, e := range melems {
			i, ok := t.byName[e.Key()]
			if !ok {
				return fail("%s.%s has no column in the table", MetaField, e.Key())
			}
			s, ok := e.Value().StringValueOK()
			if !ok {
				return fail("%s.%s is a %s, not a string", MetaField, e.Key(), bsonTypeName(e.Value().Type))
			}
			if t.cols[i].generated || t.cols[i].isKey {
				continue
			}
			r.vals[i], r.set[i] = []byte(s), true
		}
	}
	for k, i := range t.pk {
		r.vals[i], r.set[i] = keys[k], true
	}
	if t.hashID() {
		s, _ := id.StringValueOK()
		r.key = s
	} else {
		var b strings.Builder
		for _, k := range keys {
			b.Write(k)
			b.WriteByte(0)
		}
		r.key = b.String()
	}
	return r, nil
}

// upsert inserts or replaces documents.
func (st *state) upsert(ctx context.Context, tx pgx.Tx, t *table, ops []writeOp) error {
	if len(ops) == 0 {
		return nil
	}
	if t.docTable {
		return st.upsertDocs(ctx, tx, t, ops)
	}
	// Convert, deduplicate (the last document of an id wins) and group by
	// the set of columns given.
	rows := make([]row, 0, len(ops))
	seen := map[string]int{}
	for _, op := range ops {
		r, err := t.toRow(op.id, op.doc)
		if err != nil {
			return err
		}
		if j, dup := seen[r.key]; dup {
			rows[j] = r
			continue
		}
		seen[r.key] = len(rows)
		rows = append(rows, r)
	}
	if t.hashID() {
		ids := make([]bson.RawValue, len(rows))
		for i, r := range rows {
			ids[i] = r.id
		}
		if err := st.deleteIDs(ctx, tx, t, ids); err != nil {
			return err
		}
	}
	groups := map[string][]int{}
	var order []string
	for i, r := range rows {
		var sig strings.Builder
		for _, s := range r.set {
			if s {
				sig.WriteByte('1')
			} else {
				sig.WriteByte('0')
			}
		}
		k := sig.String()
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		idx := groups[k]
		set := rows[idx[0]].set
		var cols []int
		for i, s := range set {
			if s {
				cols = append(cols, i)
			}
		}
		if st.copyRows > 0 && len(idx) >= st.copyRows {
			if err := st.copyMerge(ctx, tx, t, cols, rows, idx); err != nil {
				return err
			}
			continue
		}
		args := make([]any, len(cols))
		var params, aliases []string
		for j, ci := range cols {
			vals := make([]*string, len(idx))
			for n, ri := range idx {
				if v := rows[ri].vals[ci]; v != nil {
					s := string(v)
					vals[n] = &s
				}
			}
			args[j] = vals
			params = append(params, fmt.Sprintf("$%d::text[]", j+1))
			aliases = append(aliases, fmt.Sprintf("a%d", j))
		}
		from := fmt.Sprintf("unnest(%s) AS k(%s)", strings.Join(params, ", "), strings.Join(aliases, ", "))
		if _, err := tx.Exec(ctx, t.upsertSQL(cols, from), args...); err != nil {
			return err
		}
	}
	return nil
}

// copyMerge writes rows through COPY into a temporary table of text
// columns and one INSERT ... SELECT from it. Measured against the unnest
// statement (BenchmarkWriteData), it is not faster, so it is off by
// default (state.copyRows).
func (st *state) copyMerge(ctx context.Context, tx pgx.Tx, t *table, cols []int, rows []row, idx []int) error {
	stage := fmt.Sprintf("dsync_stage_%d", len(cols))
	var defs []string
	for j := range cols {
		defs = append(defs, fmt.Sprintf("a%d text", j))
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s (%s) ON COMMIT DELETE ROWS", stage, strings.Join(defs, ", "))); err != nil {
		return err
	}
	var buf []byte
	for _, ri := range idx {
		for j, ci := range cols {
			if j > 0 {
				buf = append(buf, '\t')
			}
			buf = appendCopyText(buf, rows[ri].vals[ci])
		}
		buf = append(buf, '\n')
	}
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), "COPY "+stage+" FROM STDIN"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, t.upsertSQL(cols, stage+" AS k")); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "TRUNCATE "+stage)
	return err
}

// appendCopyText appends a value in COPY's text format (nil is NULL).
func appendCopyText(dst, v []byte) []byte {
	if v == nil {
		return append(dst, '\\', 'N')
	}
	for _, c := range v {
		switch c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// upsertSQL is the statement that inserts or replaces rows given the
// columns cols from the text columns a0, a1, ... of from (aliased k):
// columns not given are reset to their default on replace, as the
// document has no such field.
func (t *table) upsertSQL(cols []int, from string) string {
	var names, exprs []string
	overriding := false
	given := make([]bool, len(t.cols))
	for j, ci := range cols {
		c := &t.cols[ci]
		given[ci] = true
		names = append(names, quoteIdent(c.name))
		exprs = append(exprs, fmt.Sprintf("CAST(k.a%d AS %s)", j, c.typ.name))
		overriding = overriding || c.identity == 'a'
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s)", t.ident(), strings.Join(names, ", "))
	if overriding {
		b.WriteString(" OVERRIDING SYSTEM VALUE")
	}
	fmt.Fprintf(&b, " SELECT %s FROM %s", strings.Join(exprs, ", "), from)
	if t.hashID() {
		return b.String()
	}
	var sets []string
	for i, c := range t.cols {
		switch {
		case c.isKey || c.generated, c.identity == 'a':
			// GENERATED ALWAYS identity values cannot change after the
			// insert, at the source either.
		case given[i]:
			sets = append(sets, fmt.Sprintf("%s = EXCLUDED.%s", quoteIdent(c.name), quoteIdent(c.name)))
		case c.identity == 0:
			sets = append(sets, quoteIdent(c.name)+" = DEFAULT")
		}
	}
	fmt.Fprintf(&b, " ON CONFLICT (%s) DO ", t.keyList(""))
	if len(sets) == 0 {
		b.WriteString("NOTHING")
	} else {
		b.WriteString("UPDATE SET " + strings.Join(sets, ", "))
	}
	return b.String()
}

// upsertDocs writes documents to a document table.
func (st *state) upsertDocs(ctx context.Context, tx pgx.Tx, t *table, ops []writeOp) error {
	kind := t.docIDKind()
	ids := make([]string, 0, len(ops))
	docs := make([]string, 0, len(ops))
	seen := map[string]int{}
	for _, op := range ops {
		idText, ok := docIDText(nil, kind, op.id)
		if !ok {
			return sdk.Fatal(fmt.Errorf("postgres: table %s, _id %s: the _id column cannot hold a BSON %s", t, idString(op.id), bsonTypeName(op.id.Type)))
		}
		doc := op.doc
		if _, err := doc.LookupErr("_id"); err != nil {
			doc = withID(op.id, doc)
		}
		text, err := appendJSON(nil, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}, true)
		if err != nil {
			return sdk.Fatal(fmt.Errorf("postgres: table %s, _id %s: %w", t, idString(op.id), err))
		}
		if j, dup := seen[string(idText)]; dup {
			docs[j] = string(text)
			continue
		}
		seen[string(idText)] = len(ids)
		ids = append(ids, string(idText))
		docs = append(docs, string(text))
	}
	sql := fmt.Sprintf("INSERT INTO %s (_id, doc) SELECT CAST(k.id AS %s), CAST(k.doc AS jsonb) FROM unnest($1::text[], $2::text[]) AS k(id, doc) ON CONFLICT (_id) DO UPDATE SET doc = EXCLUDED.doc",
		t.ident(), t.cols[t.pk[0]].typ.name)
	_, err := tx.Exec(ctx, sql, ids, docs)
	return err
}

// withID returns doc with _id prepended.
func withID(id bson.RawValue, doc bson.Raw) bson.Raw {
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = bsoncore.AppendHeader(out, bsoncore.Type(id.Type), "_id")
	out = append(out, id.Value...)
	if elems, err := doc.Elements(); err == nil {
		for _, e := range elems {
			out = append(out, e...)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// explainDataError finds which document a data error of a batch comes
// from, by writing the upserts one at a time, and returns a fatal error
// naming the table and the _id.
func (st *state) explainDataError(ctx context.Context, t *table, ops []writeOp, batchErr error) error {
	for _, op := range ops {
		if op.doc == nil {
			continue
		}
		err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error { return st.upsert(ctx, tx, t, []writeOp{op}) })
		if err != nil && isDataError(err) {
			return sdk.Fatal(fmt.Errorf("postgres: table %s, _id %s: %s", t, idString(op.id), pgMessage(err)))
		}
		if err != nil {
			return classify(err, "write "+t.ident())
		}
	}
	return sdk.Fatal(fmt.Errorf("postgres: write %s: %s", t, pgMessage(batchErr)))
}

func pgMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		s := pgErr.Message
		if pgErr.Detail != "" {
			s += " (" + pgErr.Detail + ")"
		}
		return s
	}
	return err.Error()
}

// WriteUpdates applies changes in order: per id, the changes are folded
// into one final change (a replace followed by partial updates is the
// updated replace; a delete drops earlier changes), and the final changes
// of all ids are applied in one transaction. Partial updates of rows not
// in the batch change the stored row: an UPDATE of the columns set, or,
// for dotted paths and document tables, the stored document updated and
// written back. A partial update of a missing row does nothing.
func (c *Connector) WriteUpdates(ctx context.Context, namespace string, updates []sdk.Update) error {
	st, err := c.state()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(updates) == 0 {
		return nil
	}
	t, err := st.sinkTable(ctx, namespace)
	if err != nil {
		return err
	}
	// Stale exact texts are dropped for tables with columns; a missing
	// table becomes a document table, which stores documents as they are.
	dropMeta := t != nil && !t.docTable
	// Fold per id. Ids are grouped by their raw BSON, which is exact for
	// the ids one source produces.
	index := map[string]int{}
	var ops []writeOp
	for i, u := range updates {
		key := string(rune(u.ID.Type)) + string(u.ID.Value)
		j, ok := index[key]
		if !ok {
			j = len(ops)
			index[key] = j
			ops = append(ops, writeOp{id: u.ID})
		}
		op := &ops[j]
		switch u.Type {
		case sdk.UpdateInsert, sdk.UpdateReplace:
			if len(u.Doc) == 0 {
				return sdk.Fatal(fmt.Errorf("postgres: %s: update %d (%s of _id %s) has no document", namespace, i, u.Type, idString(u.ID)))
			}
			*op = writeOp{id: u.ID, doc: u.Doc}
		case sdk.UpdateDelete:
			*op = writeOp{id: u.ID, delete: true}
		case sdk.UpdatePartial:
			switch {
			case op.delete:
				// A partial update of a deleted document does nothing.
			case op.doc != nil:
				doc, err := applyPartial(op.doc, u.Doc, u.Unset, dropMeta)
				if err != nil {
					return sdk.Fatal(fmt.Errorf("postgres: %s, _id %s: partial update: %w", namespace, idString(u.ID), err))
				}
				op.doc = doc
			default:
				op.partials = append(op.partials, u)
			}
		default:
			return sdk.Fatal(fmt.Errorf("postgres: %s: update %d of _id %s has unknown type %d", namespace, i, idString(u.ID), u.Type))
		}
	}
	return st.write(ctx, namespace, ops)
}

// applyPartials applies partial updates to stored rows. Updates that only
// set and unset columns (and their exact text in MetaField) become an
// UPDATE; others read the stored document, apply the update to it and
// return it for writing back.
func (st *state) applyPartials(ctx context.Context, tx pgx.Tx, t *table, ops []writeOp) ([]writeOp, error) {
	var slow []writeOp
	batch := &pgx.Batch{}
	for _, op := range ops {
		if t.docTable || t.hashID() || !t.simplePartials(op.partials) {
			slow = append(slow, op)
			continue
		}
		keys, ok := t.keyTexts(op.id)
		if !ok {
			continue // no such row
		}
		for _, u := range op.partials {
			sql, args, err := t.updateSQL(op.id, keys, u)
			if err != nil {
				return nil, err
			}
			if sql != "" {
				batch.Queue(sql, args...)
			}
		}
	}
	if batch.Len() > 0 {
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return nil, err
		}
	}
	if len(slow) == 0 {
		return nil, nil
	}
	ids := make([]bson.RawValue, len(slow))
	for i, op := range slow {
		ids[i] = op.id
	}
	cur, err := st.getByIDs(ctx, tx, t, ids, true)
	if err != nil {
		return nil, err
	}
	var out []writeOp
	for i, op := range slow {
		doc := cur[i]
		if doc == nil {
			continue
		}
		for _, u := range op.partials {
			if doc, err = applyPartial(doc, u.Doc, u.Unset, !t.docTable); err != nil {
				return nil, sdk.Fatal(fmt.Errorf("postgres: table %s, _id %s: partial update: %w", t, idString(op.id), err))
			}
		}
		out = append(out, writeOp{id: op.id, doc: doc})
	}
	return out, nil
}

// simplePartials reports whether partial updates only set or unset
// non-key columns and MetaField.<column>.
func (t *table) simplePartials(us []sdk.Update) bool {
	ok := func(path string) bool {
		if col, found := strings.CutPrefix(path, MetaField+"."); found {
			i, exists := t.byName[col]
			return exists && !t.cols[i].isKey
		}
		i, exists := t.byName[path]
		return exists && !t.cols[i].isKey
	}
	for _, u := range us {
		elems, err := u.Doc.Elements()
		if len(u.Doc) > 0 && err != nil {
			return false
		}
		for _, e := range elems {
			if !ok(e.Key()) {
				return false
			}
		}
		for _, p := range u.Unset {
			if !ok(p) {
				return false
			}
		}
	}
	return true
}

// updateSQL returns the UPDATE of one simple partial update (empty when it
// changes nothing).
func (t *table) updateSQL(id bson.RawValue, keys [][]byte, u sdk.Update) (string, []any, error) {
	vals := map[int]*string{}
	var order []int
	put := func(i int, v *string) {
		if _, ok := vals[i]; !ok {
			order = append(order, i)
		}
		vals[i] = v
	}
	elems, _ := u.Doc.Elements()
	exact := map[int]string{}
	for _, e := range elems {
		if col, found := strings.CutPrefix(e.Key(), MetaField+"."); found {
			s, ok := e.Value().StringValueOK()
			if !ok {
				return "", nil, sdk.Fatal(fmt.Errorf("postgres: table %s, _id %s: %s is a %s, not a string", t, idString(id), e.Key(), bsonTypeName(e.Value().Type)))
			}
			exact[t.byName[col]] = s
			continue
		}
		i := t.byName[e.Key()]
		c := &t.cols[i]
		if c.generated {
			continue
		}
		text, null, err := appendSinkText(nil, e.Value(), c.typ)
		if err != nil {
			return "", nil, sdk.Fatal(fmt.Errorf("postgres: table %s, _id %s: field %q: %w", t, idString(id), e.Key(), err))
		}
		if null {
			put(i, nil)
		} else {
			s := string(text)
			put(i, &s)
		}
	}
	for i, s := range exact {
		if !t.cols[i].generated {
			put(i, &s)
		}
	}
	for _, p := range u.Unset {
		if strings.HasPrefix(p, MetaField+".") {
			continue
		}
		if i := t.byName[p]; !t.cols[i].generated {
			put(i, nil)
		}
	}
	if len(order) == 0 {
		return "", nil, nil
	}
	var sets, conds []string
	var args []any
	for _, i := range order {
		args = append(args, vals[i])
		sets = append(sets, fmt.Sprintf("%s = CAST($%d::text AS %s)", quoteIdent(t.cols[i].name), len(args), t.cols[i].typ.name))
	}
	for k, i := range t.pk {
		args = append(args, string(keys[k]))
		conds = append(conds, fmt.Sprintf("%s = CAST($%d::text AS %s)", quoteIdent(t.cols[i].name), len(args), t.cols[i].typ.name))
	}
	if t.hashID() {
		return "", nil, nil // rows without a key are only replaced whole
	}
	return fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.from(), strings.Join(sets, ", "), strings.Join(conds, " AND ")), args, nil
}
