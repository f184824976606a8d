package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

const (
	// pageBytes bounds the documents of one ListData page.
	pageBytes = 4 << 20
	// sampleRowsPerPartition is how many sampled keys per partition the
	// plan draws boundaries from.
	sampleRowsPerPartition = 50
	// exactCountBytes: tables never analyzed that are smaller than this
	// are counted for their estimate.
	exactCountBytes = 64 << 20
)

var textResults = pgx.QueryResultFormats{pgx.TextFormatCode}

// sourceTable returns the table of a namespace for reading.
func (st *state) sourceTable(ctx context.Context, ns string) (*table, error) {
	if t, ok := st.srcCache.Load(ns); ok {
		return t.(*table), nil
	}
	schema, name, err := parseNamespace(ns)
	if err != nil {
		return nil, err
	}
	t, err := loadTable(ctx, st.pool, st.types, schema, name)
	if errors.Is(err, errNoTable) {
		return nil, sdk.InvalidArgument("postgres: namespace %q: %w %s.%s in database %s", ns, errNoTable, quoteIdent(schema), quoteIdent(name), st.dbName)
	}
	if err != nil {
		return nil, classify(err, "read the definition of "+ns)
	}
	t.ns = ns
	st.srcCache.Store(ns, t)
	return t, nil
}

// plannable checks that a table can be copied: a table without a primary
// key only with no_pk=replica-identity-full, and only a plain one.
func (st *state) plannable(t *table) error {
	if !t.hashID() {
		return nil
	}
	if st.opts.NoPK != NoPKReplicaIdentityFull {
		return sdk.InvalidArgument("postgres: table %s has no primary key: add one, or set no_pk=%s to copy it with rows identified by their content", t, NoPKReplicaIdentityFull)
	}
	if t.relkind == 'p' {
		return sdk.InvalidArgument("postgres: partitioned table %s has no primary key: add one (no_pk=%s covers plain tables only)", t, NoPKReplicaIdentityFull)
	}
	return nil
}

// planTables resolves the namespaces of a plan; none means every table
// with a primary key (and, with no_pk=replica-identity-full, every plain
// table without one).
func (st *state) planTables(ctx context.Context, namespaces []string) ([]*table, error) {
	if len(namespaces) > 0 {
		seen := map[string]bool{}
		var out []*table
		for _, ns := range namespaces {
			if seen[ns] {
				return nil, sdk.InvalidArgument("postgres: namespace %q is listed twice: list it once", ns)
			}
			seen[ns] = true
			t, err := st.sourceTable(ctx, ns)
			if err == nil {
				err = st.plannable(t)
			}
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		return out, nil
	}
	refs, err := listTables(ctx, st.pool)
	if err != nil {
		return nil, classify(err, "list tables")
	}
	var out []*table
	var skipped []string
	for _, r := range refs {
		ns := formatNamespace(r.schema, r.name)
		if !r.hasPK && st.opts.NoPK != NoPKReplicaIdentityFull {
			skipped = append(skipped, ns)
			continue
		}
		t, err := st.sourceTable(ctx, ns)
		if err != nil {
			return nil, err
		}
		if st.plannable(t) != nil {
			skipped = append(skipped, ns)
			continue
		}
		out = append(out, t)
	}
	if len(skipped) > 0 {
		slog.Warn("postgres: tables without a primary key are not copied: add a primary key, or set no_pk="+NoPKReplicaIdentityFull+" to copy them with rows identified by their content",
			"tables", strings.Join(skipped, ", "))
	}
	return out, nil
}

// NamespaceMetadata returns the planner's row estimate (an exact count for
// small tables that were never analyzed) and the table's size on disk.
func (c *Connector) NamespaceMetadata(ctx context.Context, namespace string) (sdk.NamespaceMetadata, error) {
	st, err := c.state()
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	t, err := st.sourceTable(ctx, namespace)
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	rows, size, err := st.estimate(ctx, t)
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	return sdk.NamespaceMetadata{Count: uint64(rows), SizeBytes: uint64(size)}, nil
}

// estimate returns a table's estimated rows and its size in bytes.
func (st *state) estimate(ctx context.Context, t *table) (rows, size int64, err error) {
	var tuples float64
	var unknown bool
	// A partitioned table's rows are in its leaf partitions.
	err = st.pool.QueryRow(ctx, `SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::float8,
			COALESCE(bool_or(c.reltuples < 0), false), COALESCE(sum(pg_table_size(c.oid)), 0)::int8
		FROM pg_class c
		WHERE c.oid = $1::oid AND c.relkind = 'r'
			OR c.oid IN (SELECT relid FROM pg_partition_tree($1::oid) WHERE isleaf)`, t.oid).Scan(&tuples, &unknown, &size)
	if err != nil {
		return 0, 0, classify(err, "estimate the size of "+t.ns)
	}
	rows = int64(tuples)
	if unknown {
		if size < exactCountBytes {
			if err := st.pool.QueryRow(ctx, "SELECT count(*) FROM "+t.from()).Scan(&rows); err != nil {
				return 0, 0, classify(err, "count the rows of "+t.ns)
			}
		} else {
			rows = size / 100
		}
	}
	return rows, size, nil
}

// GeneratePlan creates (or checks) the publication and the replication
// slot first when updates are asked for, so that the update cursor
// precedes every read of the copy; then it splits each table into
// primary-key ranges drawn from a sample of keys.
func (c *Connector) GeneratePlan(ctx context.Context, req sdk.PlanRequest) (sdk.Plan, error) {
	st, err := c.state()
	if err != nil {
		return sdk.Plan{}, err
	}
	if err := ctx.Err(); err != nil {
		return sdk.Plan{}, err
	}
	tables, err := st.planTables(ctx, req.Namespaces)
	if err != nil {
		return sdk.Plan{}, err
	}
	var plan sdk.Plan
	if req.Updates {
		cur, err := st.ensureReplication(ctx, tables, req.Namespaces)
		if err != nil {
			return sdk.Plan{}, err
		}
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.ns
		}
		plan.UpdatesPartitions = []sdk.UpdatesPartition{{Namespaces: names, Cursor: cur.encode()}}
	}
	if req.InitialSync {
		for _, t := range tables {
			parts, err := st.partitions(ctx, t)
			if err != nil {
				return sdk.Plan{}, err
			}
			plan.Partitions = append(plan.Partitions, parts...)
		}
	}
	return plan, nil
}

