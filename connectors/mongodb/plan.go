package mongodb

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/sdk"
)

const (
	// maxPartitions bounds the partitions of one collection.
	maxPartitions = 10_000
	// samplesPerPartition is how many sampled _ids back one split point.
	samplesPerPartition = 16
)

// systemDatabases are never part of a default plan.
var systemDatabases = map[string]bool{"admin": true, "local": true, "config": true}

// GeneratePlan resolves the namespaces ("db.coll", "db" for every
// collection of a database, none for every collection of every database
// except admin, local and config; system.* collections and views are left
// out), captures the change stream position when asked (before anything
// else), and splits each collection into _id ranges of about
// PartitionDocs documents and PartitionBytes bytes.
func (c *Connector) GeneratePlan(ctx context.Context, req sdk.PlanRequest) (sdk.Plan, error) {
	st, err := c.state()
	if err != nil {
		return sdk.Plan{}, err
	}
	nss, err := st.resolveNamespaces(ctx, req.Namespaces)
	if err != nil {
		return sdk.Plan{}, c.classify(err, "mongodb: list namespaces")
	}
	var plan sdk.Plan
	if req.Updates {
		mode, err := st.cdcMode()
		if err != nil {
			return sdk.Plan{}, err
		}
		cur, err := st.captureUpdates(ctx, mode, nss)
		if err != nil {
			return sdk.Plan{}, c.classify(err, "mongodb: capture the %s position", mode)
		}
		plan.UpdatesPartitions = []sdk.UpdatesPartition{{Namespaces: nss, Cursor: cur}}
	}
	if req.InitialSync {
		for _, ns := range nss {
			parts, err := st.partitions(ctx, ns)
			if err != nil {
				return sdk.Plan{}, c.classify(err, "mongodb: split %s", ns)
			}
			plan.Partitions = append(plan.Partitions, parts...)
		}
	}
	return plan, nil
}

