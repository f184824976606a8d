package mongodb

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/internal/redact"
	"github.com/dsyncio/dsync/sdk"
)

const (
	// insertDocs and insertBytes bound one InsertMany call.
	insertDocs  = 1000
	insertBytes = 16 << 20
)

// bulkSize returns the number of operations of one bulk write.
func (st *state) bulkSize() int {
	if n := st.cc.opts.BulkSize; n > 0 {
		return n
	}
	if st.server.ferret {
		return FerretDBBulkSize
	}
	return DefaultBulkSize
}

// WriteData inserts docs with unordered InsertMany calls of at most 1000
// documents and 16 MiB; documents whose _id already exists are then
// replaced (ReplaceOne with upsert, in bulks of BulkSize), so that writing
// a batch again gives the same state.
func (c *Connector) WriteData(ctx context.Context, namespace string, docs []bson.Raw) error {
	st, err := c.state()
	if err != nil {
		return err
	}
	coll, err := st.coll(namespace)
	if err != nil {
		return err
	}
	for i, d := range docs {
		if _, err := d.LookupErr("_id"); err != nil {
			return sdk.Fatal(fmt.Errorf("mongodb: write %s: document %d of the batch has no _id", namespace, i))
		}
	}
	for start := 0; start < len(docs); {
		end, size := start, 0
		for end < len(docs) && end-start < insertDocs && (end == start || size+len(docs[end]) <= insertBytes) {
			size += len(docs[end])
			end++
		}
		if err := st.insert(ctx, coll, namespace, docs[start:end]); err != nil {
			return err
		}
		start = end
	}
	return nil
}

func (st *state) insert(ctx context.Context, coll *mongo.Collection, ns string, docs []bson.Raw) error {
	batch := make([]any, len(docs))
	for i, d := range docs {
		batch[i] = d
	}
	_, err := coll.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return classifyErr(err, st.cc.secrets, "mongodb: insert into "+ns)
	}
	var models []mongo.WriteModel
	var ids []bson.RawValue
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(docs) {
			return classifyErr(err, st.cc.secrets, "mongodb: insert into "+ns)
		}
		d := docs[we.Index]
		id := d.Lookup("_id")
		if we.Code != codeDuplicateKey {
			return st.writeError(ns, id, we.WriteError)
		}
		models = append(models, mongo.NewReplaceOneModel().SetFilter(idFilter(id)).SetReplacement(d).SetUpsert(true))
		ids = append(ids, id)
	}
	return st.bulk(ctx, coll, ns, models, ids)
}

func idFilter(id bson.RawValue) bson.D {
	return bson.D{{Key: "_id", Value: id}}
}

// bulk runs models unordered in bulks of bulkSize; ids[i] is the _id that
// models[i] writes, for error messages.
func (st *state) bulk(ctx context.Context, coll *mongo.Collection, ns string, models []mongo.WriteModel, ids []bson.RawValue) error {
	n := st.bulkSize()
	for start := 0; start < len(models); start += n {
		end := min(start+n, len(models))
		_, err := coll.BulkWrite(ctx, models[start:end], options.BulkWrite().SetOrdered(false))
		if err == nil {
			continue
		}
		var bwe mongo.BulkWriteException
		if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
			we := bwe.WriteErrors[0]
			if we.Index >= 0 && start+we.Index < end {
				return st.writeError(ns, ids[start+we.Index], we.WriteError)
			}
		}
		return classifyErr(err, st.cc.secrets, "mongodb: write to "+ns)
	}
	return nil
}

// writeError reports a failed write of one document: retryable when the
// server says so, else fatal with the namespace and the _id.
func (st *state) writeError(ns string, id bson.RawValue, we mongo.WriteError) error {
	what := fmt.Sprintf("mongodb: write to %s of _id %s", ns, id)
	if we.Code == codeDuplicateKey {
		what += " conflicts with a unique index of the target"
	}
	err := &scrubbed{msg: what + ": " + redact.String(we.Message, st.cc.secrets...), err: we}
	if retryableCodes[we.Code] {
		return sdk.Retryable(err)
	}
	return sdk.Fatal(err)
}

// WriteUpdates applies updates in order. The updates of each _id are first
// reduced to as few operations as keep the result: the last insert,
// replace or delete wins, and partial updates are applied to the document
// written before them in the batch, or merged with each other when their
// paths do not overlap. What cannot be merged is written in a later round,
// so each round is one unordered bulk of ReplaceOne (upsert), DeleteOne
// and UpdateOne ($set/$unset, upsert) operations.
func (c *Connector) WriteUpdates(ctx context.Context, namespace string, updates []sdk.Update) error {
	st, err := c.state()
	if err != nil {
		return err
	}
	coll, err := st.coll(namespace)
	if err != nil {
		return err
	}
	rounds, err := compact(updates)
	if err != nil {
		return sdk.Fatal(fmt.Errorf("mongodb: write to %s: %w", namespace, err))
	}
	for _, round := range rounds {
		models := make([]mongo.WriteModel, 0, len(round))
		ids := make([]bson.RawValue, 0, len(round))
		for _, o := range round {
			m := o.model()
			if m == nil {
				continue
			}
			models = append(models, m)
			ids = append(ids, o.id)
		}
		if err := st.bulk(ctx, coll, namespace, models, ids); err != nil {
			return err
		}
	}
	return nil
}