// partitions splits one table.
func (st *state) partitions(ctx context.Context, t *table) ([]sdk.Partition, error) {
	rows, size, err := st.estimate(ctx, t)
	if err != nil {
		return nil, err
	}
	n := int64(1)
	if rows > int64(st.opts.PartitionRows) {
		n = min((rows+int64(st.opts.PartitionRows)-1)/int64(st.opts.PartitionRows), int64(st.opts.MaxPartitions))
	}
	if t.hashID() {
		return st.blockPartitions(ctx, t, rows, size, n)
	}
	var bounds [][][]byte
	if n > 1 {
		if bounds, err = st.sampleBounds(ctx, t, rows, n); err != nil {
			return nil, err
		}
	}
	parts := make([]sdk.Partition, 0, len(bounds)+1)
	for i := 0; i <= len(bounds); i++ {
		pc := partCursor{Kind: kindPartition, V: cursorVersion, NS: t.ns}
		if i > 0 {
			pc.Lo = bounds[i-1]
		}
		if i < len(bounds) {
			pc.Hi = bounds[i]
		}
		parts = append(parts, sdk.Partition{Namespace: t.ns, Cursor: encodeCursor(pc), EstimatedCount: uint64(rows) / uint64(len(bounds)+1)})
	}
	return parts, nil
}

// sampleBounds draws n-1 distinct partition boundaries (key texts, in key
// order) from a random sample of keys.
func (st *state) sampleBounds(ctx context.Context, t *table, rows, n int64) ([][][]byte, error) {
	want := float64(n * sampleRowsPerPartition)
	pct := math.Min(100, math.Max(0.0001, want/float64(rows)*100*1.5))
	method := "BERNOULLI"
	if rows > 1_000_000 {
		method = "SYSTEM"
	}
	keys := t.keyList("")
	sql := fmt.Sprintf("SELECT %s FROM %s TABLESAMPLE %s (%s) ORDER BY %s", keys, t.from(), method,
		strconv.FormatFloat(pct, 'f', -1, 64), keys)
	r, err := st.pool.Query(ctx, sql, textResults)
	if err != nil {
		return nil, classify(err, "sample the keys of "+t.ns)
	}
	var sample [][][]byte
	for r.Next() {
		raw := r.RawValues()
		key := make([][]byte, len(raw))
		for i, v := range raw {
			key[i] = append([]byte{}, v...)
		}
		sample = append(sample, key)
	}
	r.Close()
	if err := r.Err(); err != nil {
		return nil, classify(err, "sample the keys of "+t.ns)
	}
	if int64(len(sample)) < n {
		n = int64(len(sample))
	}
	var bounds [][][]byte
	for i := int64(1); i < n; i++ {
		b := sample[i*int64(len(sample))/n]
		if len(bounds) > 0 && equalKey(bounds[len(bounds)-1], b) {
			continue
		}
		bounds = append(bounds, b)
	}
	return bounds, nil
}

func equalKey(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}