// resolveNamespaces expands the requested namespaces into sorted, distinct
// collection namespaces.
func (st *state) resolveNamespaces(ctx context.Context, req []string) ([]string, error) {
	lister := &collLister{st: st, cache: map[string]map[string]string{}}
	seen := map[string]bool{}
	var out []string
	add := func(ns string) {
		if !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	if len(req) == 0 {
		dbs, err := st.client.ListDatabaseNames(ctx, bson.D{})
		if err != nil {
			return nil, err
		}
		for _, db := range dbs {
			if systemDatabases[db] {
				continue
			}
			colls, err := lister.collections(ctx, db)
			if err != nil {
				return nil, err
			}
			for _, c := range colls {
				add(db + "." + c)
			}
		}
		sort.Strings(out)
		return out, nil
	}
	for _, ns := range req {
		db, coll, hasColl := strings.Cut(ns, ".")
		if db == "" || (hasColl && coll == "") || strings.ContainsAny(db, "/\\ \"$") {
			return nil, sdk.InvalidArgument("mongodb: namespace %q is not of the form database or database.collection", ns)
		}
		if !hasColl {
			colls, err := lister.collections(ctx, db)
			if err != nil {
				return nil, err
			}
			if len(colls) == 0 {
				return nil, sdk.InvalidArgument("mongodb: database %q has no collections: check the name", db)
			}
			for _, c := range colls {
				add(db + "." + c)
			}
			continue
		}
		kind, err := lister.kind(ctx, db, coll)
		if err != nil {
			return nil, err
		}
		switch kind {
		case "collection":
			add(ns)
		case "":
			return nil, sdk.InvalidArgument("mongodb: collection %q does not exist: check the name", ns)
		default:
			return nil, sdk.InvalidArgument("mongodb: %q is a %s, not a collection: only collections can be copied", ns, kind)
		}
	}
	sort.Strings(out)
	return out, nil
}

// collLister caches listCollections per database.
type collLister struct {
	st    *state
	cache map[string]map[string]string // db -> name -> type
}

func (l *collLister) load(ctx context.Context, db string) (map[string]string, error) {
	if m, ok := l.cache[db]; ok {
		return m, nil
	}
	cur, err := l.st.client.Database(db).ListCollections(ctx, bson.D{}, options.ListCollections().SetNameOnly(true))
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	m := map[string]string{}
	for cur.Next(ctx) {
		name, _ := cur.Current.Lookup("name").StringValueOK()
		typ, ok := cur.Current.Lookup("type").StringValueOK()
		if !ok {
			typ = "collection"
		}
		m[name] = typ
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	l.cache[db] = m
	return m, nil
}

// collections returns the copyable collections of db, sorted.
func (l *collLister) collections(ctx context.Context, db string) ([]string, error) {
	m, err := l.load(ctx, db)
	if err != nil {
		return nil, err
	}
	var out []string
	for name, typ := range m {
		if typ == "collection" && !strings.HasPrefix(name, "system.") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// kind returns the type of db.coll ("collection", "view", ...), or "" when
// it does not exist.
func (l *collLister) kind(ctx context.Context, db, coll string) (string, error) {
	m, err := l.load(ctx, db)
	if err != nil {
		return "", err
	}
	return m[coll], nil
}

// partitions splits one collection.
func (st *state) partitions(ctx context.Context, ns string) ([]sdk.Partition, error) {
	coll, err := st.coll(ns)
	if err != nil {
		return nil, err
	}
	count, size, err := st.collStats(ctx, coll)
	if err != nil {
		return nil, err
	}
	o := st.cc.opts
	parts := int64(1)
	if count > 0 {
		parts = max(ceilDiv(count, o.PartitionDocs), ceilDiv(size, o.PartitionBytes), 1)
		parts = min(parts, maxPartitions, count)
	}
	var bounds []bound
	if parts > 1 {
		bounds, err = st.splitPoints(ctx, coll, count, int(parts))
		if err != nil {
			return nil, err
		}
	}
	ranges := rangesBetween(bounds)
	out := make([]sdk.Partition, len(ranges))
	for i, r := range ranges {
		out[i] = sdk.Partition{
			Namespace:      ns,
			Cursor:         encodePartition(ns, r),
			EstimatedCount: uint64(count) / uint64(len(ranges)),
		}
	}
	return out, nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// rangesBetween turns increasing split points into contiguous ranges that
// cover every _id: (-inf, b1), [b1, b2), ..., [bk, +inf).
func rangesBetween(bounds []bound) []idRange {
	out := make([]idRange, 0, len(bounds)+1)
	var lo *bound
	for i := range bounds {
		hi := &bounds[i]
		out = append(out, idRange{lo: lo, hi: hi})
		lo = hi
	}
	return append(out, idRange{lo: lo})
}

// splitPoints returns up to parts-1 strictly increasing split points of
// coll's _ids: quantiles of a sorted $sample where the server has it, else
// of one sorted scan of the _id index.
func (st *state) splitPoints(ctx context.Context, coll *mongo.Collection, count int64, parts int) ([]bound, error) {
	var ids []bson.RawValue
	var err error
	if !st.server.ferret {
		ids, err = st.sampleIDs(ctx, coll, min(count, int64(parts)*samplesPerPartition))
		if err != nil && !isServerError(err) {
			return nil, err
		}
	}
	var vals []bson.RawValue
	if err == nil && len(ids) > 0 {
		for k := 1; k < parts; k++ {
			vals = append(vals, ids[k*len(ids)/parts])
		}
	} else {
		vals, err = st.scanSplitPoints(ctx, coll, count, parts)
		if err != nil {
			return nil, err
		}
	}
	return increasingBounds(vals), nil
}

// increasingBounds maps server-sorted _id values to bounds, dropping
// repeats so that no range is empty by construction.
func increasingBounds(vals []bson.RawValue) []bound {
	bs := make([]bound, 0, len(vals))
	for _, v := range vals {
		bs = append(bs, boundAt(v))
	}
	// The server sorts brackets in this order already; a stable sort keeps
	// its order within a bracket.
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].B < bs[j].B })
	out := bs[:0]
	for _, b := range bs {
		if len(out) > 0 && out[len(out)-1].sameAs(b) {
			continue
		}
		out = append(out, b)
	}
	return out
}

func (st *state) sampleIDs(ctx context.Context, coll *mongo.Collection, n int64) ([]bson.RawValue, error) {
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$sample", Value: bson.D{{Key: "size", Value: n}}}},
		{{Key: "$project", Value: bson.D{{Key: "_id", Value: 1}}}},
		{{Key: "$sort", Value: bson.D{{Key: "_id", Value: 1}}}},
	}, options.Aggregate().SetAllowDiskUse(true))
	if err != nil {
		return nil, err
	}
	return collectIDs(ctx, cur, func(int64) bool { return true })
}

// scanSplitPoints reads the sorted _ids once and keeps every
// (count/parts)-th.
func (st *state) scanSplitPoints(ctx context.Context, coll *mongo.Collection, count int64, parts int) ([]bson.RawValue, error) {
	fo := options.Find().
		SetProjection(bson.D{{Key: "_id", Value: 1}}).
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetBatchSize(10_000)
	if !st.server.ferret {
		fo.SetHint(bson.D{{Key: "_id", Value: 1}})
	}
	cur, err := coll.Find(ctx, bson.D{}, fo)
	if err != nil {
		return nil, err
	}
	k := int64(1)
	return collectIDs(ctx, cur, func(i int64) bool {
		if k < int64(parts) && i == k*count/int64(parts) {
			k++
			return true
		}
		return false
	})
}

// collectIDs copies the _id of each document whose index keep accepts.
func collectIDs(ctx context.Context, cur *mongo.Cursor, keep func(i int64) bool) ([]bson.RawValue, error) {
	defer cur.Close(context.WithoutCancel(ctx))
	var out []bson.RawValue
	for i := int64(0); cur.Next(ctx); i++ {
		if !keep(i) {
			continue
		}
		v, err := cur.Current.LookupErr("_id")
		if err != nil {
			return nil, fmt.Errorf("document without _id: %w", err)
		}
		out = append(out, copyValue(v))
	}
	return out, cur.Err()
}

func copyValue(v bson.RawValue) bson.RawValue {
	return bson.RawValue{Type: v.Type, Value: append([]byte(nil), v.Value...)}
}
