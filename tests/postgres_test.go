package tests

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/dsyncio/dsync/connectors/postgres"
	"github.com/dsyncio/dsync/internal/testserver/pg"
)

// The PostgreSQL tests run dsync between two throwaway clusters, A and B,
// holding the same schema: three tables with a bigint, a composite and a
// uuid primary key, and columns of the types whose values have no exact
// BSON form (numerics of more than 34 digits, timestamps with
// microseconds, jsonb, bytea, arrays with NULLs and other bounds, enums,
// TOASTed text). A seeded writer changes A during and after the copy; B
// must then equal A byte for byte (COPY text output ordered by key) and
// `dsync verify A B` must find no difference.

// pgSchema is created in both databases.
var pgSchema = []string{
	`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ecstatic')`,
	`CREATE TABLE items (
		id bigint PRIMARY KEY,
		qty integer, amount numeric, at timestamptz, meta jsonb, blob bytea,
		tags text[], scores integer[], mood mood, note text, big text,
		ratio double precision, active boolean, day date)`,
	`CREATE TABLE lines (
		region text, id integer,
		qty smallint, price numeric(60,25), at timestamp, attrs jsonb, moods mood[], note text,
		PRIMARY KEY (region, id))`,
	`CREATE TABLE events (
		id uuid PRIMARY KEY,
		seq bigint, kind mood, payload jsonb, data bytea, at timestamptz,
		grid integer[], amounts numeric[], note text)`,
}

// pgTable describes a table of pgSchema for the writer and the comparison.
type pgTable struct {
	name string
	pk   []pgColumn
	cols []pgColumn // the other columns, in table order
}

type pgColumn struct {
	name, typ string
	gen       func(r *rand.Rand) any // a value as PostgreSQL text, or nil for NULL
}

var pgTables = []*pgTable{
	{
		name: "items",
		pk:   []pgColumn{{name: "id", typ: "bigint"}},
		cols: []pgColumn{
			{"qty", "integer", pgGenInt},
			{"amount", "numeric", pgGenNumeric},
			{"at", "timestamptz", pgGenTimestamptz},
			{"meta", "jsonb", pgGenJSON},
			{"blob", "bytea", pgGenBytea},
			{"tags", "text[]", pgGenTextArray},
			{"scores", "integer[]", pgGenIntArray},
			{"mood", "mood", pgGenMood},
			{"note", "text", pgGenText},
			{"big", "text", pgGenBig},
			{"ratio", "double precision", pgGenFloat},
			{"active", "boolean", pgGenBool},
			{"day", "date", pgGenDate},
		},
	},
	{
		name: "lines",
		pk:   []pgColumn{{name: "region", typ: "text"}, {name: "id", typ: "integer"}},
		cols: []pgColumn{
			{"qty", "smallint", pgGenSmallint},
			{"price", "numeric(60,25)", pgGenPrice},
			{"at", "timestamp", pgGenTimestamp},
			{"attrs", "jsonb", pgGenJSON},
			{"moods", "mood[]", pgGenMoodArray},
			{"note", "text", pgGenText},
		},
	},
	{
		name: "events",
		pk:   []pgColumn{{name: "id", typ: "uuid"}},
		cols: []pgColumn{
			{"seq", "bigint", pgGenBigint},
			{"kind", "mood", pgGenMood},
			{"payload", "jsonb", pgGenJSON},
			{"data", "bytea", pgGenBytea},
			{"at", "timestamptz", pgGenTimestamptz},
			{"grid", "integer[]", pgGenGrid},
			{"amounts", "numeric[]", pgGenNumericArray},
			{"note", "text", pgGenText},
		},
	},
}

func (tb *pgTable) pkList() string {
	var names []string
	for _, c := range tb.pk {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

// pgCast is the placeholder $n converted from text to the column's type.
func pgCast(n int, typ string) string { return fmt.Sprintf("$%d::text::%s", n, typ) }

// where is "pk1 = $n AND pk2 = $n+1 ...".
func (tb *pgTable) where(first int) string {
	var conds []string
	for i, c := range tb.pk {
		conds = append(conds, c.name+" = "+pgCast(first+i, c.typ))
	}
	return strings.Join(conds, " AND ")
}

func (tb *pgTable) insertSQL() string {
	var names, vals []string
	for i, c := range append(slices.Clone(tb.pk), tb.cols...) {
		names = append(names, c.name)
		vals = append(vals, pgCast(i+1, c.typ))
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", tb.name, strings.Join(names, ", "), strings.Join(vals, ", "))
}

// ---- Value generators: PostgreSQL input text, nil for NULL. ----

var pgWords = []string{"a", "b c", "NULL", "", "x,y", `q"t`, `b\s`, "é日本", "{brace}", "tab\there", "new\nline", "  spaced  "}

func pgGenInt(r *rand.Rand) any {
	if r.IntN(10) == 0 {
		return nil
	}
	return strconv.Itoa(int(r.Int32()) - r.IntN(1<<31))
}

func pgGenSmallint(r *rand.Rand) any {
	if r.IntN(10) == 0 {
		return nil
	}
	return strconv.Itoa(r.IntN(65536) - 32768)
}

func pgGenBigint(r *rand.Rand) any {
	if r.IntN(10) == 0 {
		return nil
	}
	return strconv.FormatInt(int64(r.Uint64()), 10)
}

func pgDigits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	if n > 1 && b[0] == '0' {
		b[0] = '7'
	}
	return string(b)
}

// pgGenNumeric: mostly more than 34 significant digits, some with trailing
// zeros (the scale is kept), NaN and infinities.
func pgGenNumeric(r *rand.Rand) any {
	switch r.IntN(20) {
	case 0:
		return nil
	case 1:
		return "NaN"
	case 2:
		return "Infinity"
	case 3:
		return "-Infinity"
	case 4:
		return "1.500"
	case 5:
		return "-0.000000000000000000000000000000000000000001"
	}
	s := pgDigits(r, 1+r.IntN(40)) + "." + pgDigits(r, 1+r.IntN(25))
	if r.IntN(2) == 0 {
		s = "-" + s
	}
	return s
}

// pgGenPrice fits numeric(60,25): up to 35 integer digits.
func pgGenPrice(r *rand.Rand) any {
	if r.IntN(10) == 0 {
		return nil
	}
	return pgDigits(r, 1+r.IntN(35)) + "." + pgDigits(r, 25)
}

var pgTimeOrigin = time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC)

func pgGenTime(r *rand.Rand) time.Time {
	return pgTimeOrigin.Add(time.Duration(r.Int64N(int64(40*365*24*time.Hour/time.Microsecond))) * time.Microsecond)
}

func pgGenTimestamptz(r *rand.Rand) any {
	switch r.IntN(30) {
	case 0:
		return nil
	case 1:
		return "infinity"
	case 2:
		return "-infinity"
	}
	return pgGenTime(r).Format("2006-01-02 15:04:05.000000") + "+00"
}

func pgGenTimestamp(r *rand.Rand) any {
	if r.IntN(20) == 0 {
		return nil
	}
	return pgGenTime(r).Format("2006-01-02 15:04:05.000000")
}

func pgGenDate(r *rand.Rand) any {
	switch r.IntN(30) {
	case 0:
		return nil
	case 1:
		return "0044-03-15 BC"
	case 2:
		return "infinity"
	}
	return pgGenTime(r).Format("2006-01-02")
}

func pgGenFloat(r *rand.Rand) any {
	switch r.IntN(30) {
	case 0:
		return nil
	case 1:
		return "NaN"
	case 2:
		return "-Infinity"
	case 3:
		return "-0"
	}
	return strconv.FormatFloat(r.NormFloat64()*1e6, 'g', -1, 64)
}

func pgGenBool(r *rand.Rand) any {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return "t"
	}
	return "f"
}