// blockPartitions splits a table without a primary key into ranges of
// heap blocks.
func (st *state) blockPartitions(ctx context.Context, t *table, rows, size, n int64) ([]sdk.Partition, error) {
	var blocks, blockSize int64
	if err := st.pool.QueryRow(ctx, "SELECT pg_relation_size($1::oid) / current_setting('block_size')::int8, current_setting('block_size')::int8", t.oid).Scan(&blocks, &blockSize); err != nil {
		return nil, classify(err, "read the size of "+t.ns)
	}
	rowsPerBlock := int64(1)
	if blocks > 0 && rows > 0 {
		rowsPerBlock = max(1, rows/blocks)
	}
	bpp := max(1, int64(st.opts.PageRows)/rowsPerBlock)
	n = max(1, min(n, blocks))
	var parts []sdk.Partition
	for i := int64(0); i < n; i++ {
		lo, hi := blocks*i/n, blocks*(i+1)/n
		if i == n-1 {
			hi = -1
		}
		pc := partCursor{Kind: kindPartition, V: cursorVersion, NS: t.ns, Blocks: &[2]int64{lo, hi}, BlocksPerPage: bpp}
		parts = append(parts, sdk.Partition{Namespace: t.ns, Cursor: encodeCursor(pc), EstimatedCount: uint64(rows / n)})
	}
	return parts, nil
}

// keyList lists the key columns, qualified with alias when not empty.
func (t *table) keyList(alias string) string {
	var b strings.Builder
	for i, k := range t.pk {
		if i > 0 {
			b.WriteString(", ")
		}
		if alias != "" {
			b.WriteString(alias + ".")
		}
		b.WriteString(quoteIdent(t.cols[k].name))
	}
	return b.String()
}

// srcList lists the source columns, qualified with alias when not empty.
func (t *table) srcList(alias string) string {
	var b strings.Builder
	for i, k := range t.src {
		if i > 0 {
			b.WriteString(", ")
		}
		if alias != "" {
			b.WriteString(alias + ".")
		}
		b.WriteString(quoteIdent(t.cols[k].name))
	}
	return b.String()
}

// keyParams returns "(CAST($n::text AS type), ...)" for the key columns,
// parameters numbered from first.
func (t *table) keyParams(first int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, k := range t.pk {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "CAST($%d::text AS %s)", first+i, t.cols[k].typ.name)
	}
	b.WriteByte(')')
	return b.String()
}

