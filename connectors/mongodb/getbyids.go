package mongodb

import (
	"context"
	"math"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// getByIDsChunk bounds the ids of one $in query.
const getByIDsChunk = 1000

// GetByIDs returns the documents with the given _ids in request order, nil
// where missing, with $in queries of up to 1000 ids. As in MongoDB, numbers
// of different types with the same value (1, 1.0, NumberLong(1)) name the
// same _id.
func (c *Connector) GetByIDs(ctx context.Context, namespace string, ids []bson.RawValue) ([]bson.Raw, error) {
	st, err := c.state()
	if err != nil {
		return nil, err
	}
	coll, err := st.coll(namespace)
	if err != nil {
		return nil, err
	}
	out := make([]bson.Raw, len(ids))
	for start := 0; start < len(ids); start += getByIDsChunk {
		chunk := ids[start:min(start+getByIDsChunk, len(ids))]
		found, err := st.fetchByIDs(ctx, coll, chunk)
		if err != nil {
			return nil, c.classify(err, "mongodb: read %s by _id", namespace)
		}
		for i, id := range chunk {
			out[start+i] = found[matchKey(id)]
		}
	}
	return out, nil
}

// fetchByIDs returns the documents with the given _ids by matchKey.
func (st *state) fetchByIDs(ctx context.Context, coll *mongo.Collection, ids []bson.RawValue) (map[string]bson.Raw, error) {
	in := make(bson.A, len(ids))
	for i, id := range ids {
		in[i] = id
	}
	fo := options.Find().SetBatchSize(int32(len(ids)))
	cur, err := coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}, fo)
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	found := make(map[string]bson.Raw, len(ids))
	for cur.Next(ctx) {
		doc := append(bson.Raw(nil), cur.Current...)
		found[matchKey(doc.Lookup("_id"))] = doc
	}
	return found, cur.Err()
}

// matchKey is equal for _id values MongoDB considers equal: numbers by
// value, strings and symbols by text, anything else by type and bytes.
func matchKey(v bson.RawValue) string {
	switch v.Type {
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
		f, _ := v.AsFloat64OK()
		if n, ok := v.AsInt64OK(); ok && v.Type != bson.TypeDouble {
			return "n" + strconv.FormatInt(n, 10)
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return "n" + strconv.FormatInt(int64(f), 10)
		}
		return "n" + strconv.FormatFloat(f, 'g', -1, 64)
	case bson.TypeString:
		return "s" + v.StringValue()
	case bson.TypeSymbol:
		s, _ := v.SymbolOK()
		return "s" + s
	}
	return idKey(v)
}