var pgMoods = []string{"sad", "ok", "happy", "ecstatic"}

func pgGenMood(r *rand.Rand) any {
	if r.IntN(8) == 0 {
		return nil
	}
	return pgMoods[r.IntN(len(pgMoods))]
}

func pgGenText(r *rand.Rand) any {
	if r.IntN(3) == 0 {
		return nil
	}
	return pgWords[r.IntN(len(pgWords))] + " " + strconv.Itoa(r.IntN(1e6)) + ` \ "`
}

// pgGenBig is mostly NULL, else 3000 to 6000 characters that do not
// compress: stored out of line (TOAST), so that updates of other columns
// leave it unchanged in the replication stream.
func pgGenBig(r *rand.Rand) any {
	if r.IntN(4) != 0 {
		return nil
	}
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 3000+r.IntN(3000))
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return string(b)
}

func pgGenBytea(r *rand.Rand) any {
	if r.IntN(8) == 0 {
		return nil
	}
	b := make([]byte, r.IntN(64))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return `\x` + hex.EncodeToString(b)
}

func pgArrayQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func pgGenTextArray(r *rand.Rand) any {
	if r.IntN(10) == 0 {
		return nil
	}
	var el []string
	for range r.IntN(5) {
		if r.IntN(5) == 0 {
			el = append(el, "NULL")
		} else {
			el = append(el, pgArrayQuote(pgWords[r.IntN(len(pgWords))]))
		}
	}
	return "{" + strings.Join(el, ",") + "}"
}

func pgIntElems(r *rand.Rand, n int) []string {
	var el []string
	for range n {
		if r.IntN(6) == 0 {
			el = append(el, "NULL")
		} else {
			el = append(el, strconv.Itoa(r.IntN(2000)-1000))
		}
	}
	return el
}

// pgGenIntArray: some arrays have a lower bound other than 1.
func pgGenIntArray(r *rand.Rand) any {
	if r.IntN(10) == 0 {
		return nil
	}
	n := r.IntN(5)
	s := "{" + strings.Join(pgIntElems(r, n), ",") + "}"
	if n > 0 && r.IntN(5) == 0 {
		s = fmt.Sprintf("[0:%d]=%s", n-1, s)
	}
	return s
}

// pgGenGrid: two-dimensional arrays.
func pgGenGrid(r *rand.Rand) any {
	switch r.IntN(8) {
	case 0:
		return nil
	case 1:
		return "{}"
	}
	rows, cols := 1+r.IntN(3), 1+r.IntN(3)
	var rs []string
	for range rows {
		rs = append(rs, "{"+strings.Join(pgIntElems(r, cols), ",")+"}")
	}
	return "{" + strings.Join(rs, ",") + "}"
}

func pgGenNumericArray(r *rand.Rand) any {
	if r.IntN(8) == 0 {
		return nil
	}
	var el []string
	for range r.IntN(4) {
		switch r.IntN(6) {
		case 0:
			el = append(el, "NULL")
		case 1:
			el = append(el, "NaN")
		case 2:
			el = append(el, "1.50")
		default:
			el = append(el, pgDigits(r, 1+r.IntN(38))+"."+pgDigits(r, 1+r.IntN(6)))
		}
	}
	return "{" + strings.Join(el, ",") + "}"
}

func pgGenMoodArray(r *rand.Rand) any {
	if r.IntN(8) == 0 {
		return nil
	}
	var el []string
	for range r.IntN(4) {
		if r.IntN(6) == 0 {
			el = append(el, "NULL")
		} else {
			el = append(el, pgMoods[r.IntN(len(pgMoods))])
		}
	}
	return "{" + strings.Join(el, ",") + "}"
}

// pgGenJSON: objects, arrays, scalars and JSON null at the top, numbers
// written 1.50, 2.5e10 and beyond int64, strings with escapes.
func pgGenJSON(r *rand.Rand) any {
	switch r.IntN(20) {
	case 0:
		return nil
	case 1:
		return "null"
	case 2:
		return `"just a string"`
	case 3:
		return "123.450"
	}
	return pgJSONValue(r, 0, true)
}

func pgJSONValue(r *rand.Rand, depth int, object bool) string {
	if object || (depth < 2 && r.IntN(4) == 0) {
		if !object && r.IntN(2) == 0 {
			var el []string
			for range r.IntN(4) {
				el = append(el, pgJSONValue(r, depth+1, false))
			}
			return "[" + strings.Join(el, ", ") + "]"
		}
		var kv []string
		for range r.IntN(5) {
			k := []string{"a", "b", "n", "s", "nested", "é", "with space", "quo\\\"te"}[r.IntN(8)]
			kv = append(kv, `"`+k+`": `+pgJSONValue(r, depth+1, false))
		}
		return "{" + strings.Join(kv, ", ") + "}"
	}
	switch r.IntN(9) {
	case 0:
		return "null"
	case 1:
		return "true"
	case 2:
		return "false"
	case 3:
		return "1.50"
	case 4:
		return "2.5e10"
	case 5:
		return pgDigits(r, 30)
	case 6:
		return strconv.Itoa(r.IntN(1e6) - 5e5)
	case 7:
		return `"q\"uote \\ é \n \u0041"`
	}
	return `"` + strconv.Itoa(r.IntN(100)) + `"`
}

func pgGenUUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ---- The writer. ----

// pgKeySet is a set of primary keys (as their text values) with random
// picks.
type pgKeySet struct {
	keys [][]string
	pos  map[string]int
}

func pgKeyOf(k []string) string { return strings.Join(k, "\x00") }

func (s *pgKeySet) add(k []string) {
	if s.pos == nil {
		s.pos = map[string]int{}
	}
	s.pos[pgKeyOf(k)] = len(s.keys)
	s.keys = append(s.keys, k)
}

func (s *pgKeySet) remove(k []string) {
	i := s.pos[pgKeyOf(k)]
	last := s.keys[len(s.keys)-1]
	s.keys[i] = last
	s.pos[pgKeyOf(last)] = i
	s.keys = s.keys[:len(s.keys)-1]
	delete(s.pos, pgKeyOf(k))
}

