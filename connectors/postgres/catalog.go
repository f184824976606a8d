package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// parseNamespace splits "schema.table". A part may be double-quoted (with
// "" for a quote) when it contains a dot.
func parseNamespace(ns string) (schema, table string, err error) {
	parts, ok := splitQuoted(ns)
	if !ok || len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", sdk.InvalidArgument("postgres: namespace %q is not schema.table (quote a part that contains a dot: \"my.schema\".table)", ns)
	}
	return parts[0], parts[1], nil
}

func splitQuoted(s string) ([]string, bool) {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '"':
			if i+1 < len(s) && s[i+1] == '"' {
				cur.WriteByte('"')
				i++
				continue
			}
			quoted = false
		case !quoted && c == '"' && cur.Len() == 0:
			quoted = true
		case !quoted && c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, false
	}
	return append(parts, cur.String()), true
}

// formatNamespace is the inverse of parseNamespace.
func formatNamespace(schema, table string) string {
	q := func(s string) string {
		if strings.ContainsAny(s, `."`) {
			return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
		}
		return s
	}
	return q(schema) + "." + q(table)
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// column is a column of a table.
type column struct {
	name      string
	typ       *pgType
	generated bool // GENERATED ALWAYS AS (...) STORED
	identity  byte // 'a' GENERATED ALWAYS AS IDENTITY, 'd' BY DEFAULT, 0
	notNull   bool
	isKey     bool
}

// table is what the connector knows of a table.
type table struct {
	ns        string
	schema    string
	name      string
	oid       uint32
	relkind   byte // 'r' table, 'p' partitioned table
	replIdent byte // 'd' default, 'f' full, 'i' index, 'n' nothing
	cols      []column
	pk        []int // indexes into cols, in key order
	// src are the columns a source reads, in order: every column but the
	// generated ones (logical replication does not send those either).
	src []int
	// byName maps column names to indexes into cols.
	byName map[string]int
	// docTable: exactly (_id primary key, doc jsonb); its documents are
	// the doc column's.
	docTable bool
	comment  string
}

// ident is the quoted schema-qualified name.
func (t *table) ident() string { return quoteIdent(t.schema) + "." + quoteIdent(t.name) }

// from is the FROM item that reads the table's own rows: ONLY for plain
// tables (inheritance children are tables of their own), every partition
// for a partitioned table.
func (t *table) from() string {
	if t.relkind == 'p' {
		return t.ident()
	}
	return "ONLY " + t.ident()
}

// hashID reports whether rows are identified by their content (no primary
// key).
func (t *table) hashID() bool { return len(t.pk) == 0 }

func (t *table) String() string { return t.ident() }

// errNoTable is returned by loadTable for a missing table.
var errNoTable = errors.New("no such table")

// loadTable reads a table's definition from the catalog.
func loadTable(ctx context.Context, q pgxQuerier, types *typeRegistry, schema, name string) (*table, error) {
	t := &table{ns: formatNamespace(schema, name), schema: schema, name: name, byName: map[string]int{}}
	var relkind, replIdent string
	var comment *string
	err := q.QueryRow(ctx, `SELECT c.oid, c.relkind::text, c.relreplident::text, obj_description(c.oid, 'pg_class')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, name).
		Scan(&t.oid, &relkind, &replIdent, &comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoTable
	}
	if err != nil {
		return nil, err
	}
	t.relkind, t.replIdent = relkind[0], replIdent[0]
	if comment != nil {
		t.comment = *comment
	}
	rows, err := q.Query(ctx, `SELECT a.attname, a.atttypid, a.attgenerated::text, a.attidentity::text, a.attnotnull,
			COALESCE((SELECT k.ord FROM pg_constraint p, unnest(p.conkey) WITH ORDINALITY AS k(attnum, ord)
				WHERE p.conrelid = a.attrelid AND p.contype = 'p' AND k.attnum = a.attnum), 0)
		FROM pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, t.oid)
	if err != nil {
		return nil, err
	}
	type colRow struct {
		name        string
		typ         uint32
		gen, ident  string
		notNull     bool
		keyPosition int64
	}
	var crs []colRow
	for rows.Next() {
		var r colRow
		if err := rows.Scan(&r.name, &r.typ, &r.gen, &r.ident, &r.notNull, &r.keyPosition); err != nil {
			rows.Close()
			return nil, err
		}
		crs = append(crs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	keyAt := map[int64]int{}
	for i, r := range crs {
		typ, err := types.resolve(ctx, q, r.typ)
		if err != nil {
			return nil, err
		}
		c := column{name: r.name, typ: typ, generated: r.gen != "", notNull: r.notNull, isKey: r.keyPosition > 0}
		if r.ident != "" {
			c.identity = r.ident[0]
		}
		t.cols = append(t.cols, c)
		t.byName[r.name] = i
		if r.keyPosition > 0 {
			keyAt[r.keyPosition] = i
		}
		if !c.generated {
			t.src = append(t.src, i)
		}
	}
	for k := int64(1); k <= int64(len(keyAt)); k++ {
		t.pk = append(t.pk, keyAt[k])
	}
	t.docTable = len(t.cols) == 2 && len(t.pk) == 1 && t.cols[t.pk[0]].name == "_id" &&
		t.cols[1-t.pk[0]].name == "doc" && t.cols[1-t.pk[0]].typ.kind == kJSONB
	return t, nil
}

// pgxQuerier is what catalog reads need from a pool, a connection or a
// transaction.
type pgxQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// tableRef is a table of a default plan.
type tableRef struct {
	schema, name string
	hasPK        bool
}

// listTables returns every plain or partitioned table in non-system
// schemas that is not a partition and does not belong to an extension.
func listTables(ctx context.Context, q pgxQuerier) ([]tableRef, error) {
	rows, err := q.Query(ctx, `SELECT n.nspname, c.relname,
			EXISTS (SELECT 1 FROM pg_constraint p WHERE p.conrelid = c.oid AND p.contype = 'p')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
			AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
			AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
				AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tableRef
	for rows.Next() {
		var r tableRef
		if err := rows.Scan(&r.schema, &r.name, &r.hasPK); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// idString names a document for error messages: its _id as Extended
// JSON.
func idString(v bson.RawValue) string {
	if v.Type == 0 {
		return "?"
	}
	doc, err := bson.Marshal(bson.D{{Key: "v", Value: v}})
	if err != nil {
		return v.String()
	}
	b, err := bson.MarshalExtJSON(bson.Raw(doc), false, false)
	if err != nil || len(b) < 6 {
		return v.String()
	}
	return string(b[5 : len(b)-1])
}
