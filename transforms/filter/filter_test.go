package filter_test

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/filter"
	"github.com/dsyncio/dsync/transforms/internal/transformtest"
)

type up = transformtest.Update

const (
	ins  = sdk.UpdateInsert
	rep  = sdk.UpdateReplace
	del  = sdk.UpdateDelete
	part = sdk.UpdatePartial
)

func TestQueries(t *testing.T) {
	cases := []struct {
		query, doc string
		want       bool
	}{
		{`{"status":"active","age":{"$gte":18}}`, `{"_id":1,"status":"active","age":18}`, true},
		{`{"status":"active","age":{"$gte":18}}`, `{"_id":1,"status":"active","age":17}`, false},
		{`{"status":"active","age":{"$gte":18}}`, `{"_id":1,"age":30}`, false},
		{`{}`, `{"_id":1}`, true},
		// Numbers compare by value whatever their type.
		{`{"n":1}`, `{"_id":1,"n":1.0}`, true},
		{`{"n":1}`, `{"_id":1,"n":{"$numberLong":"1"}}`, true},
		{`{"n":1}`, `{"_id":1,"n":{"$numberDecimal":"1.00"}}`, true},
		{`{"n":{"$numberDecimal":"0.1"}}`, `{"_id":1,"n":0.1}`, false}, // the double is not exactly 0.1
		{`{"n":{"$gt":1}}`, `{"_id":1,"n":1.5}`, true},
		{`{"n":{"$gt":1}}`, `{"_id":1,"n":"2"}`, false},
		{`{"n":{"$lt":{"$numberDecimal":"2.5"}}}`, `{"_id":1,"n":2}`, true},
		{`{"n":9007199254740993}`, `{"_id":1,"n":9007199254740992.0}`, false},
		{`{"n":{"$gt":9007199254740992}}`, `{"_id":1,"n":9007199254740993}`, true},
		{`{"n":{"$lt":9007199254740993}}`, `{"_id":1,"n":9007199254740992.0}`, true},
		{`{"n":{"$numberDouble":"NaN"}}`, `{"_id":1,"n":{"$numberDouble":"NaN"}}`, true},
		{`{"n":{"$lt":-1e308}}`, `{"_id":1,"n":{"$numberDouble":"NaN"}}`, true},
		{`{"n":{"$gt":1e308}}`, `{"_id":1,"n":{"$numberDouble":"Infinity"}}`, true},
		{`{"n":{"$gte":0,"$lt":10}}`, `{"_id":1,"n":{"$numberDecimal":"-0"}}`, true},
		// Types are part of values otherwise.
		{`{"ok":true}`, `{"_id":1,"ok":1}`, false},
		{`{"s":"1"}`, `{"_id":1,"s":1}`, false},
		{`{"s":{"$gt":"b"}}`, `{"_id":1,"s":"c"}`, true},
		{`{"s":{"$gt":"b"}}`, `{"_id":1,"s":"a"}`, false},
		{`{"s":{"$gt":"b"}}`, `{"_id":1,"s":5}`, false},
		{`{"d":{"$gte":{"$date":"2024-01-01T00:00:00Z"}}}`, `{"_id":1,"d":{"$date":"2024-06-01T00:00:00Z"}}`, true},
		{`{"d":{"$gte":{"$date":"2024-01-01T00:00:00Z"}}}`, `{"_id":1,"d":"2024-06-01"}`, false},
		{`{"o":{"$oid":"5f0000000000000000000001"}}`, `{"_id":1,"o":{"$oid":"5f0000000000000000000001"}}`, true},
		// null and existence.
		{`{"a":null}`, `{"_id":1}`, true},
		{`{"a":null}`, `{"_id":1,"a":null}`, true},
		{`{"a":null}`, `{"_id":1,"a":0}`, false},
		{`{"a":{"$ne":null}}`, `{"_id":1}`, false},
		{`{"a":{"$ne":null}}`, `{"_id":1,"a":false}`, true},
		{`{"a":{"$gte":null}}`, `{"_id":1}`, true},
		{`{"a":{"$exists":true}}`, `{"_id":1,"a":null}`, true},
		{`{"a":{"$exists":true}}`, `{"_id":1}`, false},
		{`{"a":{"$exists":false}}`, `{"_id":1}`, true},
		{`{"a.b":{"$exists":true}}`, `{"_id":1,"a":[{"c":1},{"b":1}]}`, true},
		// $in, $nin, $ne.
		{`{"t":{"$in":["a","b"]}}`, `{"_id":1,"t":"b"}`, true},
		{`{"t":{"$in":["a","b"]}}`, `{"_id":1,"t":["x","a"]}`, true},
		{`{"t":{"$in":["a",null]}}`, `{"_id":1}`, true},
		{`{"t":{"$nin":["a","b"]}}`, `{"_id":1}`, true},
		{`{"t":{"$nin":["a","b"]}}`, `{"_id":1,"t":"a"}`, false},
		{`{"t":{"$ne":"a"}}`, `{"_id":1,"t":["a","b"]}`, false},
		// Paths, arrays and documents.
		{`{"a.b":1}`, `{"_id":1,"a":{"b":1}}`, true},
		{`{"a.b":1}`, `{"_id":1,"a":[{"b":2},{"b":1}]}`, true},
		{`{"a.1.b":1}`, `{"_id":1,"a":[{"b":2},{"b":1}]}`, true},
		{`{"a.0.b":1}`, `{"_id":1,"a":[{"b":2},{"b":1}]}`, false},
		{`{"a.b":1}`, `{"_id":1,"a":5}`, false},
		{`{"a":[1,2]}`, `{"_id":1,"a":[1,2]}`, true},
		{`{"a":[1,2]}`, `{"_id":1,"a":[2,1]}`, false},
		{`{"a":2}`, `{"_id":1,"a":[1,2]}`, true},
		{`{"a":{"$gt":1}}`, `{"_id":1,"a":[0,5]}`, true},
		{`{"a":{"x":1,"y":2}}`, `{"_id":1,"a":{"x":1,"y":2}}`, true},
		{`{"a":{"x":1,"y":2}}`, `{"_id":1,"a":{"x":1.0,"y":{"$numberLong":"2"}}}`, true},
		{`{"a":{"x":1,"y":2}}`, `{"_id":1,"a":{"y":2,"x":1}}`, false},
		{`{"a":{"x":1}}`, `{"_id":1,"a":{"x":1,"y":2}}`, false},
		// Logical operators.
		{`{"$or":[{"a":1},{"b":1}]}`, `{"_id":1,"b":1}`, true},
		{`{"$or":[{"a":1},{"b":1}]}`, `{"_id":1,"b":2}`, false},
		{`{"$and":[{"a":1},{"b":1}]}`, `{"_id":1,"a":1,"b":1}`, true},
		{`{"$and":[{"a":1},{"b":1}]}`, `{"_id":1,"a":1}`, false},
		{`{"$nor":[{"a":1},{"b":1}]}`, `{"_id":1,"a":1}`, false},
		{`{"$nor":[{"a":1},{"b":1}]}`, `{"_id":1}`, true},
		{`{"age":{"$not":{"$gte":18}}}`, `{"_id":1,"age":10}`, true},
		{`{"age":{"$not":{"$gte":18}}}`, `{"_id":1}`, true},
		{`{"age":{"$not":{"$gte":18}}}`, `{"_id":1,"age":20}`, false},
		{`{"age":{"$gte":18,"$lt":65}}`, `{"_id":1,"age":70}`, false},
		{`{"$or":[{"a":{"$in":[1,2]}},{"$and":[{"b":{"$exists":false}},{"c":{"$eq":"x"}}]}]}`, `{"_id":1,"c":"x"}`, true},
	}
	for _, c := range cases {
		tr := transformtest.Configured(t, filter.New(), c.query)
		got := transformtest.One(t, tr, transformtest.Doc(t, c.doc)) != nil
		if got != c.want {
			t.Errorf("filter:%s on %s = %v, want %v", c.query, c.doc, got, c.want)
		}
	}
}