func (s *pgKeySet) pick(r *rand.Rand) []string { return s.keys[r.IntN(len(s.keys))] }

// pgWriter changes the three tables of A with a seeded generator: inserts,
// updates of some columns (often leaving a TOASTed column unchanged),
// primary key changes and deletes, in transactions of one to five
// statements across tables, and now and then a transaction updating
// thousands of rows of two tables.
type pgWriter struct {
	rng      *rand.Rand
	keys     []pgKeySet // per table of pgTables
	nextItem int64
	nextLine int
	regions  []string

	// Counts by kind: insert, update, pk, delete (single-row statements),
	// and rows changed by bulk statements.
	mu     sync.Mutex
	counts map[string]int
	ops    int // single-row statements committed
	// history lists the statements of each row, by table and key (the
	// key's columns joined by tabs, as in COPY output): "insert@12" is
	// the insert of statement 12. Failures show the history of rows that
	// differ.
	history map[string][]string
	seeding bool
}

func newPGWriter(seed uint64) *pgWriter {
	return &pgWriter{
		rng:     rand.New(rand.NewPCG(seed, seed^0x5eed)),
		keys:    make([]pgKeySet, len(pgTables)),
		regions: []string{"eu", "us", "ap", "eu west", "ÜBER"},
		counts:  map[string]int{},
	}
}

type pgStmt struct {
	sql  string
	args []any
	kind string
	tbl  int
	// keys are the rows the statement changes: the key, and for a key
	// change the new key first.
	keys [][]string
}

func (w *pgWriter) newKey(ti int) []string {
	switch pgTables[ti].name {
	case "items":
		w.nextItem++
		return []string{strconv.FormatInt(w.nextItem*7919, 10)}
	case "lines":
		w.nextLine++
		return []string{w.regions[w.rng.IntN(len(w.regions))], strconv.Itoa(w.nextLine)}
	default:
		return []string{pgGenUUID(w.rng)}
	}
}

func pgAnys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (w *pgWriter) insert(ti int) pgStmt {
	tb := pgTables[ti]
	k := w.newKey(ti)
	args := pgAnys(k)
	for _, c := range tb.cols {
		args = append(args, c.gen(w.rng))
	}
	w.keys[ti].add(k)
	return pgStmt{sql: tb.insertSQL(), args: args, kind: "insert", tbl: ti, keys: [][]string{k}}
}

// next returns the next single-row statement, on a random table.
func (w *pgWriter) next() pgStmt {
	ti := w.rng.IntN(len(pgTables))
	tb := pgTables[ti]
	ks := &w.keys[ti]
	n := w.rng.IntN(100)
	switch {
	case n < 30 || len(ks.keys) < 50:
		return w.insert(ti)
	case n < 45:
		k := ks.pick(w.rng)
		ks.remove(k)
		return pgStmt{sql: fmt.Sprintf("DELETE FROM %s WHERE %s", tb.name, tb.where(1)), args: pgAnys(k), kind: "delete", tbl: ti, keys: [][]string{k}}
	case n < 50:
		// A new primary key; the other columns stay (a TOASTed one among
		// them).
		old := ks.pick(w.rng)
		nu := w.newKey(ti)
		ks.remove(old)
		ks.add(nu)
		var sets []string
		for i, c := range tb.pk {
			sets = append(sets, c.name+" = "+pgCast(i+1, c.typ))
		}
		return pgStmt{sql: fmt.Sprintf("UPDATE %s SET %s WHERE %s", tb.name, strings.Join(sets, ", "), tb.where(len(tb.pk)+1)),
			args: append(pgAnys(nu), pgAnys(old)...), kind: "pk", tbl: ti, keys: [][]string{nu, old}}
	default:
		// Some columns; the TOASTed column "big" is rarely among them.
		k := ks.pick(w.rng)
		var sets []string
		var args []any
		for _, c := range tb.cols {
			p := 4
			if c.name == "big" {
				p = 20
			}
			if w.rng.IntN(p) == 0 {
				args = append(args, c.gen(w.rng))
				sets = append(sets, c.name+" = "+pgCast(len(args), c.typ))
			}
		}
		if len(sets) == 0 {
			c := tb.cols[0]
			args = append(args, c.gen(w.rng))
			sets = append(sets, c.name+" = "+pgCast(1, c.typ))
		}
		return pgStmt{sql: fmt.Sprintf("UPDATE %s SET %s WHERE %s", tb.name, strings.Join(sets, ", "), tb.where(len(args)+1)),
			args: append(args, pgAnys(k)...), kind: "update", tbl: ti, keys: [][]string{k}}
	}
}

// bulk returns the statements of a large transaction: more changes than a
// change batch holds (1000), across two tables, the TOASTed column left
// unchanged.
func (w *pgWriter) bulk(k int) []pgStmt {
	if k%2 == 0 {
		return []pgStmt{
			{sql: "UPDATE lines SET qty = (coalesce(qty, 0) % 1000) + 1, note = coalesce(note, '') || '+' WHERE id % 2 = 0", kind: "bulk"},
			{sql: "UPDATE events SET seq = coalesce(seq, 0) / 2 + 1 WHERE kind IS NOT NULL", kind: "bulk"},
		}
	}
	return []pgStmt{
		{sql: "UPDATE items SET qty = coalesce(qty, 0) / 2 + 1, active = NOT coalesce(active, false)", kind: "bulk"},
		{sql: "UPDATE lines SET at = at + interval '1.000001 second' WHERE at IS NOT NULL", kind: "bulk"},
	}
}

