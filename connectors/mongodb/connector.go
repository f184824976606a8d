package mongodb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/dsyncio/dsync/internal/redact"
	"github.com/dsyncio/dsync/sdk"
)

// Version is the connector version reported in Info when the server version
// is unknown.
const Version = "1"

var (
	_ sdk.Source         = (*Connector)(nil)
	_ sdk.Sink           = (*Connector)(nil)
	_ sdk.UpdateStreamer = (*Connector)(nil)
	_ sdk.UpdateAcker    = (*Connector)(nil)
	_ sdk.IDGetter       = (*Connector)(nil)
	_ sdk.IndexLister    = (*Connector)(nil)
	_ sdk.IndexCreator   = (*Connector)(nil)
	_ sdk.Closer         = (*Connector)(nil)
)

// Connector is the mongodb:// and mongodb+srv:// source and sink. Its
// methods are safe for concurrent use.
type Connector struct {
	st atomic.Pointer[state]
	mu sync.Mutex // serialises Configure and Close
}

// New returns an unconfigured connector.
func New() *Connector { return &Connector{} }

// state is what Configure establishes.
type state struct {
	cc     connConfig
	client *mongo.Client
	server serverInfo
	id     string
	cache  *cursorCache
	// fetchOplogUpdates makes oplog u entries always fetch the current
	// document, even when FerretDB logged the whole document (tests).
	fetchOplogUpdates bool
}

// serverInfo is what the server says about itself.
type serverInfo struct {
	version    string
	versionArr []int
	ferret     bool
	setName    string
	mongos     bool
	hasOplog   bool
	// ferretVersion is FerretDB's own version, when it gives one.
	ferretVersion string
}

// atLeast reports whether the server version is at least v.
func (s serverInfo) atLeast(v ...int) bool {
	for i, want := range v {
		have := 0
		if i < len(s.versionArr) {
			have = s.versionArr[i]
		}
		if have != want {
			return have > want
		}
	}
	return true
}

// changeStreams reports whether the server has change streams.
func (s serverInfo) changeStreams() bool {
	return !s.ferret && (s.setName != "" || s.mongos) && s.atLeast(4, 0)
}

// cdcMode returns the mode GeneratePlan uses.
func (st *state) cdcMode() (CDCMode, error) {
	s := st.server
	switch st.cc.opts.CDC {
	case CDCChangeStream:
		if !s.changeStreams() {
			return "", sdk.FailedPrecondition(fmt.Errorf("%w: cdc=changestream needs a MongoDB 4.0+ replica set or sharded cluster, and %s is %s", ErrNoCDC, st.cc.redacted, s.describe()))
		}
		return CDCChangeStream, nil
	case CDCOplog:
		if !s.hasOplog {
			return "", sdk.FailedPrecondition(fmt.Errorf("%w: cdc=oplog needs a readable local.oplog.rs, which %s does not have", ErrNoCDC, st.cc.redacted))
		}
		return CDCOplog, nil
	}
	if s.changeStreams() {
		return CDCChangeStream, nil
	}
	if s.hasOplog {
		return CDCOplog, nil
	}
	return "", sdk.FailedPrecondition(fmt.Errorf("%w: %s is %s without a readable local.oplog.rs; run a replica set (even of one member) or copy with --mode initial", ErrNoCDC, st.cc.redacted, s.describe()))
}

func (s serverInfo) describe() string {
	kind := "a standalone server"
	switch {
	case s.ferret:
		kind = "FerretDB"
	case s.mongos:
		kind = "a sharded cluster"
	case s.setName != "":
		kind = "replica set " + s.setName
	}
	return fmt.Sprintf("%s (version %s)", kind, s.version)
}

func (c *Connector) state() (*state, error) {
	st := c.st.Load()
	if st == nil {
		return nil, sdk.FailedPrecondition(sdk.ErrNotConfigured)
	}
	return st, nil
}

// Configure parses cfg.URL (see the package documentation for the dsync
// options; cfg.Settings may hold the same options), connects and inspects
// the server.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config) error {
	cc, err := parseURL(cfg.URL, cfg.Settings)
	if err != nil {
		return err
	}
	opts := options.Client().ApplyURI(cc.driverURI)
	if opts.WriteConcern == nil {
		opts.SetWriteConcern(writeconcern.Majority())
	}
	if opts.AppName == nil {
		opts.SetAppName("dsync")
	}
	if err := opts.Validate(); err != nil {
		// For mongodb+srv the SRV and TXT lookups happen here.
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			if dnsErr.IsNotFound {
				return sdk.InvalidArgument("mongodb: no SRV record for %s: check the host name of %q", cc.hosts[0], cc.redacted)
			}
			return classifyErr(err, cc.secrets, "mongodb: resolve "+cc.hosts[0])
		}
		return sdk.InvalidArgument("mongodb: invalid connection string %q: %s", cc.redacted, redact.String(err.Error(), cc.secrets...))
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return classifyErr(err, cc.secrets, "mongodb: connect to "+strings.Join(cc.hosts, ","))
	}
	st := &state{cc: cc, client: client, cache: newCursorCache()}
	if err := st.inspect(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return err
	}
	st.id = st.deploymentID()

	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.st.Swap(st); old != nil {
		old.close()
	}
	return nil
}