func TestCopyDropsDocuments(t *testing.T) {
	tr := transformtest.Configured(t, filter.New(), `{"keep":true}`)
	var docs []bson.Raw
	for i := range 10 {
		docs = append(docs, transformtest.Doc(t, `{"_id":`+string(rune('0'+i))+`,"keep":`+map[bool]string{true: "true", false: "false"}[i%3 == 0]+`}`))
	}
	out, err := tr.TransformData(context.Background(), "db.c", docs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Namespace != "db.c" || len(out[0].Docs) != 4 {
		t.Fatalf("got %d batches, want one of db.c with 4 documents: %+v", len(out), out)
	}
	for i, d := range out[0].Docs {
		if id := d.Lookup("_id").Int32(); id != int32(3*i) {
			t.Errorf("document %d has _id %d, want %d (order kept)", i, id, 3*i)
		}
	}
}

func TestUpdates(t *testing.T) {
	cases := []struct {
		name, query string
		in          up
		want        []up
	}{
		{"insert matching", `{"s":"a"}`, up{Type: ins, ID: 1, Doc: `{"_id":1,"s":"a"}`}, []up{{Type: ins, ID: 1, Doc: `{"_id":1,"s":"a"}`}}},
		{"insert not matching deletes", `{"s":"a"}`, up{Type: ins, ID: 1, Doc: `{"_id":1,"s":"b"}`}, []up{{Type: del, ID: 1}}},
		{"replace matching", `{"s":"a"}`, up{Type: rep, ID: 1, Doc: `{"_id":1,"s":"a"}`}, []up{{Type: rep, ID: 1, Doc: `{"_id":1,"s":"a"}`}}},
		{"replace not matching deletes", `{"s":"a"}`, up{Type: rep, ID: 1, Doc: `{"_id":1}`}, []up{{Type: del, ID: 1}}},
		{"delete passes", `{"s":"a"}`, up{Type: del, ID: 1}, []up{{Type: del, ID: 1}}},
		{"partial setting a non-matching value deletes", `{"s":"a"}`, up{Type: part, ID: 1, Doc: `{"s":"b","x":1}`}, []up{{Type: del, ID: 1}}},
		{"partial unsetting the field deletes", `{"s":"a"}`, up{Type: part, ID: 1, Unset: []string{"s"}}, []up{{Type: del, ID: 1}}},
		{"partial setting a parent deletes", `{"s.t":"a"}`, up{Type: part, ID: 1, Doc: `{"s":{"t":"b"}}`}, []up{{Type: del, ID: 1}}},
		{"partial determining an $or deletes", `{"$or":[{"a":1},{"b":1}]}`, up{Type: part, ID: 1, Doc: `{"a":2}`, Unset: []string{"b"}}, []up{{Type: del, ID: 1}}},
		{"_id only: matching passes", `{"_id":{"$lt":10}}`, up{Type: part, ID: 5, Doc: `{"x":1}`}, []up{{Type: part, ID: 5, Doc: `{"x":1}`}}},
		{"_id only: other dropped", `{"_id":{"$lt":10}}`, up{Type: part, ID: 50, Doc: `{"x":1}`}, nil},
		{"_id only: insert dropped", `{"_id":{"$lt":10}}`, up{Type: ins, ID: 50, Doc: `{"_id":50}`}, nil},
		{"_id only: delete dropped", `{"_id":{"$lt":10}}`, up{Type: del, ID: 50}, nil},
		{"_id only: delete passes", `{"_id":{"$lt":10}}`, up{Type: del, ID: 5}, []up{{Type: del, ID: 5}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := transformtest.Configured(t, filter.New(), c.query)
			got, err := transformtest.Updates(t, tr, c.in)
			if err != nil {
				t.Fatal(err)
			}
			transformtest.SameUpdates(t, got, c.want)
		})
	}
}

// A partial update that may concern a document the sink does not hold, or
// leave one that stops matching, cannot be decided: the run fails.
func TestUndecidablePartialUpdates(t *testing.T) {
	cases := []struct {
		query string
		in    up
	}{
		{`{"s":"a"}`, up{Type: part, ID: 9, Doc: `{"x":1}`}},
		{`{"s":"a"}`, up{Type: part, ID: 9, Doc: `{"s":"a"}`}},
		{`{"s":null}`, up{Type: part, ID: 9, Unset: []string{"s"}}},
		{`{"s.t":"a"}`, up{Type: part, ID: 9, Doc: `{"s.u":1}`}},
		{`{"s":{"t":"a"}}`, up{Type: part, ID: 9, Doc: `{"s.t":"b"}`}},
		{`{"$or":[{"a":1},{"b":1}]}`, up{Type: part, ID: 9, Doc: `{"a":2}`}},
	}
	for _, c := range cases {
		tr := transformtest.Configured(t, filter.New(), c.query)
		_, err := transformtest.Updates(t, tr, c.in)
		if sdk.KindOf(err) != sdk.KindFailedPrecondition || !strings.Contains(err.Error(), `filter: namespace "db.c", _id 9: cannot decide`) {
			t.Errorf("filter:%s on %v: error = %v (kind %v), want a failed precondition naming the document", c.query, c.in, err, sdk.KindOf(err))
		}
	}
}

// A document moving in and out of the filter through inserts, replaces and
// deletes leaves the sink with exactly the matching documents.
func TestSinkFollowsMatches(t *testing.T) {
	tr := transformtest.Configured(t, filter.New(), `{"active":true}`)
	o := random.State{}
	sink := random.State{}
	events := []up{
		{Type: ins, ID: 1, Doc: `{"_id":1,"active":true}`},
		{Type: ins, ID: 2, Doc: `{"_id":2,"active":false}`},
		{Type: rep, ID: 1, Doc: `{"_id":1,"active":false}`},
		{Type: rep, ID: 2, Doc: `{"_id":2,"active":true}`},
		{Type: part, ID: 2, Doc: `{"active":false}`},
		{Type: rep, ID: 2, Doc: `{"_id":2,"active":true,"v":2}`},
		{Type: del, ID: 2},
		{Type: ins, ID: 2, Doc: `{"_id":2,"active":true,"v":3}`},
	}
	for _, e := range events {
		u := sdk.Update{ID: transformtest.ID(e.ID), Type: e.Type, Doc: transformtest.Doc(t, e.Doc), Unset: e.Unset}
		if err := o.Apply("db.c", u); err != nil {
			t.Fatal(err)
		}
		out, err := tr.TransformUpdates(context.Background(), "db.c", []sdk.Update{u})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range out {
			for _, ou := range b.Updates {
				if err := sink.Apply(b.Namespace, ou); err != nil {
					t.Fatalf("after %v: %v", e, err)
				}
			}
		}
		for id, d := range o["db.c"] {
			_, held := sink["db.c"][id]
			if want := d.Lookup("active").Boolean(); held != want {
				t.Fatalf("after %v: sink holds _id %d: %v, want %v", e, id, held, want)
			}
		}
	}
	if got := transformtest.JSON(sink["db.c"][2]); got != `{"_id":2,"active":true,"v":3}` {
		t.Errorf("sink holds %s", got)
	}
}

func TestIDInsideCompoundID(t *testing.T) {
	tr := transformtest.Configured(t, filter.New(), `{"_id.t":"a"}`)
	mk := func(ej string) bson.RawValue { return transformtest.Value(t, ej) }
	in := []sdk.Update{
		{ID: mk(`{"t":"a","n":1}`), Type: part, Doc: transformtest.Doc(t, `{"x":1}`)},
		{ID: mk(`{"t":"b","n":1}`), Type: part, Doc: transformtest.Doc(t, `{"x":1}`)},
	}
	out, err := tr.TransformUpdates(context.Background(), "db.c", in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || len(out[0].Updates) != 1 || !out[0].Updates[0].ID.Equal(in[0].ID) {
		t.Errorf("got %+v, want only the update of tenant a", out)
	}
}

func TestSpecErrors(t *testing.T) {
	cases := []struct{ spec, want string }{
		{"", "filter: no query given: write filter:QUERY"},
		{"status=active", `filter: the query must be a JSON document, e.g. filter:{"status":"active"}`},
		{`{"a":`, "filter: the query is not valid Extended JSON"},
		{`{"$where":"x"}`, `filter: unsupported top-level operator "$where": use $and, $or, $nor or field conditions`},
		{`{"a":{"$regex":"x"}}`, `filter: field "a": unsupported operator "$regex": use $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists, $not`},
		{`{"a":{"$gt":1,"b":2}}`, `filter: field "a": a document mixes operators and field names`},
		{`{"$or":[]}`, "filter: $or needs a non-empty array"},
		{`{"$or":{"a":1}}`, "filter: $or needs an array of query documents"},
		{`{"$and":[1]}`, "filter: $and needs an array of query documents, not of 32-bit integer"},
		{`{"a":1,"a":2}`, `filter: "a" is given twice in one document`},
		{`{"a":{"$in":1}}`, `filter: field "a": $in needs an array`},
		{`{"a":{"$exists":"x"}}`, `filter: field "a": $exists needs true or false`},
		{`{"a":{"$not":1}}`, `filter: field "a": $not needs a document of operators`},
		{`{"a.":1}`, `filter: field "a.": empty field name between dots`},
	}
	for _, c := range cases {
		err := filter.New().Configure(context.Background(), c.spec)
		if err == nil || sdk.KindOf(err) != sdk.KindInvalidArgument || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Configure(%q) = %v (kind %v), want an invalid argument starting %q", c.spec, err, sdk.KindOf(err), c.want)
		}
	}
}

// On _id, the change path agrees with the copy path on every kind of event,
// and never sends a partial update of a document the sink does not hold
// (CheckCDC's Apply rejects it).
func TestCDCAgreesWithCopy(t *testing.T) {
	o := random.DefaultOptions()
	o.Namespaces, o.Docs, o.Size, o.Updates = 2, 300, 200, 3000
	for _, q := range []string{`{"_id":{"$lt":150}}`, `{"$or":[{"_id":{"$lt":50}},{"_id":{"$gte":300}}]}`} {
		t.Run(q, func(t *testing.T) {
			transformtest.CheckCDC(t, transformtest.Configured(t, filter.New(), q), o, false, nil)
		})
	}
}