// exec runs stmts in one transaction (a batch: one round trip).
func (w *pgWriter) exec(ctx context.Context, conn *pgx.Conn, stmts []pgStmt) error {
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
	br := conn.SendBatch(ctx, b)
	affected := make([]int64, len(stmts))
	for i, s := range stmts {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return fmt.Errorf("%s: %w", s.sql, err)
		}
		affected[i] = tag.RowsAffected()
		if s.kind != "bulk" && affected[i] != 1 {
			br.Close()
			return fmt.Errorf("%s %v: %d rows changed, want 1", s.sql, s.args, affected[i])
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, s := range stmts {
		if s.kind == "bulk" {
			w.counts["bulk rows"] += int(affected[i])
			continue
		}
		w.counts[s.kind]++
		w.ops++
		if w.history == nil {
			w.history = map[string][]string{}
		}
		for j, k := range s.keys {
			h := pgTables[s.tbl].name + " " + strings.Join(k, "\t")
			what := s.kind
			if s.kind == "pk" && j == 0 {
				what = "pk-from-" + strings.Join(s.keys[1], "/")
			} else if s.kind == "pk" {
				what = "pk-to-" + strings.Join(s.keys[0], "/")
			}
			if slices.ContainsFunc(s.args, func(a any) bool { v, ok := a.(string); return ok && len(v) > 2000 }) {
				what += "+big" // a TOASTed value written
			}
			if w.seeding {
				what = "seed"
			}
			w.history[h] = append(w.history[h], fmt.Sprintf("%s@%d", what, w.ops))
		}
	}
	return nil
}

// historyOf returns the history of the row of a COPY output line.
func (w *pgWriter) historyOf(table, line string) string {
	n := 1
	if table == "lines" {
		n = 2
	}
	f := strings.SplitN(line, "\t", n+1)
	if len(f) < n {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.history[table+" "+strings.Join(f[:n], "\t")]
	out := strings.Join(h, " ")
	// And the history of the row before its key changed.
	for _, e := range h {
		if from, ok := strings.CutPrefix(e, "pk-from-"); ok {
			from, _, _ = strings.Cut(from, "@")
			out += fmt.Sprintf(" (%s: %s)", from, strings.Join(w.history[table+" "+strings.ReplaceAll(from, "/", "\t")], " "))
		}
	}
	return out
}

// seed inserts n rows into each table.
func (w *pgWriter) seed(t testing.TB, url string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	w.seeding = true
	defer func() { w.seeding = false }()
	for ti := range pgTables {
		for done := 0; done < n; {
			var stmts []pgStmt
			for ; done < n && len(stmts) < 500; done++ {
				stmts = append(stmts, w.insert(ti))
			}
			if err := w.exec(ctx, conn, stmts); err != nil {
				t.Fatalf("seed %s: %v", pgTables[ti].name, err)
			}
		}
	}
	w.mu.Lock()
	w.counts = map[string]int{}
	w.ops = 0
	w.mu.Unlock()
}

// run applies n single-row statements at about rate per second, with a
// bulk transaction at each third; it returns at the first error.
func (w *pgWriter) run(ctx context.Context, url string, n, rate int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	begin := time.Now()
	for done, bulks := 0, 0; done < n; {
		if bulks < 2 && done >= (bulks+1)*n/3 {
			if err := w.exec(ctx, conn, w.bulk(bulks)); err != nil {
				return err
			}
			bulks++
		}
		size := 1 + w.rng.IntN(3)*w.rng.IntN(3) // 1 to 5, mostly 1 or 2
		var stmts []pgStmt
		for ; len(stmts) < size && done < n; done++ {
			stmts = append(stmts, w.next())
		}
		if err := w.exec(ctx, conn, stmts); err != nil {
			return err
		}
		if ahead := time.Duration(done)*time.Second/time.Duration(rate) - time.Since(begin); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	return nil
}

// start runs run in a goroutine; the returned function waits for it.
func (w *pgWriter) start(t testing.TB, url string, n, rate int) (wait func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.run(ctx, url, n, rate) }()
	var once sync.Once
	var err error
	wait = func() error {
		once.Do(func() { err = <-errc; cancel() })
		return err
	}
	t.Cleanup(func() { cancel(); _ = wait() })
	return wait
}

func (w *pgWriter) done() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ops
}

func (w *pgWriter) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d single-row statements (%d inserts, %d updates, %d key changes, %d deletes) and %d rows of bulk updates",
		w.ops, w.counts["insert"], w.counts["update"], w.counts["pk"], w.counts["delete"], w.counts["bulk rows"])
}

// ---- Clusters, queries and the comparison. ----

// pgPair is a source database on cluster A and a sink database on cluster
// B with pgSchema.
type pgPair struct {
	a, b     *pg.Cluster
	src, dst string // URLs
}

func newPGPair(t *testing.T) pgPair {
	t.Helper()
	p := pgPair{a: pg.Start(t), b: pg.Start(t)}
	p.src, p.dst = p.a.CreateDB("shop"), p.b.CreateDB("shop")
	p.a.Exec("shop", pgSchema...)
	p.b.Exec("shop", pgSchema...)
	return p
}

