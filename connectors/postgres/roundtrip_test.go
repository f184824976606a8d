package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// roundTripSchema is created in both databases.
var roundTripSchema = []string{
	`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
	`CREATE DOMAIN posint AS integer CHECK (VALUE > 0)`,
	`CREATE TYPE pair AS (a int, b text)`,
	`CREATE SCHEMA app`,
	`CREATE TABLE app.wide (
		id integer PRIMARY KEY,
		i2 smallint, i8 bigint, n numeric, n2 numeric(12,4), f4 real, f8 double precision, b boolean,
		t text, vc varchar(20), ch char(6), by bytea, u uuid,
		ts timestamp, tz timestamptz, d date, tm time, ttz timetz, iv interval,
		j json, jb jsonb, ia integer[], ta text[], tza timestamptz[], na numeric[], ma mood[], jba jsonb[], ia2 integer[],
		m mood, pi posint, pr pair, ip inet, cidr_ cidr, mac macaddr, pt point, rg int4range, tsr tstzrange,
		bt bit(4), vb varbit, x xml, tv tsvector, mo money,
		seq integer GENERATED ALWAYS AS IDENTITY,
		gen text GENERATED ALWAYS AS (upper(t)) STORED,
		dflt text DEFAULT 'dflt'
	)`,
	`CREATE TABLE app.comp (a text, b timestamptz, c numeric, v jsonb, PRIMARY KEY (b, a))`,
	`CREATE TABLE "Mixed Case"."Tbl.With.Dots" (id bigint PRIMARY KEY, "Val" text)`,
}

var roundTripData = []string{
	`INSERT INTO app.wide (id, i2, i8, n, n2, f4, f8, b, t, vc, ch, by, u, ts, tz, d, tm, ttz, iv, j, jb, ia, ta, tza, na, ma, jba, ia2, m, pi, pr, ip, cidr_, mac, pt, rg, tsr, bt, vb, x, tv, mo) VALUES
	(1, 1, 2, 3.5, 1.5, 1.5, 2.25, true, 'plain', 'v', 'c', '\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
	 '2024-05-01 10:00:00', '2024-05-01 10:00:00+00', '2024-05-01', '10:00', '10:00+02', '1 day', '{"a": 1}', '{"a": 1}',
	 '{1,2}', '{a,b}', '{"2024-01-01 00:00:00+00"}', '{1.5}', '{sad}', ARRAY['{"k": 1}'::jsonb], '{{1,2},{3,4}}',
	 'ok', 5, ROW(1, 'x'), '10.0.0.1', '10.0.0.0/8', '08:00:2b:01:02:03', '(1,2)', '[1,5)', '[2024-01-01,2024-02-01)',
	 B'1010', B'1', '<a>x</a>', 'a fat cat', 1.5),
	(2, -32768, -9223372036854775808, '-123456789012345678901234567890123456789.123456789012345678901234567890', 99999999.9999,
	 '-Infinity', '-0', false, E'quote " backslash \\ newline \n tab \t unicode é 日本 \u0001', 'x', 'padded', '', '00000000-0000-0000-0000-000000000000',
	 '2024-05-01 10:00:00.123456', '1969-12-31 23:59:59.999999+00', '0044-03-15 BC', '23:59:59.999999', '00:00:00.5-03:30', '-1 years +2 mons -3 days 04:05:06.789',
	 E'{ "b" : 1,\n "a" : [ 1.0 , 2e3 ], "b": "dup" }', '{"z": 1.50, "big": 123456789012345678901234567890, "null": null, "nested": {"arr": [[], {}, "s\"q"]}, "f": 1.0}',
	 '[0:2]={1,NULL,3}', '{"NULL",NULL,"",", {}\"\\"}', '{"2024-01-01 00:00:00.123456+00",NULL,infinity}', '{NaN,-Infinity,1.000000000000000000000000000000000000001}', '{}', ARRAY['null'::jsonb, '[1, 2]'::jsonb, '"s"'::jsonb], '{{NULL,2},{3,NULL}}',
	 'happy', 2147483647, ROW(NULL, ''), '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '(-1.5e300,1e-300)', 'empty', '(,2024-01-01 00:00:00.123456+00]',
	 B'0000', B'', '<?xml version="1.0" standalone="yes"?><r a="1"/>', '''quoted'' & stuff:1A', -92233720368547758.08),
	(3, NULL, NULL, 'NaN', NULL, 'NaN', 'Infinity', NULL, NULL, NULL, NULL, NULL, NULL,
	 'infinity', '-infinity', 'infinity', NULL, NULL, NULL, 'null', 'null', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	`INSERT INTO app.wide (id, i8, n, f8, t, ts, tz, d, jb, ia, m, by)
	 SELECT i, i::bigint * 1000003, (i::numeric / 7)::numeric(30,20), i / 3.0, 'row ' || i,
	   '2020-01-01'::timestamp + i * interval '1.000001 second', '2020-01-01'::timestamptz + i * interval '1.001 second',
	   '2000-01-01'::date + i, jsonb_build_object('i', i, 'half', i / 2.0, 'tags', jsonb_build_array('a', i)),
	   ARRAY[i, i + 1], (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::mood, decode(md5(i::text), 'hex')
	 FROM generate_series(10, 2500) i`,
	`INSERT INTO app.comp SELECT 'k' || (i % 7), '2024-01-01'::timestamptz + i * interval '1.000001 second', i / 3.0, jsonb_build_object('i', i)
	 FROM generate_series(1, 900) i`,
	`INSERT INTO "Mixed Case"."Tbl.With.Dots" VALUES (1, 'one'), (9223372036854775807, 'max')`,
}

// TestLosslessRoundTrip copies every table of one database into the same
// schema in another with the source and sink of this connector, then
// compares the two column by column (text output) and with EXCEPT both
// ways.
func TestLosslessRoundTrip(t *testing.T) {
	src, dst := newDB(t), newDB(t)
	schema := append([]string{}, roundTripSchema...)
	schema[len(schema)-1] = `CREATE SCHEMA "Mixed Case"`
	schema = append(schema, roundTripSchema[len(roundTripSchema)-1])
	exec(t, src, schema...)
	exec(t, dst, schema...)
	exec(t, src, roundTripData...)
	exec(t, src, "ANALYZE")

	source := configured(t, src+"&partition_rows=300&page_rows=170")
	sink := configured(t, dst)
	p := plan(t, source, sdk.PlanRequest{InitialSync: true})
	counts := map[string]int{}
	parts := map[string]int{}
	for _, part := range p.Partitions {
		parts[part.Namespace]++
		var cursor []byte
		for {
			page, err := source.ListData(context.Background(), part, cursor)
			if err != nil {
				t.Fatalf("ListData: %v", err)
			}
			if err := sink.WriteData(context.Background(), part.Namespace, page.Docs); err != nil {
				t.Fatalf("WriteData(%s): %v", part.Namespace, err)
			}
			counts[part.Namespace] += len(page.Docs)
			if len(page.NextCursor) == 0 {
				break
			}
			cursor = page.NextCursor
		}
	}
	t.Logf("copied %v in partitions %v", counts, parts)
	want := map[string]int{"app.wide": 2494, "app.comp": 900, `Mixed Case."Tbl.With.Dots"`: 2}
	for ns, n := range want {
		if counts[ns] != n {
			t.Errorf("%s: copied %d rows, want %d", ns, counts[ns], n)
		}
	}
	if parts["app.wide"] < 3 {
		t.Errorf("app.wide was planned in %d partitions; the test wants several", parts["app.wide"])
	}

	for _, tbl := range []string{"app.wide", "app.comp", `Mixed Case."Tbl.With.Dots"`} {
		compareTables(t, src, dst, tbl)
	}

	// The sink reads back exactly what the source read.
	for ns := range want {
		docs := readAll(t, source, sdk.Plan{Partitions: filterParts(p.Partitions, ns)})[ns]
		ids := make([]bson.RawValue, len(docs))
		for i, d := range docs {
			ids[i] = d.Lookup("_id")
		}
		got, err := sink.GetByIDs(context.Background(), ns, ids)
		if err != nil {
			t.Fatalf("GetByIDs(%s): %v", ns, err)
		}
		diffs := 0
		for i := range docs {
			if !bytes.Equal(got[i], docs[i]) {
				if diffs++; diffs <= 3 {
					t.Errorf("%s: _id %s: the sink's GetByIDs returns %s, the source read %s", ns, ids[i], got[i], docs[i])
				}
			}
		}
	}
}

func filterParts(ps []sdk.Partition, ns string) []sdk.Partition {
	var out []sdk.Partition
	for _, p := range ps {
		if p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out
}

// compareTables compares a table of two databases: every column's text
// output row by row, then EXCEPT both ways on a copy of the sink's rows in
// the source database.
func compareTables(t *testing.T, srcURL, dstURL, tbl string) {
	t.Helper()
	schema, name, _ := parseNamespace(tbl)
	ident := quoteIdent(schema) + "." + quoteIdent(name)
	cols := queryStrings(t, srcURL, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, ident)
	pk := queryOne(t, srcURL, `SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
		FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY k(attnum, ord), pg_attribute a
		WHERE c.conrelid = $1::regclass AND c.contype = 'p' AND a.attrelid = c.conrelid AND a.attnum = k.attnum`, ident)
	for _, c := range cols {
		col := quoteIdent(c[0])
		sql := fmt.Sprintf("SELECT (%s)::text, %s::text FROM %s ORDER BY %s", pk, col, ident, pk)
		a, b := queryStrings(t, srcURL, sql), queryStrings(t, dstURL, sql)
		if len(a) != len(b) {
			t.Errorf("%s: %d rows in the source, %d in the sink", tbl, len(a), len(b))
			return
		}
		bad := 0
		for i := range a {
			if a[i][0] != b[i][0] || a[i][1] != b[i][1] {
				if bad++; bad <= 3 {
					t.Errorf("%s column %s (%s): row %s is %q in the source, row %s is %q in the sink", tbl, c[0], c[1], a[i][0], a[i][1], b[i][0], b[i][1])
				}
			}
		}
		if bad > 3 {
			t.Errorf("%s column %s: %d rows differ", tbl, c[0], bad)
		}
	}

	// A copy of the sink's rows next to the source's, through COPY (text
	// I/O, exact), for EXCEPT.
	ctx := context.Background()
	var buf bytes.Buffer
	dconn, err := pgx.ConnectConfig(ctx, mustConfig(t, dstURL))
	if err != nil {
		t.Fatal(err)
	}
	defer dconn.Close(ctx)
	if _, err := dconn.PgConn().CopyTo(ctx, &buf, fmt.Sprintf("COPY (SELECT * FROM %s) TO STDOUT", ident)); err != nil {
		t.Fatal(err)
	}
	sconn, err := pgx.ConnectConfig(ctx, mustConfig(t, srcURL))
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close(ctx)
	if _, err := sconn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS cmp"); err != nil {
		t.Fatal(err)
	}
	copyName := "cmp." + quoteIdent(strings.ReplaceAll(schema+"_"+name, ".", "_"))
	if _, err := sconn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (LIKE %s)", copyName, ident)); err != nil {
		t.Fatal(err)
	}
	if _, err := sconn.PgConn().CopyFrom(ctx, &buf, fmt.Sprintf("COPY %s FROM STDIN", copyName)); err != nil {
		t.Fatal(err)
	}
	var sel []string
	for _, c := range cols {
		switch c[2] {
		case "json", "point", "xml", "_json", "_point", "_xml":
			sel = append(sel, quoteIdent(c[0])+"::text")
		default:
			sel = append(sel, quoteIdent(c[0]))
		}
	}
	list := strings.Join(sel, ", ")
	for _, dir := range [][2]string{{ident, copyName}, {copyName, ident}} {
		n := queryOne(t, srcURL, fmt.Sprintf("SELECT count(*) FROM (SELECT %s FROM %s EXCEPT SELECT %s FROM %s) x", list, dir[0], list, dir[1]))
		if n != "0" {
			t.Errorf("%s: %s rows of %s are not in %s", tbl, n, dir[0], dir[1])
		}
	}
}