// ListData reads the page of p after cursor in key order, with a keyset
// query per page: the cursor is the last key returned, so it stays valid
// across restarts, and no transaction is held open between pages.
func (c *Connector) ListData(ctx context.Context, p sdk.Partition, cursor []byte) (sdk.Page, error) {
	st, err := c.state()
	if err != nil {
		return sdk.Page{}, err
	}
	var pc partCursor
	if err := decodeCursor(p.Cursor, kindPartition, "partition", &pc); err != nil {
		return sdk.Page{}, err
	}
	if pc.NS != p.Namespace {
		return sdk.Page{}, sdk.InvalidArgument("postgres: partition of namespace %q has the cursor of %q: pass the partition as planned", p.Namespace, pc.NS)
	}
	var after *pageCursor
	if len(cursor) > 0 {
		after = new(pageCursor)
		if err := decodeCursor(cursor, kindPage, "page", after); err != nil {
			return sdk.Page{}, err
		}
	}
	t, err := st.sourceTable(ctx, p.Namespace)
	if err != nil {
		return sdk.Page{}, err
	}
	if pc.Blocks != nil {
		if !t.hashID() {
			return sdk.Page{}, sdk.FailedPrecondition(fmt.Errorf("postgres: table %s has a primary key now, but was planned without one: plan the flow again (--reset)", t))
		}
		return st.listBlocks(ctx, t, pc, after)
	}
	if t.hashID() {
		return sdk.Page{}, sdk.FailedPrecondition(fmt.Errorf("postgres: table %s has no primary key any more: plan the flow again (--reset)", t))
	}
	for _, k := range [][][]byte{pc.Lo, pc.Hi} {
		if k != nil && len(k) != len(t.pk) {
			return sdk.Page{}, sdk.FailedPrecondition(fmt.Errorf("postgres: the primary key of %s has changed since the plan: plan the flow again (--reset)", t))
		}
	}
	if after != nil && len(after.After) != len(t.pk) {
		return sdk.Page{}, sdk.InvalidArgument("postgres: page cursor does not match the primary key of %s", t)
	}
	var conds []string
	var args []any
	args = append(args, textResults)
	switch {
	case after != nil:
		conds = append(conds, fmt.Sprintf("(%s) > %s", t.keyList(""), t.keyParams(len(args))))
		for _, v := range after.After {
			args = append(args, string(v))
		}
	case pc.Lo != nil:
		conds = append(conds, fmt.Sprintf("(%s) >= %s", t.keyList(""), t.keyParams(len(args))))
		for _, v := range pc.Lo {
			args = append(args, string(v))
		}
	}
	if pc.Hi != nil {
		conds = append(conds, fmt.Sprintf("(%s) < %s", t.keyList(""), t.keyParams(len(args))))
		for _, v := range pc.Hi {
			args = append(args, string(v))
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	sql := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT %d", t.srcList(""), t.from(), where, t.keyList(""), st.opts.PageRows)
	rows, err := st.pool.Query(ctx, sql, args...)
	if err != nil {
		return sdk.Page{}, classify(err, "read "+t.ns)
	}
	defer rows.Close()
	var page sdk.Page
	vals := make([]rowVal, len(t.cols))
	// One buffer for the page; documents are capped slices of it, which
	// stay valid when it grows.
	var buf []byte
	n, bytes := 0, 0
	full := false
	var last [][]byte
	for rows.Next() {
		raw := rows.RawValues()
		for k, i := range t.src {
			vals[i] = rowVal{text: raw[k], null: raw[k] == nil, set: true}
		}
		start := len(buf)
		if buf, err = t.appendDoc(buf, vals, st.opts.Lossless); err != nil {
			return sdk.Page{}, sdk.Fatal(fmt.Errorf("postgres: %w", err))
		}
		page.Docs = append(page.Docs, bson.Raw(buf[start:len(buf):len(buf)]))
		n++
		bytes += len(buf) - start
		// Raw values are only valid until the next row: copy the key.
		last = last[:0]
		for _, k := range t.pk {
			last = append(last, append([]byte{}, raw[indexOf(t.src, k)]...))
		}
		if bytes >= pageBytes && n < st.opts.PageRows {
			full = true
			break
		}
	}
	if !full {
		if err := rows.Err(); err != nil {
			return sdk.Page{}, classify(err, "read "+t.ns)
		}
	}
	if n == st.opts.PageRows || full {
		pcur := pageCursor{Kind: kindPage, V: cursorVersion}
		pcur.After = last
		page.NextCursor = encodeCursor(pcur)
	}
	return page, nil
}

func indexOf(xs []int, x int) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// listBlocks reads a page of a table without a primary key: the rows of a
// window of heap blocks after the cursor's tuple, in tuple order.
func (st *state) listBlocks(ctx context.Context, t *table, pc partCursor, after *pageCursor) (sdk.Page, error) {
	lo, hi := pc.Blocks[0], pc.Blocks[1]
	fromBlock, fromOff := lo, int64(0)
	if after != nil {
		fromBlock, fromOff = after.Block, after.Offset
	}
	if hi < 0 {
		var blocks int64
		if err := st.pool.QueryRow(ctx, "SELECT pg_relation_size($1::oid) / current_setting('block_size')::int8", t.oid).Scan(&blocks); err != nil {
			return sdk.Page{}, classify(err, "read the size of "+t.ns)
		}
		hi = blocks
	}
	if fromBlock >= hi {
		return sdk.Page{}, nil
	}
	end := min(fromBlock+max(pc.BlocksPerPage, 1), hi)
	sql := fmt.Sprintf("SELECT ctid::text, %s FROM %s WHERE ctid > $1::tid AND ctid < $2::tid ORDER BY ctid", t.srcList(""), t.from())
	rows, err := st.pool.Query(ctx, sql, textResults, fmt.Sprintf("(%d,%d)", fromBlock, fromOff), fmt.Sprintf("(%d,0)", end))
	if err != nil {
		return sdk.Page{}, classify(err, "read "+t.ns)
	}
	defer rows.Close()
	var page sdk.Page
	vals := make([]rowVal, len(t.cols))
	bytes := 0
	var lastTID []byte
	full := false
	for rows.Next() {
		raw := rows.RawValues()
		for k, i := range t.src {
			vals[i] = rowVal{text: raw[k+1], null: raw[k+1] == nil, set: true}
		}
		doc, err := t.appendDoc(nil, vals, st.opts.Lossless)
		if err != nil {
			return sdk.Page{}, sdk.Fatal(fmt.Errorf("postgres: %w", err))
		}
		page.Docs = append(page.Docs, doc)
		bytes += len(doc)
		lastTID = append(lastTID[:0], raw[0]...)
		if bytes >= pageBytes {
			full = true
			break
		}
	}
	if !full {
		if err := rows.Err(); err != nil {
			return sdk.Page{}, classify(err, "read "+t.ns)
		}
	}
	next := pageCursor{Kind: kindPage, V: cursorVersion, Block: end}
	if full {
		var b, o int64
		if _, err := fmt.Sscanf(string(lastTID), "(%d,%d)", &b, &o); err != nil {
			return sdk.Page{}, sdk.Fatal(fmt.Errorf("postgres: unexpected ctid %q", lastTID))
		}
		next.Block, next.Offset = b, o
	}
	if next.Block >= hi && !full && pc.Blocks[1] >= 0 {
		return page, nil
	}
	page.NextCursor = encodeCursor(next)
	return page, nil
}