// pgRows runs a query and returns its rows as text (NULL as "<null>").
func pgRows(t testing.TB, url, sql string, args ...any) [][]string {
	t.Helper()
	rows, err := pgRowsErr(url, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return rows
}

func pgRowsErr(url, sql string, args ...any) ([][]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := rows.RawValues()
		row := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = "<null>"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// pgDump is the table's COPY text output ordered by primary key.
func pgDump(ctx context.Context, url string, tb *pgTable) ([]byte, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var buf bytes.Buffer
	_, err = conn.PgConn().CopyTo(ctx, &buf, fmt.Sprintf("COPY (SELECT * FROM %s ORDER BY %s) TO STDOUT", tb.name, tb.pkList()))
	return buf.Bytes(), err
}

// pgDiff compares the dumps of every table of src and dst; it returns the
// row counts of src, and the differences (at most a few lines per table,
// with the writer's history of their rows when w is not nil).
func pgDiff(src, dst string, w *pgWriter) (map[string]int, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	counts := map[string]int{}
	var diffs []string
	for _, tb := range pgTables {
		a, err := pgDump(ctx, src, tb)
		if err != nil {
			return nil, nil, fmt.Errorf("dump %s of A: %w", tb.name, err)
		}
		b, err := pgDump(ctx, dst, tb)
		if err != nil {
			return nil, nil, fmt.Errorf("dump %s of B: %w", tb.name, err)
		}
		al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
		counts[tb.name] = len(al) - 1
		if bytes.Equal(a, b) {
			continue
		}
		diffs = append(diffs, fmt.Sprintf("%s: %d rows in A, %d in B", tb.name, len(al)-1, len(bl)-1))
		// The first differing lines, by key order.
		shown := 0
		for i := 0; i < max(len(al), len(bl)) && shown < 3; i++ {
			var x, y string
			if i < len(al) {
				x = al[i]
			}
			if i < len(bl) {
				y = bl[i]
			}
			if x != y {
				diffs = append(diffs, fmt.Sprintf("  line %d\n    A: %.400s\n    B: %.400s", i+1, x, y))
				if w != nil {
					diffs = append(diffs, fmt.Sprintf("    history of A's row: %s\n    history of B's row: %s",
						w.historyOf(tb.name, x), w.historyOf(tb.name, y)))
				}
				shown++
			}
		}
	}
	return counts, diffs, nil
}

// pgSame fails the test unless dst holds exactly the rows of src, and
// returns the row counts.
func pgSame(t testing.TB, src, dst string, w *pgWriter) map[string]int {
	t.Helper()
	counts, diffs, err := pgDiff(src, dst, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("B differs from A (COPY text, ordered by key):\n%s", strings.Join(diffs, "\n"))
	}
	return counts
}

// pgLogProblems logs the warnings and errors of dsync's log in dir when the
// test has failed.
func pgLogProblems(t testing.TB, dir string) {
	t.Helper()
	if !t.Failed() {
		return
	}
	b, _ := os.ReadFile(dir + "/log")
	var lines []string
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	t.Logf("warnings and errors in the log (%d):\n%s", len(lines), strings.Join(lines[:min(len(lines), 30)], "\n"))
}

// pgSyncArgs is `dsync sync A B --mode full` with the test's state
// directory and log; the source has small pages and partitions so that
// the copy checkpoints often.
func pgSyncArgs(dir, src, dst string, extra ...string) []string {
	return append([]string{"sync", src + "&page_rows=200&partition_rows=1000", dst, "--mode", "full",
		"--parallel", "3", "--state-dir", dir + "/state", "--progress", "json", "--log-file", dir + "/log"}, extra...)
}

// pgCutOver runs the flow with --until-lag 1s to its cut-over and returns the
// final cursor.
func pgCutOver(t testing.TB, args []string) (result, string) {
	t.Helper()
	r := mustRun(t, runTimeout, append(slices.Clone(args), "--until-lag", "1s")...)
	cuts := cutovers(r.stdout)
	if final := finalProgress(t, r.stdout); final.Phase != "done" || len(cuts) != 1 {
		t.Fatalf("the run did not cut over with one final cursor:\n%s", r)
	}
	return r, cuts[0].Cursor
}

// pgCursorLSN decodes a stored or printed (hex) update cursor of the
// postgres source.
func pgCursorLSN(t testing.TB, cursor []byte) (pglogrepl.LSN, postgres.Replication) {
	t.Helper()
	rep, err := postgres.ReplicationOf(cursor)
	if err != nil {
		t.Fatalf("update cursor %q: %v", cursor, err)
	}
	lsn, err := pglogrepl.ParseLSN(rep.LSN)
	if err != nil {
		t.Fatalf("update cursor %q: LSN %q: %v", cursor, rep.LSN, err)
	}
	return lsn, rep
}

func pgHexCursorLSN(t testing.TB, printed string) (pglogrepl.LSN, postgres.Replication) {
	t.Helper()
	b, err := hex.DecodeString(printed)
	if err != nil {
		t.Fatalf("printed cursor %q is not hex: %v", printed, err)
	}
	return pgCursorLSN(t, b)
}

// pgStoredCursor reads the flow's checkpointed update cursor; ok is false
// before the plan is stored.
func pgStoredCursor(t testing.TB, stateDir string) (lsn pglogrepl.LSN, rep postgres.Replication, fl flowSnapshot, ok bool) {
	t.Helper()
	flows := snapshotState(t, stateDir)
	if len(flows) == 0 {
		return 0, rep, fl, false
	}
	if len(flows) != 1 || len(flows[0].Updates) != 1 {
		t.Fatalf("want one flow with one update stream: %s", describeState(flows))
	}
	fl = flows[0]
	lsn, rep = pgCursorLSN(t, fl.Updates[0].Cursor)
	return lsn, rep, fl, true
}

// pgSlots lists the replication slots of a cluster: name, database,
// confirmed_flush_lsn, restart_lsn.
func pgSlots(t testing.TB, url string) [][]string {
	t.Helper()
	return pgRows(t, url, "SELECT slot_name, coalesce(database::text, ''), coalesce(confirmed_flush_lsn::text, ''), coalesce(restart_lsn::text, '') FROM pg_replication_slots ORDER BY slot_name")
}

func pgPublications(t testing.TB, url string) [][]string {
	t.Helper()
	return pgRows(t, url, "SELECT pubname FROM pg_publication ORDER BY pubname")
}

// pgSlotWatch polls the confirmed_flush_lsn of the replication slots of a
// database every 10 ms and keeps the greatest value seen since the last
// take.
type pgSlotWatch struct {
	mu      sync.Mutex
	max     pglogrepl.LSN
	slot    string
	polls   int
	errs    int
	lastErr error

	stop, done chan struct{}
}

func pgWatchSlots(t testing.TB, url string) *pgSlotWatch {
	w := &pgSlotWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop(url)
	t.Cleanup(w.close)
	return w
}

func (w *pgSlotWatch) loop(url string) {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.stop
		cancel()
	}()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if conn == nil {
			c, err := pgx.Connect(ctx, url)
			if err == nil {
				conn = c
			}
		}
		if conn != nil {
			err := w.poll(ctx, conn)
			if err != nil && ctx.Err() == nil {
				conn.Close(context.Background())
				conn = nil
				w.mu.Lock()
				w.errs++
				w.lastErr = err
				w.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *pgSlotWatch) poll(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, "SELECT slot_name, confirmed_flush_lsn::text FROM pg_replication_slots WHERE database = current_database() AND confirmed_flush_lsn IS NOT NULL")
	if err != nil {
		return err
	}
	defer rows.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	for rows.Next() {
		var name, text string
		if err := rows.Scan(&name, &text); err != nil {
			return err
		}
		lsn, err := pglogrepl.ParseLSN(text)
		if err != nil {
			return err
		}
		if w.slot != "" && w.slot != name {
			return fmt.Errorf("a second slot %s beside %s", name, w.slot)
		}
		w.slot = name
		w.max = max(w.max, lsn)
	}
	return rows.Err()
}

// take returns the greatest confirmed_flush_lsn seen since the last take
// (0: no slot yet) and the slot's name.
func (w *pgSlotWatch) take() (pglogrepl.LSN, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.max
	w.max = 0
	return m, w.slot
}

func (w *pgSlotWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// ---- The tests. ----

// Sizes of the load tests: pgSeedRows rows per table, then pgOps
// single-row statements (and two bulk transactions of thousands of rows)
// at pgRate per second.
const (
	pgSeedRows = 3000
	pgOps      = 21000
	pgRate     = 2500
)

func pgSeed(t testing.TB) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DSYNC_E2E_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("DSYNC_E2E_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (rerun with DSYNC_E2E_SEED=%d)", seed, seed)
	return seed
}

// pgVerify runs `dsync verify A B` (exit 0: identical) and checks that it
// created no slot or publication on either side.
func pgVerify(t testing.TB, dir string, p pgPair) {
	t.Helper()
	slotsA, slotsB := pgSlots(t, p.src), pgSlots(t, p.dst)
	pubsA, pubsB := pgPublications(t, p.src), pgPublications(t, p.dst)
	r := run(t, runTimeout, verifyCmd(dir, p.src, p.dst)...)
	if r.code != 0 {
		t.Errorf("dsync verify A B: want exit 0 (identical):\n%s", r)
	}
	if got := pgSlots(t, p.src); !slices.EqualFunc(got, slotsA, slices.Equal) {
		t.Errorf("verify changed the replication slots of A: %q, then %q", slotsA, got)
	}
	if got := pgSlots(t, p.dst); !slices.EqualFunc(got, slotsB, slices.Equal) {
		t.Errorf("verify changed the replication slots of B: %q, then %q", slotsB, got)
	}
	if got := pgPublications(t, p.src); !slices.EqualFunc(got, pubsA, slices.Equal) {
		t.Errorf("verify changed the publications of A: %q, then %q", pubsA, got)
	}
	if got := pgPublications(t, p.dst); !slices.EqualFunc(got, pubsB, slices.Equal) {
		t.Errorf("verify changed the publications of B: %q, then %q", pubsB, got)
	}
}

// TestPostgresCDCUnderLoad: a full sync from A to B while a writer applies
// 21,000 single-row changes and two bulk transactions during and after the
// copy; the run is stopped with SIGINT once the writer is done and rerun
// with --until-lag 1s, which cuts over. B then equals A row for row.
func TestPostgresCDCUnderLoad(t *testing.T) {
	p := newPGPair(t)
	dir := t.TempDir()
	defer pgLogProblems(t, dir)
	w := newPGWriter(pgSeed(t))
	w.seed(t, p.src, pgSeedRows)

	args := pgSyncArgs(dir, p.src, p.dst)
	wait := w.start(t, p.src, pgOps, pgRate)
	proc := start(t, args...)
	proc.waitLine(time.Minute, "a progress line of phase cdc", phaseIs("cdc"))
	atCDC := w.done()
	if err := wait(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("writer: %s; %d of them committed when the first CDC progress line appeared", w.summary(), atCDC)
	if atCDC == 0 || atCDC >= pgOps {
		t.Errorf("%d of %d writes done when CDC started: want writes during and after the copy", atCDC, pgOps)
	}
	if proc.exited() {
		t.Fatalf("dsync exited while streaming: %s", proc.res)
	}
	proc.signal(syscall.SIGINT)
	if r := proc.wait(time.Minute); r.code != 0 {
		t.Fatalf("dsync after SIGINT: %s", r)
	}
	proc.sessionGone(10 * time.Second)

	r, cursor := pgCutOver(t, args)
	final := finalProgress(t, r.stdout)
	lsn, rep := pgHexCursorLSN(t, cursor)
	t.Logf("cut over in %s at %s (slot %s), %d change events in the last run",
		r.elapsed.Round(time.Millisecond), lsn, rep.Slot, final.CDCEvents)
	counts := pgSame(t, p.src, p.dst, w)
	t.Logf("rows: %v", counts)

	// The slot was acknowledged up to the cut-over cursor, never past it.
	stored, _, _, _ := pgStoredCursor(t, dir+"/state")
	confirmed, err := pglogrepl.ParseLSN(pgRows(t, p.src, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", rep.Slot)[0][0])
	if err != nil {
		t.Fatal(err)
	}
	if stored != lsn || confirmed > lsn {
		t.Errorf("printed cursor at %s, stored at %s, slot confirmed at %s: want the same cursor, and the slot not past it", lsn, stored, confirmed)
	}
	pgVerify(t, dir, p)
}

// TestPostgresCrash: the same flow with the coordinator killed five times
// (twice during the copy, when B holds a random share of the rows, three
// times during CDC), rerun each time; the last run cuts over once the
// writer is done. B ends equal to A. Throughout, A's slot is polled every
// 10 ms: its confirmed_flush_lsn must never pass the checkpointed update
// cursor. The store can be read only while no dsync runs (a run holds its
// lock), so after each kill the slot's position, and the greatest one
// polled during the run, are compared with the cursor that survived the
// kill; checkpoints only move forward, so no earlier one was smaller.
func TestPostgresCrash(t *testing.T) {
	p := newPGPair(t)
	dir := t.TempDir()
	defer pgLogProblems(t, dir)
	seed := pgSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c))
	w := newPGWriter(seed)
	w.seed(t, p.src, pgSeedRows)
	args := pgSyncArgs(dir, p.src, p.dst)
	watch := pgWatchSlots(t, p.src)
	seeded := len(pgTables) * pgSeedRows

	ctx := context.Background()
	bconn, err := pgx.Connect(ctx, p.dst)
	if err != nil {
		t.Fatal(err)
	}
	defer bconn.Close(ctx)
	rowsOfB := func() int {
		var n int
		err := bconn.QueryRow(ctx, "SELECT (SELECT count(*) FROM items) + (SELECT count(*) FROM lines) + (SELECT count(*) FROM events)").Scan(&n)
		if err != nil {
			t.Fatalf("count the rows of B: %v", err)
		}
		return n
	}

	type kill struct {
		after     time.Duration
		target    string
		phase     string
		rowsB     int
		ckpt      pglogrepl.LSN
		confirmed pglogrepl.LSN // slot after the kill
		maxSeen   pglogrepl.LSN // greatest polled during the run
		events    uint64
		writes    int
	}
	var kills []kill
	var slot string
	check := func(k *kill, what string) {
		t.Helper()
		seen, name := watch.take()
		lsn, rep, fl, ok := pgStoredCursor(t, dir+"/state")
		if name != "" {
			slot = name
		}
		k.maxSeen, k.phase = seen, "unplanned"
		if !ok {
			return
		}
		k.ckpt, k.phase = lsn, fl.Meta.Phase
		for _, u := range fl.Updates {
			k.events += u.Events
		}
		if slot != "" && rep.Slot != slot {
			t.Errorf("%s: the stored cursor names slot %s, the database has %s", what, rep.Slot, slot)
		}
		now := pgRows(t, p.src, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", rep.Slot)
		if len(now) != 1 {
			t.Fatalf("%s: slot %s of the stored cursor is missing: %q", what, rep.Slot, pgSlots(t, p.src))
		}
		if k.confirmed, _ = pglogrepl.ParseLSN(now[0][0]); k.confirmed > lsn {
			t.Errorf("%s: slot %s confirmed at %s, past the checkpointed cursor %s", what, rep.Slot, k.confirmed, lsn)
		}
		if seen > lsn {
			t.Errorf("%s: slot %s was confirmed up to %s during the run, past the checkpointed cursor %s", what, rep.Slot, seen, lsn)
		}
	}

	wait := w.start(t, p.src, pgOps, pgRate)
	for i := range 5 {
		proc := start(t, args...)
		k := kill{}
		if i < 2 {
			// During the copy: once B holds a random share of the rows
			// it does not hold yet.
			have := rowsOfB()
			want := have + (seeded-have)*(15+rng.IntN(35))/100
			k.target = fmt.Sprintf("copy, B at %d rows", want)
			deadline := time.Now().Add(time.Minute)
			for rowsOfB() < want && !proc.exited() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		} else {
			d := time.Duration(rng.IntN(1500)) * time.Millisecond
			k.target = fmt.Sprintf("cdc + %s", d)
			proc.waitLine(time.Minute, "a progress line of phase cdc", phaseIs("cdc"))
			time.Sleep(d)
		}
		if proc.exited() {
			t.Fatalf("run %d ended before it was killed: %s", i+1, proc.res)
		}
		proc.signal(syscall.SIGKILL)
		k.after = time.Since(proc.started)
		k.writes = w.done()
		if r := proc.wait(10 * time.Second); r.code != -int(syscall.SIGKILL) {
			t.Fatalf("run %d: killed dsync exited with %d", i+1, r.code)
		}
		proc.sessionGone(10 * time.Second)
		k.rowsB = rowsOfB()
		check(&k, fmt.Sprintf("kill %d", i+1))
		kills = append(kills, k)
	}
	if err := wait(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("writer: %s", w.summary())

	r, cursor := pgCutOver(t, args)
	end := kill{after: r.elapsed, target: "cut-over", writes: w.done(), rowsB: rowsOfB()}
	check(&end, "final run")
	printed, _ := pgHexCursorLSN(t, cursor)
	if printed != end.ckpt {
		t.Errorf("final cursor printed at %s, stored at %s", printed, end.ckpt)
	}
	counts := pgSame(t, p.src, p.dst, w)

	copyKills, cdcKills := 0, 0
	for i, k := range append(kills, end) {
		switch k.phase {
		case "copy":
			copyKills++
		case "cdc":
			cdcKills++
		}
		label := fmt.Sprintf("kill %d", i+1)
		if i == len(kills) {
			label = "final"
		}
		t.Logf("%-6s at %6s (%s): stored phase %s, %d writes done, %d rows in B, %d events checkpointed; "+
			"checkpoint %s, slot after %s, greatest polled %s",
			label, k.after.Round(time.Millisecond), k.target, k.phase, k.writes, k.rowsB, k.events, k.ckpt, k.confirmed, k.maxSeen)
	}
	if copyKills < 1 || cdcKills < 3 {
		t.Errorf("%d kills landed in the copy and %d in CDC; want at least 1 and 3", copyKills, cdcKills)
	}
	watch.mu.Lock()
	polls, errs, lastErr := watch.polls, watch.errs, watch.lastErr
	watch.mu.Unlock()
	t.Logf("slot %s polled %d times (%d errors, last %v); rows: %v", slot, polls, errs, lastErr, counts)
	if polls < 100 || errs > 0 {
		t.Errorf("the slot was polled %d times, with %d errors (last %v)", polls, errs, lastErr)
	}

	// `dsync state show --json` shows the same cursor as the store.
	fl := onlyFlow(t, dir+"/state")
	out := mustRun(t, time.Minute, "state", "show", fl.Meta.ID, "--json", "--state-dir", dir+"/state")
	var shown struct {
		Updates []struct {
			Cursor string `json:"cursor"`
		} `json:"updates"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &shown); err != nil || len(shown.Updates) != 1 {
		t.Fatalf("state show --json: %v:\n%s", err, out.stdout)
	}
	if lsn, _ := pgHexCursorLSN(t, shown.Updates[0].Cursor); lsn != end.ckpt {
		t.Errorf("state show --json: cursor at %s, want %s", lsn, end.ckpt)
	}
	pgVerify(t, dir, p)
}

// TestPostgresOutage: the source cluster is stopped for 10 s while the flow
// streams changes, and started again on the same port; the same dsync
// process recovers by itself, applies the changes made before and after
// the outage, and B ends equal to A.
func TestPostgresOutage(t *testing.T) {
	p := newPGPair(t)
	dir := t.TempDir()
	defer pgLogProblems(t, dir)
	w := newPGWriter(pgSeed(t))
	w.seed(t, p.src, 1500)
	args := pgSyncArgs(dir, p.src, p.dst)
	proc := start(t, args...)
	if err := w.start(t, p.src, 6000, pgRate)(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	proc.waitLine(time.Minute, "a progress line of phase cdc", phaseIs("cdc"))
	before := w.summary()

	// A transaction of every item, and the outage right after its commit,
	// while its changes stream (a fast shutdown sends them first).
	p.a.Exec("shop", "UPDATE items SET qty = coalesce(qty, 0) % 1000 + 1")
	p.a.Stop()
	stopped := time.Now()
	time.Sleep(10 * time.Second)
	if proc.exited() {
		t.Fatalf("dsync exited during the outage: %s", proc.res)
	}
	p.a.Start()
	t.Logf("source down for %s", time.Since(stopped).Round(time.Millisecond))
	if err := w.start(t, p.src, 6000, pgRate)(); err != nil {
		t.Fatalf("writer after the outage: %v", err)
	}
	t.Logf("writer: before the outage %s; in all %s", before, w.summary())

	// The running dsync catches up by itself.
	deadline := time.Now().Add(90 * time.Second)
	var diffs []string
	for {
		if proc.exited() {
			t.Fatalf("dsync exited after the outage: %s", proc.res)
		}
		var err error
		if _, diffs, err = pgDiff(p.src, p.dst, w); err != nil {
			t.Fatal(err)
		}
		if len(diffs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B does not equal A 90 s after the outage:\n%s", strings.Join(diffs, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	caughtUp := time.Since(stopped)
	proc.signal(syscall.SIGINT)
	if r := proc.wait(time.Minute); r.code != 0 {
		t.Fatalf("dsync after SIGINT: %s", r)
	}
	proc.sessionGone(10 * time.Second)
	log, err := os.ReadFile(dir + "/log")
	if err != nil {
		t.Fatal(err)
	}
	// The stream's retries: "update stream interrupted ... attempt=N".
	attempts := 0
	for line := range strings.Lines(string(log)) {
		if !strings.Contains(line, "update stream interrupted") {
			continue
		}
		_, a, _ := strings.Cut(line, " attempt=")
		a, _, _ = strings.Cut(a, " ")
		n, _ := strconv.Atoi(a)
		attempts = max(attempts, n)
	}
	t.Logf("B equal to A %s after the source stopped; the update stream was reopened after up to %d consecutive failures",
		caughtUp.Round(time.Millisecond), attempts)
	if attempts == 0 {
		t.Errorf("the log does not show the update stream interrupted by the outage")
	}
	pgSame(t, p.src, p.dst, w)
	pgVerify(t, dir, p)
}

// pgFlowID returns the only flow of the state directory.
func pgFlowID(t testing.TB, stateDir string) string {
	t.Helper()
	r := mustRun(t, time.Minute, "state", "list", "--json", "--state-dir", stateDir)
	var f struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("state list --json: want one flow: %v\n%s", err, r.stdout)
	}
	return f.ID
}

// TestPostgresReplicationNames: a flow given an existing slot and
// publication (--pg-slot, --pg-publication) uses them and creates none;
// `dsync state reset` does not offer to drop them. A flow with names of its
// own: reset prints how to drop them, and reset --drop-replication --source
// drops them.
func TestPostgresReplicationNames(t *testing.T) {
	c := pg.Start(t)
	src, dst1, dst2 := c.CreateDB("src"), c.CreateDB("dst1"), c.CreateDB("dst2")
	schema := "CREATE TABLE t (id integer PRIMARY KEY, v text)"
	c.Exec("src", schema,
		"CREATE PUBLICATION my_pub FOR TABLE t",
		"SELECT pg_create_logical_replication_slot('my_slot', 'pgoutput')",
		"INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 500) i")
	c.Exec("dst1", schema)
	c.Exec("dst2", schema)
	created := pgRows(t, src, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'my_slot'")[0][0]
	// Changes after the slot's position, streamed again by CDC.
	c.Exec("src", "UPDATE t SET v = v || '!' WHERE id % 3 = 0", "DELETE FROM t WHERE id % 7 = 0")

	t.Run("given", func(t *testing.T) {
		dir := t.TempDir()
		args := []string{"sync", src, dst1, "--mode", "full", "--pg-slot", "my_slot", "--pg-publication", "my_pub",
			"--state-dir", dir + "/state", "--progress", "json", "--log-file", dir + "/log"}
		_, cursor := pgCutOver(t, args)
		lsn, rep := pgHexCursorLSN(t, cursor)
		if rep.Slot != "my_slot" || rep.Publication != "my_pub" || rep.SlotOwned || rep.PublicationOwned {
			t.Errorf("final cursor names %+v, want my_slot and my_pub, not owned", rep)
		}
		if got := pgSlots(t, src); len(got) != 1 || got[0][0] != "my_slot" {
			t.Errorf("slots of the cluster: %q, want my_slot only", got)
		} else if confirmed, _ := pglogrepl.ParseLSN(got[0][2]); got[0][2] == created || confirmed > lsn {
			t.Errorf("my_slot confirmed at %s (created at %s, final cursor %s): want it moved, not past the cursor", got[0][2], created, lsn)
		}
		if got := pgPublications(t, src); len(got) != 1 || got[0][0] != "my_pub" {
			t.Errorf("publications of src: %q, want my_pub only", got)
		}
		pgTableSame(t, src, dst1, "t")

		id := pgFlowID(t, dir+"/state")
		r := mustRun(t, time.Minute, "state", "reset", id, "--state-dir", dir+"/state")
		if !strings.Contains(r.stdout, "flow "+id+" reset") || strings.Contains(r.stdout, "slot") ||
			strings.Contains(r.stdout, "publication") || strings.Contains(r.stdout, "drop") {
			t.Errorf("state reset of a flow with a given slot and publication printed:\n%s", r.stdout)
		}
		if got := pgSlots(t, src); len(got) != 1 || got[0][0] != "my_slot" {
			t.Errorf("after state reset, slots: %q, want my_slot", got)
		}
	})

	t.Run("owned", func(t *testing.T) {
		dir := t.TempDir()
		args := []string{"sync", src, dst2, "--mode", "full",
			"--state-dir", dir + "/state", "--progress", "json", "--log-file", dir + "/log"}
		_, cursor := pgCutOver(t, args)
		_, rep := pgHexCursorLSN(t, cursor)
		if !strings.HasPrefix(rep.Slot, "dsync_") || !strings.HasPrefix(rep.Publication, "dsync_") || !rep.SlotOwned || !rep.PublicationOwned {
			t.Fatalf("final cursor names %+v, want a slot and a publication of dsync's own", rep)
		}
		has := func(rows [][]string, name string) bool {
			return slices.ContainsFunc(rows, func(r []string) bool { return r[0] == name })
		}
		if !has(pgSlots(t, src), rep.Slot) || !has(pgPublications(t, src), rep.Publication) {
			t.Fatalf("slot %s or publication %s missing: %q %q", rep.Slot, rep.Publication, pgSlots(t, src), pgPublications(t, src))
		}
		pgTableSame(t, src, dst2, "t")

		id := pgFlowID(t, dir+"/state")
		r := mustRun(t, time.Minute, "state", "reset", id, "--state-dir", dir+"/state")
		for _, want := range []string{"flow " + id + " reset", rep.Slot, rep.Publication, "--drop-replication",
			fmt.Sprintf("pg_drop_replication_slot('%s')", rep.Slot)} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("state reset of a flow with its own slot: output lacks %q:\n%s", want, r.stdout)
			}
		}
		if !has(pgSlots(t, src), rep.Slot) || !has(pgPublications(t, src), rep.Publication) {
			t.Errorf("state reset without --drop-replication dropped slot %s or publication %s", rep.Slot, rep.Publication)
		}

		// The same command again plans anew and uses the slot it finds.
		pgCutOver(t, args)
		if got := pgFlowID(t, dir+"/state"); got != id {
			t.Errorf("flow %s after the reset, want %s", got, id)
		}
		r = mustRun(t, time.Minute, "state", "reset", id, "--drop-replication", "--source", src, "--state-dir", dir+"/state")
		if !strings.Contains(r.stdout, fmt.Sprintf("dropped replication slot %q and publication %q", rep.Slot, rep.Publication)) {
			t.Errorf("state reset --drop-replication printed:\n%s", r.stdout)
		}
		if has(pgSlots(t, src), rep.Slot) || has(pgPublications(t, src), rep.Publication) {
			t.Errorf("after state reset --drop-replication: slots %q, publications %q", pgSlots(t, src), pgPublications(t, src))
		}
		if !has(pgSlots(t, src), "my_slot") || !has(pgPublications(t, src), "my_pub") {
			t.Errorf("state reset --drop-replication of another flow dropped my_slot or my_pub: %q %q", pgSlots(t, src), pgPublications(t, src))
		}
	})
}

// pgTableSame compares one table of two databases (COPY text ordered by
// its first column).
func pgTableSame(t testing.TB, a, b, table string) {
	t.Helper()
	tb := &pgTable{name: table, pk: []pgColumn{{name: "1"}}}
	ctx := context.Background()
	da, err := pgDump(ctx, a, tb)
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgDump(ctx, b, tb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, db) || len(da) == 0 {
		t.Errorf("table %s: %d bytes of rows in A, %d in B, not equal", table, len(da), len(db))
	}
}

// TestPostgresVerifyNoReplication: `dsync verify A B` between two
// PostgreSQL databases creates no replication slot or publication, and
// finds a difference when there is one.
func TestPostgresVerifyNoReplication(t *testing.T) {
	c := pg.Start(t)
	a, b := c.CreateDB("a"), c.CreateDB("b")
	for _, db := range []string{"a", "b"} {
		c.Exec(db, pgSchema...)
	}
	w := newPGWriter(1)
	w.seed(t, a, 300)
	w = newPGWriter(1)
	w.seed(t, b, 300)
	dir := t.TempDir()
	pgVerify(t, dir, pgPair{a: c, b: c, src: a, dst: b})
	if got := pgSlots(t, a); len(got) != 0 {
		t.Errorf("slots after verify: %q", got)
	}
	c.Exec("b", "UPDATE events SET note = 'changed' WHERE id = (SELECT id FROM events ORDER BY id LIMIT 1)")
	r := run(t, runTimeout, verifyCmd(dir, a, b)...)
	if r.code != 1 {
		t.Errorf("verify of databases that differ in one row: want exit 1:\n%s", r)
	}
	if got := pgSlots(t, a); len(got) != 0 {
		t.Errorf("slots after verify: %q", got)
	}
	if pa, pb := pgPublications(t, a), pgPublications(t, b); len(pa)+len(pb) != 0 {
		t.Errorf("publications after verify: %q, %q", pa, pb)
	}
}
