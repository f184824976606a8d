package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dsyncio/dsync/sdk"
)

// Replication names the replication slot and publication of an update
// cursor, and whether dsync owns them (derived their names), which is when
// it may drop them.
type Replication struct {
	Slot             string
	Publication      string
	SlotOwned        bool
	PublicationOwned bool
	// LSN is the cursor's position, e.g. "0/16B3748".
	LSN string
}

// ReplicationOf returns the slot and publication an update cursor (from a
// plan's update partition or a stream) refers to, for tools that clean up
// after a flow.
func ReplicationOf(cursor []byte) (Replication, error) {
	c, err := decodeUpdCursor(cursor)
	if err != nil {
		return Replication{}, err
	}
	return c.replication(), nil
}

// DropReplication drops a replication slot and a publication (either name
// may be empty) of the database at url, if they exist. A slot in use by a
// live session is not dropped: that fails with a retryable error. It is
// meant for resetting a flow, and for slots and publications dsync owns.
func DropReplication(ctx context.Context, url, slot, publication string) error {
	_, pgxURL, err := parseConfig(url, nil)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, pgxURL)
	if err != nil {
		return connectError(err)
	}
	defer conn.Close(context.Background())
	if slot != "" {
		_, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
		if err != nil {
			return classify(err, "drop replication slot "+slot)
		}
	}
	if publication != "" {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteIdent(publication)); err != nil {
			return classify(err, "drop publication "+publication)
		}
	}
	return nil
}

// replicationNames returns the slot and publication names for a plan:
// given ones, or "dsync_" and a hash of the flow (Options.Flow, else the
// dataset and the requested namespaces).
func (st *state) replicationNames(namespaces []string) Replication {
	key := st.opts.Flow
	if key == "" {
		nss := append([]string(nil), namespaces...)
		sort.Strings(nss)
		key = st.id + "\n" + strings.Join(nss, "\n")
	}
	sum := sha256.Sum256([]byte(key))
	derived := "dsync_" + hex.EncodeToString(sum[:8])
	r := Replication{Slot: st.opts.Slot, Publication: st.opts.Publication}
	if r.Slot == "" {
		r.Slot, r.SlotOwned = derived, true
	}
	if r.Publication == "" {
		r.Publication, r.PublicationOwned = derived, true
	}
	return r
}

// ensureReplication prepares change data capture for tables and returns
// the cursor to stream from: it checks the server and the tables' replica
// identities, creates or checks the publication, then creates the slot
// (the publication must exist before the slot's start, or decoding fails)
// and returns the slot's position, which precedes every read of the copy.
func (st *state) ensureReplication(ctx context.Context, tables []*table, namespaces []string) (*updCursor, error) {
	var walLevel string
	if err := st.pool.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&walLevel); err != nil {
		return nil, classify(err, "read wal_level")
	}
	if walLevel != "logical" {
		return nil, sdk.FailedPrecondition(fmt.Errorf("postgres: change data capture needs wal_level = logical (the server has %s): set it in postgresql.conf and restart the server", walLevel))
	}
	for _, t := range tables {
		if err := st.checkReplicaIdentity(ctx, t); err != nil {
			return nil, err
		}
	}
	r := st.replicationNames(namespaces)
	if err := st.ensurePublication(ctx, r, tables); err != nil {
		return nil, err
	}
	lsn, err := st.ensureSlot(ctx, r)
	if err != nil {
		return nil, err
	}
	return newUpdCursor(lsn, 0, r), nil
}

// checkReplicaIdentity makes sure change events carry what _id is built
// from: the primary key (REPLICA IDENTITY DEFAULT or FULL), or for a table
// without one the whole old row (FULL, which dsync sets when the user
// opted in).
func (st *state) checkReplicaIdentity(ctx context.Context, t *table) error {
	if t.hashID() {
		if t.replIdent == 'f' {
			return nil
		}
		if _, err := st.pool.Exec(ctx, "ALTER TABLE "+t.ident()+" REPLICA IDENTITY FULL"); err != nil {
			return classify(err, "set REPLICA IDENTITY FULL on "+t.ns+" (no_pk="+NoPKReplicaIdentityFull+")")
		}
		slog.Info("postgres: set REPLICA IDENTITY FULL on a table without a primary key", "table", t.ns)
		t.replIdent = 'f'
		return nil
	}
	switch t.replIdent {
	case 'd', 'f':
		return nil
	case 'i':
		return sdk.FailedPrecondition(fmt.Errorf("postgres: table %s has REPLICA IDENTITY USING INDEX: change events must carry the primary key: ALTER TABLE %s REPLICA IDENTITY DEFAULT", t, t))
	}
	return sdk.FailedPrecondition(fmt.Errorf("postgres: table %s has REPLICA IDENTITY NOTHING: its updates and deletes cannot be captured: ALTER TABLE %s REPLICA IDENTITY DEFAULT", t, t))
}