// inspect pings the server and reads what it is.
func (st *state) inspect(ctx context.Context) error {
	admin := st.client.Database("admin")
	bi, err := admin.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		return classifyErr(err, st.cc.secrets, "mongodb: connect to "+strings.Join(st.cc.hosts, ","))
	}
	s := serverInfo{}
	if v, ok := bi.Lookup("version").StringValueOK(); ok {
		s.version = v
	}
	if arr, ok := bi.Lookup("versionArray").ArrayOK(); ok {
		vals, _ := arr.Values()
		for _, v := range vals {
			if n, ok := v.AsInt64OK(); ok {
				s.versionArr = append(s.versionArr, int(n))
			}
		}
	}
	elems, _ := bi.Elements()
	for _, e := range elems {
		if strings.HasPrefix(strings.ToLower(e.Key()), "ferretdb") {
			s.ferret = true
			if v, ok := e.Value().StringValueOK(); ok && e.Key() == "ferretdbVersion" && v != "unknown" {
				s.ferretVersion = v
			}
		}
	}
	hello, err := admin.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Raw()
	if err != nil {
		hello, err = admin.RunCommand(ctx, bson.D{{Key: "isMaster", Value: 1}}).Raw()
	}
	if err != nil {
		return classifyErr(err, st.cc.secrets, "mongodb: hello")
	}
	s.setName, _ = hello.Lookup("setName").StringValueOK()
	if msg, ok := hello.Lookup("msg").StringValueOK(); ok && msg == "isdbgrid" {
		s.mongos = true
	}
	if !s.mongos {
		names, err := st.client.Database("local").ListCollectionNames(ctx, bson.D{{Key: "name", Value: "oplog.rs"}})
		s.hasOplog = err == nil && len(names) == 1
	}
	st.server = s
	return nil
}

// deploymentID names the deployment without credentials: scheme, replica
// set name and sorted seed hosts.
func (st *state) deploymentID() string {
	set := st.server.setName
	if set == "" {
		set = st.cc.replicaSet
	}
	id := st.cc.scheme + ":"
	if set != "" {
		id += set + "/"
	}
	return id + strings.Join(st.cc.hosts, ",")
}

// Info describes the deployment. The source can stream updates when the
// server has change streams or an oplog.
func (c *Connector) Info(ctx context.Context) (sdk.Info, error) {
	st, err := c.state()
	if err != nil {
		return sdk.Info{}, err
	}
	_, cdcErr := st.cdcMode()
	v := st.server.version
	switch {
	case st.server.ferret && st.server.ferretVersion != "":
		v = "FerretDB " + st.server.ferretVersion
	case st.server.ferret:
		v = "FerretDB (MongoDB " + v + " protocol)"
	case v == "":
		v = Version
	}
	return sdk.Info{
		ID:      st.id,
		DBType:  "mongodb",
		Version: v,
		Source: &sdk.SourceCapabilities{
			MultiNamespacePlan: true,
			DefaultPlan:        true,
			GetByIDs:           true,
			Updates:            cdcErr == nil,
			Indexes:            true,
		},
		Sink: &sdk.SinkCapabilities{Indexes: true},
	}, nil
}

// Close ends every cached cursor and disconnects.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.st.Swap(nil); st != nil {
		st.close()
	}
	return nil
}

func (st *state) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st.cache.closeAll(ctx)
	_ = st.client.Disconnect(ctx)
}

// splitNamespace splits "db.coll" at the first dot.
func splitNamespace(ns string) (db, coll string, ok bool) {
	db, coll, ok = strings.Cut(ns, ".")
	return db, coll, ok && db != "" && coll != ""
}

func (st *state) coll(ns string) (*mongo.Collection, error) {
	db, coll, ok := splitNamespace(ns)
	if !ok {
		return nil, sdk.InvalidArgument("mongodb: namespace %q is not of the form database.collection", ns)
	}
	return st.client.Database(db).Collection(coll), nil
}

// NamespaceMetadata returns the estimated count and data size of a
// collection (collStats); a missing collection is empty.
func (c *Connector) NamespaceMetadata(ctx context.Context, namespace string) (sdk.NamespaceMetadata, error) {
	st, err := c.state()
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	coll, err := st.coll(namespace)
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	count, size, err := st.collStats(ctx, coll)
	if err != nil {
		return sdk.NamespaceMetadata{}, c.classify(err, "mongodb: statistics of %s", namespace)
	}
	return sdk.NamespaceMetadata{Count: uint64(count), SizeBytes: uint64(size)}, nil
}

// collStats returns the estimated document count and uncompressed data
// size of coll, summed over shards.
func (st *state) collStats(ctx context.Context, coll *mongo.Collection) (count, size int64, err error) {
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{{{Key: "$collStats", Value: bson.D{{Key: "storageStats", Value: bson.D{}}}}}})
	if err == nil {
		defer cur.Close(context.WithoutCancel(ctx))
		for cur.Next(ctx) {
			ss := cur.Current.Lookup("storageStats")
			if n, ok := ss.Document().Lookup("count").AsInt64OK(); ok {
				count += n
			}
			if n, ok := ss.Document().Lookup("size").AsInt64OK(); ok {
				size += n
			}
		}
		if err = cur.Err(); err == nil {
			return count, size, nil
		}
	}
	if hasCode(err, codeNamespaceNotFound) {
		return 0, 0, nil
	}
	if !isServerError(err) {
		return 0, 0, err
	}
	// Servers without $collStats.
	res, err := coll.Database().RunCommand(ctx, bson.D{{Key: "collStats", Value: coll.Name()}}).Raw()
	if err != nil {
		if hasCode(err, codeNamespaceNotFound) {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	count, _ = res.Lookup("count").AsInt64OK()
	size, _ = res.Lookup("size").AsInt64OK()
	return count, size, nil
}
