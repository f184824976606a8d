package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// GetByIDs returns the documents with the given _id values, in request
// order, nil where missing. Ids that cannot be keys of the table (a string
// for an integer key, a composite key with other fields) are missing. A
// missing table has no documents.
func (c *Connector) GetByIDs(ctx context.Context, namespace string, ids []bson.RawValue) ([]bson.Raw, error) {
	st, err := c.state()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := st.sourceTable(ctx, namespace)
	if errors.Is(err, errNoTable) {
		return make([]bson.Raw, len(ids)), nil
	}
	if err != nil {
		return nil, err
	}
	return st.getByIDs(ctx, st.pool, t, ids, false)
}

// keyTexts returns the text of each key column for an _id, or false when
// the id cannot be a key of t.
func (t *table) keyTexts(id bson.RawValue) ([][]byte, bool) {
	switch {
	case t.docTable:
		b, ok := docIDText(nil, t.docIDKind(), id)
		return [][]byte{b}, ok
	case t.hashID():
		s, ok := id.StringValueOK()
		return [][]byte{[]byte(s)}, ok
	case len(t.pk) == 1:
		c := &t.cols[t.pk[0]]
		b, err := appendKeyText(nil, id, c.typ)
		if err != nil || !plausibleKey(c.typ, b) {
			return nil, false
		}
		return [][]byte{b}, true
	}
	doc, ok := id.DocumentOK()
	if !ok {
		return nil, false
	}
	elems, err := doc.Elements()
	if err != nil || len(elems) != len(t.pk) {
		return nil, false
	}
	out := make([][]byte, len(t.pk))
	for _, e := range elems {
		i, ok := t.byName[e.Key()]
		if !ok || !t.cols[i].isKey {
			return nil, false
		}
		k := indexOf(t.pk, i)
		if out[k] != nil {
			return nil, false
		}
		b, err := appendKeyText([]byte{}, e.Value(), t.cols[i].typ)
		if err != nil || !plausibleKey(t.cols[i].typ, b) {
			return nil, false
		}
		out[k] = b
	}
	return out, true
}

// plausibleKey rejects key texts the server would fail to cast, for the
// types where that is cheap to tell.
func plausibleKey(t *pgType, b []byte) bool {
	switch t.kind {
	case kInt32, kInt64:
		_, ok := parseInt(b)
		return ok
	case kUUID:
		_, ok := parseUUID(b)
		return ok
	case kFloat4, kFloat8:
		_, ok := parseFloat(b, 64)
		return ok
	case kNumeric:
		_, _, _, ok := parseNumeric(b)
		return ok
	}
	return true
}

// idJoin returns "JOIN <table> t ON <key> = <parameter row k>" for a
// query over unnest(...) AS k(k0, k1, ..., ord).
func (t *table) idJoin() string {
	var conds []string
	switch {
	case t.hashID():
		conds = append(conds, fmt.Sprintf("md5(ROW(%s)::text) = k.k0", t.srcList("t")))
	default:
		for i, c := range t.pk {
			conds = append(conds, fmt.Sprintf("t.%s = CAST(k.k%d AS %s)", quoteIdent(t.cols[c].name), i, t.cols[c].typ.name))
		}
	}
	return fmt.Sprintf("JOIN %s AS t ON %s", t.from(), strings.Join(conds, " AND "))
}

// keyArity is the number of key texts of an id.
func (t *table) keyArity() int {
	if t.hashID() {
		return 1
	}
	return len(t.pk)
}

// getByIDs reads documents by id through q (lock: FOR UPDATE).
func (st *state) getByIDs(ctx context.Context, q pgxQuerier, t *table, ids []bson.RawValue, lock bool) ([]bson.Raw, error) {
	out := make([]bson.Raw, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	arity := t.keyArity()
	cols := make([][]string, arity)
	var pos []int // request positions of the parameters
	for i, id := range ids {
		texts, ok := t.keyTexts(id)
		if !ok {
			continue
		}
		for k := range arity {
			cols[k] = append(cols[k], string(texts[k]))
		}
		pos = append(pos, i)
	}
	if len(pos) == 0 {
		return out, nil
	}
	var ks, params []string
	args := []any{textResults}
	for k := range arity {
		ks = append(ks, fmt.Sprintf("k%d", k))
		params = append(params, fmt.Sprintf("$%d::text[]", k+1))
		args = append(args, cols[k])
	}
	sql := fmt.Sprintf("SELECT k.ord, %s FROM unnest(%s) WITH ORDINALITY AS k(%s, ord) %s",
		t.srcList("t"), strings.Join(params, ", "), strings.Join(ks, ", "), t.idJoin())
	if lock {
		sql += " FOR UPDATE OF t"
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		if isDataError(err) && len(pos) > 1 && !lock {
			// A key text the server cannot cast: look the ids up one by
			// one, those that fail are missing.
			for _, i := range pos {
				one, err := st.getByIDs(ctx, q, t, ids[i:i+1], false)
				if err != nil && !isDataError(err) {
					return nil, err
				}
				if err == nil {
					out[i] = one[0]
				}
			}
			return out, nil
		}
		if isDataError(err) && !lock {
			return out, nil
		}
		return nil, classify(err, "read "+t.ns+" by id")
	}
	defer rows.Close()
	vals := make([]rowVal, len(t.cols))
	for rows.Next() {
		raw := rows.RawValues()
		ord, ok := parseInt(raw[0])
		if !ok || ord < 1 || int(ord) > len(pos) {
			return nil, sdk.Fatal(fmt.Errorf("postgres: unexpected ordinality %q", raw[0]))
		}
		for k, i := range t.src {
			vals[i] = rowVal{text: raw[k+1], null: raw[k+1] == nil, set: true}
		}
		doc, err := t.appendDoc(nil, vals, st.opts.Lossless)
		if err != nil {
			return nil, sdk.Fatal(fmt.Errorf("postgres: %w", err))
		}
		out[pos[ord-1]] = doc
	}
	if err := rows.Err(); err != nil {
		if isDataError(err) && !lock {
			return out, nil
		}
		return nil, classify(err, "read "+t.ns+" by id")
	}
	return out, nil
}