func (st *state) ensurePublication(ctx context.Context, r Replication, tables []*table) error {
	var all, ins, upd, del, trunc bool
	err := st.pool.QueryRow(ctx, "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1", r.Publication).
		Scan(&all, &ins, &upd, &del, &trunc)
	tableList := make([]string, len(tables))
	for i, t := range tables {
		tableList[i] = t.ident()
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		sql := "CREATE PUBLICATION " + quoteIdent(r.Publication)
		if len(tables) > 0 {
			sql += " FOR TABLE " + strings.Join(tableList, ", ")
		}
		sql += " WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)"
		if _, err := st.pool.Exec(ctx, sql); err != nil {
			if pgCode(err) == "42710" { // created concurrently
				return st.ensurePublication(ctx, r, tables)
			}
			return classify(err, "create publication "+r.Publication)
		}
		slog.Info("postgres: created publication", "publication", r.Publication, "tables", len(tables))
		return nil
	case err != nil:
		return classify(err, "read publication "+r.Publication)
	}
	if r.PublicationOwned {
		// dsync's own publication: make it publish exactly the planned
		// tables.
		sql := "ALTER PUBLICATION " + quoteIdent(r.Publication) + " SET TABLE " + strings.Join(tableList, ", ")
		if len(tables) == 0 {
			sql = "" // SET TABLE needs at least one table; an empty publication stays as it is
		}
		if sql != "" && !all {
			if _, err := st.pool.Exec(ctx, sql); err != nil {
				return classify(err, "alter publication "+r.Publication)
			}
		}
		return nil
	}
	if !ins || !upd || !del {
		return sdk.FailedPrecondition(fmt.Errorf("postgres: publication %s does not publish every insert, update and delete: ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate')", r.Publication, quoteIdent(r.Publication)))
	}
	if !trunc {
		slog.Warn("postgres: the publication does not publish TRUNCATE: a truncated table would go unnoticed", "publication", r.Publication)
	}
	if all {
		return nil
	}
	published := map[string]bool{}
	rows, err := st.pool.Query(ctx, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1", r.Publication)
	if err != nil {
		return classify(err, "read publication "+r.Publication)
	}
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return classify(err, "read publication "+r.Publication)
		}
		published[formatNamespace(s, n)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return classify(err, "read publication "+r.Publication)
	}
	var missing []string
	for _, t := range tables {
		if !published[formatNamespace(t.schema, t.name)] {
			missing = append(missing, t.ident())
		}
	}
	if len(missing) > 0 {
		return sdk.FailedPrecondition(fmt.Errorf("postgres: publication %s does not publish %s: ALTER PUBLICATION %s ADD TABLE %s",
			r.Publication, strings.Join(missing, ", "), quoteIdent(r.Publication), strings.Join(missing, ", ")))
	}
	return nil
}

// ensureSlot creates the slot when absent and returns its confirmed flush
// position: every change after it is still in the slot.
func (st *state) ensureSlot(ctx context.Context, r Replication) (pglogrepl.LSN, error) {
	for attempt := 0; ; attempt++ {
		lsn, ok, err := st.slotPosition(ctx, r.Slot)
		if err != nil || ok {
			return lsn, err
		}
		conn, err := pgconn.ConnectConfig(ctx, st.replCfg)
		if err != nil {
			return 0, replConnectError(err)
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, conn, r.Slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		conn.Close(context.Background())
		if err != nil {
			if pgCode(err) == "42710" && attempt == 0 { // created concurrently
				continue
			}
			return 0, classify(err, "create replication slot "+r.Slot)
		}
		lsn, err = pglogrepl.ParseLSN(res.ConsistentPoint)
		if err != nil {
			return 0, sdk.Fatal(fmt.Errorf("postgres: replication slot %s: unexpected consistent point %q", r.Slot, res.ConsistentPoint))
		}
		slog.Info("postgres: created replication slot", "slot", r.Slot, "lsn", res.ConsistentPoint)
		return lsn, nil
	}
}

// slotPosition returns the confirmed flush position of an existing slot,
// and checks that it is a pgoutput slot of this database.
func (st *state) slotPosition(ctx context.Context, slot string) (pglogrepl.LSN, bool, error) {
	var plugin, db, confirmed *string
	err := st.pool.QueryRow(ctx, "SELECT plugin, database, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", slot).
		Scan(&plugin, &db, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify(err, "read replication slot "+slot)
	}
	if plugin == nil || *plugin != "pgoutput" {
		return 0, false, sdk.InvalidArgument("postgres: replication slot %s is not a logical slot of the pgoutput plugin: name another slot", slot)
	}
	if db == nil || *db != st.dbName {
		return 0, false, sdk.InvalidArgument("postgres: replication slot %s belongs to database %v, not %s: name another slot", slot, deref(db), st.dbName)
	}
	if confirmed == nil {
		return 0, false, sdk.FailedPrecondition(fmt.Errorf("postgres: replication slot %s has no confirmed position", slot))
	}
	lsn, err := pglogrepl.ParseLSN(*confirmed)
	if err != nil {
		return 0, false, sdk.Fatal(fmt.Errorf("postgres: replication slot %s: unexpected position %q", slot, *confirmed))
	}
	return lsn, true, nil
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}

// replConnectError classifies the failure to open a replication
// connection.
func replConnectError(err error) error {
	switch pgCode(err) {
	case "42501", "28000":
		return sdk.FailedPrecondition(fmt.Errorf("postgres: change data capture needs a role with the REPLICATION attribute (ALTER ROLE ... REPLICATION) allowed to connect for replication in pg_hba.conf: %w", err))
	}
	return classify(err, "open a replication connection")
}
