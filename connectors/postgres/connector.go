package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dsyncio/dsync/sdk"
)

// Version is the connector version reported by Info.
const Version = "1"

var (
	_ sdk.Source         = (*Connector)(nil)
	_ sdk.Sink           = (*Connector)(nil)
	_ sdk.UpdateStreamer = (*Connector)(nil)
	_ sdk.UpdateAcker    = (*Connector)(nil)
	_ sdk.IDGetter       = (*Connector)(nil)
	_ sdk.Closer         = (*Connector)(nil)
)

// sessionParams are set on every connection: the text forms the codecs
// read and write depend on them.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "1",
	"bytea_output":       "hex",
	"client_encoding":    "UTF8",
}

// Connector is the postgres:// source and sink. Its methods are safe for
// concurrent use.
type Connector struct {
	st atomic.Pointer[state]
}

// New returns an unconfigured connector.
func New() *Connector { return &Connector{} }

// state is a configured connector.
type state struct {
	opts     Options
	pool     *pgxpool.Pool
	replCfg  *pgconn.Config // for replication connections
	id       string
	version  string
	dbName   string
	types    *typeRegistry
	srcCache sync.Map // namespace -> *table, for the source
	sink     sinkCache
	acks     ackRegistry
	// copyRows > 0 writes groups of at least that many rows with COPY
	// and a merge instead of one statement (for benchmarks).
	copyRows int
}

// Configure parses cfg.URL (postgres:// or postgresql://, pgx syntax, with
// the dsync options of [Options] in the query or in cfg.Settings) and
// connects.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	opts, pgxURL, err := parseConfig(cfg.URL, cfg.Settings)
	if err != nil {
		return err
	}
	poolCfg, err := pgxpool.ParseConfig(pgxURL)
	if err != nil {
		return sdk.InvalidArgument("postgres: invalid connection string: %s", redactParseError(err))
	}
	if !strings.Contains(pgxURL, "pool_max_conns") {
		poolCfg.MaxConns = 16
	}
	cc := poolCfg.ConnConfig
	for k, v := range sessionParams {
		cc.RuntimeParams[k] = v
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "dsync"
	}
	poolCfg.AfterConnect = afterConnect
	replCfg := cc.Config.Copy()
	replCfg.RuntimeParams["replication"] = "database"

	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return sdk.InvalidArgument("postgres: invalid connection string: %s", redactParseError(err))
	}
	st := &state{opts: opts, pool: pool, replCfg: replCfg, types: newTypeRegistry()}
	if err := st.identify(ctx); err != nil {
		pool.Close()
		return connectError(err)
	}
	if old := c.st.Swap(st); old != nil {
		old.close()
	}
	return nil
}

// afterConnect makes commits durable on servers whose default is
// synchronous_commit=off: sinks promise durable writes.
func afterConnect(ctx context.Context, conn *pgx.Conn) error {
	var sc string
	if err := conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc); err != nil {
		return err
	}
	if sc == "off" {
		_, err := conn.Exec(ctx, "SET synchronous_commit = on")
		return err
	}
	return nil
}

func redactParseError(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// Its message quotes the connection string, password redacted.
		return pe.Error()
	}
	return err.Error()
}

// connectError classifies an error of the first connection: settings the
// user must change are invalid arguments, an unreachable server is
// retryable.
func connectError(err error) error {
	if ctxErr := contextError(err); ctxErr != nil {
		return ctxErr
	}
	switch code := pgCode(err); {
	case code == "42704": // unrecognized configuration parameter
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		return sdk.InvalidArgument("postgres: the server rejected a connection option: %s: remove the option from the URL (dsync options are %s)", pgErr.Message, strings.Join(dsyncOptions, ", "))
	case code == "28P01", code == "28000", code == "3D000", code == "42501", strings.HasPrefix(code, "22"):
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		return sdk.InvalidArgument("postgres: cannot connect: %s", pgErr.Message)
	}
	return classify(err, "connect")
}

// identify reads the dataset identity: the cluster's system identifier and
// the database name.
func (st *state) identify(ctx context.Context) error {
	var version string
	if err := st.pool.QueryRow(ctx, "SELECT current_database(), current_setting('server_version')").Scan(&st.dbName, &version); err != nil {
		return err
	}
	st.version = fmt.Sprintf("%s (PostgreSQL %s)", Version, version)
	var sysID int64
	err := st.pool.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&sysID)
	if err == nil {
		st.id = fmt.Sprintf("postgresql:%d/%s", sysID, st.dbName)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// pg_control_system() may be restricted; IDENTIFY_SYSTEM needs the
	// REPLICATION attribute.
	if conn, rerr := pgconn.ConnectConfig(ctx, st.replCfg); rerr == nil {
		res, ierr := pglogrepl.IdentifySystem(ctx, conn)
		conn.Close(context.Background())
		if ierr == nil {
			st.id = fmt.Sprintf("postgresql:%s/%s", res.SystemID, st.dbName)
			return nil
		}
	}
	cc := st.pool.Config().ConnConfig
	st.id = fmt.Sprintf("postgresql:%s:%s/%s", cc.Host, strconv.Itoa(int(cc.Port)), st.dbName)
	slog.Warn("postgres: cannot read the system identifier (pg_control_system() is not permitted and the role has no REPLICATION attribute); the dataset id uses host and port", "id", st.id)
	return nil
}

func (st *state) close() {
	st.acks.closeAll()
	st.pool.Close()
}

func (c *Connector) state() (*state, error) {
	st := c.st.Load()
	if st == nil {
		return nil, sdk.FailedPrecondition(sdk.ErrNotConfigured)
	}
	return st, nil
}

// Info describes the database: its ID is
// "postgresql:<system identifier>/<database>".
func (c *Connector) Info(ctx context.Context) (sdk.Info, error) {
	st, err := c.state()
	if err != nil {
		return sdk.Info{}, err
	}
	return sdk.Info{
		ID:      st.id,
		DBType:  "postgresql",
		Version: st.version,
		Source: &sdk.SourceCapabilities{
			MultiNamespacePlan: true,
			DefaultPlan:        true,
			GetByIDs:           true,
			Updates:            true,
			AckUpdates:         true,
		},
		Sink: &sdk.SinkCapabilities{},
	}, nil
}

// Close closes the connections.
func (c *Connector) Close() error {
	if st := c.st.Swap(nil); st != nil {
		st.close()
	}
	return nil
}
