// Package transformtest holds test helpers for the built-in transforms:
// documents from Extended JSON, update tables, and [CheckCDC], which proves
// that a transform's copy and change paths agree on a generated dataset.
package transformtest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
)

// Doc parses a relaxed Extended JSON document; nil for "".
func Doc(t testing.TB, ej string) bson.Raw {
	t.Helper()
	if ej == "" {
		return nil
	}
	var d bson.Raw
	if err := bson.UnmarshalExtJSON([]byte(ej), false, &d); err != nil {
		t.Fatalf("bad test document %s: %v", ej, err)
	}
	return d
}

// Value parses a relaxed Extended JSON value.
func Value(t testing.TB, ej string) bson.RawValue {
	t.Helper()
	return Doc(t, `{"v":`+ej+`}`).Lookup("v")
}

// ID returns an int32 _id value.
func ID(i int32) bson.RawValue {
	return bson.RawValue{Type: bson.TypeInt32, Value: []byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)}}
}

// JSON renders a document as relaxed Extended JSON for messages; "" for nil.
func JSON(d bson.Raw) string {
	if d == nil {
		return ""
	}
	b, err := bson.MarshalExtJSON(d, false, false)
	if err != nil {
		return fmt.Sprintf("<invalid %x>", []byte(d))
	}
	return string(b)
}

// Configured returns tr configured with spec, failing the test otherwise.
func Configured(t testing.TB, tr sdk.Transform, spec string) sdk.Transform {
	t.Helper()
	if err := tr.Configure(context.Background(), spec); err != nil {
		t.Fatalf("Configure(%q): %v", spec, err)
	}
	return tr
}

// One transforms a single document of namespace "db.c"; nil when dropped.
func One(t testing.TB, tr sdk.Transform, doc bson.Raw) bson.Raw {
	t.Helper()
	out, err := tr.TransformData(context.Background(), "db.c", []bson.Raw{doc})
	if err != nil {
		t.Fatalf("TransformData(%s): %v", JSON(doc), err)
	}
	var docs []bson.Raw
	for _, b := range out {
		docs = append(docs, b.Docs...)
	}
	switch len(docs) {
	case 0:
		return nil
	case 1:
		return docs[0]
	}
	t.Fatalf("TransformData(%s) returned %d documents", JSON(doc), len(docs))
	return nil
}

// Update is an update written for tables: ID is an int32, Doc Extended JSON.
type Update struct {
	Type  sdk.UpdateType
	ID    int32
	Doc   string
	Unset []string
}

// String renders u for messages.
func (u Update) String() string {
	return fmt.Sprintf("%s _id %d doc %s unset %q", u.Type, u.ID, u.Doc, u.Unset)
}

// Updates transforms ups of namespace "db.c" and returns the output in
// table form (the namespace of every batch must stay "db.c").
func Updates(t testing.TB, tr sdk.Transform, ups ...Update) ([]Update, error) {
	t.Helper()
	in := make([]sdk.Update, len(ups))
	for i, u := range ups {
		in[i] = sdk.Update{ID: ID(u.ID), Type: u.Type, Doc: Doc(t, u.Doc), Unset: u.Unset}
	}
	out, err := tr.TransformUpdates(context.Background(), "db.c", in)
	if err != nil {
		return nil, err
	}
	var res []Update
	for _, b := range out {
		if b.Namespace != "db.c" {
			t.Fatalf("TransformUpdates returned namespace %q, want db.c", b.Namespace)
		}
		for _, u := range b.Updates {
			id, ok := u.ID.Int32OK()
			if !ok {
				t.Fatalf("update with _id %s, want an int32", u.ID)
			}
			res = append(res, Update{Type: u.Type, ID: id, Doc: JSON(u.Doc), Unset: u.Unset})
		}
	}
	return res, nil
}

// SameUpdates fails the test unless got equals want, comparing documents
// by their Extended JSON.
func SameUpdates(t testing.TB, got, want []Update) {
	t.Helper()
	norm := func(us []Update) []Update {
		out := make([]Update, len(us))
		for i, u := range us {
			if u.Doc != "" {
				u.Doc = JSON(Doc(t, u.Doc))
			}
			if len(u.Unset) == 0 {
				u.Unset = nil
			}
			out[i] = u
		}
		return out
	}
	g, w := norm(got), norm(want)
	if !slices.EqualFunc(g, w, func(a, b Update) bool {
		return a.Type == b.Type && a.ID == b.ID && a.Doc == b.Doc && slices.Equal(a.Unset, b.Unset)
	}) {
		t.Errorf("updates differ:\n got %v\nwant %v", g, w)
	}
}

// CheckCDC proves that tr's change path agrees with its copy path on the
// random:// dataset o: the initial documents transformed, then every change
// event transformed and applied with MongoDB semantics ([random.State.Apply],
// which rejects a partial update of a document the sink does not hold),
// must equal the final documents transformed. Documents compare byte for
// byte, or with fields in any order when anyOrder is set; strip, when not
// nil, is applied to both sides first. Events go through tr in batches of
// up to 50 of one namespace.
func CheckCDC(t *testing.T, tr sdk.Transform, o random.Options, anyOrder bool, strip func(bson.Raw) bson.Raw) {
	t.Helper()
	ctx := context.Background()
	apply := func(s random.State, ns string, docs []bson.Raw) {
		out, err := tr.TransformData(ctx, ns, docs)
		if err != nil {
			t.Fatalf("TransformData(%s): %v", ns, err)
		}
		for _, b := range out {
			m := s[b.Namespace]
			if m == nil {
				m = map[int64]bson.Raw{}
				s[b.Namespace] = m
			}
			for _, d := range b.Docs {
				m[d.Lookup("_id").Int64()] = d
			}
		}
	}
	transformState := func(src random.State) random.State {
		s := random.State{}
		for _, ns := range slices.Sorted(maps.Keys(src)) {
			docs := src[ns]
			ids := slices.Sorted(maps.Keys(docs))
			in := make([]bson.Raw, len(ids))
			for i, id := range ids {
				in[i] = docs[id]
			}
			apply(s, ns, in)
		}
		return s
	}
	sink := transformState(o.InitialState())
	var batch []sdk.Update
	batchNS := ""
	flush := func() {
		if len(batch) == 0 {
			return
		}
		out, err := tr.TransformUpdates(ctx, batchNS, batch)
		if err != nil {
			t.Fatalf("TransformUpdates(%s): %v", batchNS, err)
		}
		for _, b := range out {
			for _, u := range b.Updates {
				if err := sink.Apply(b.Namespace, u); err != nil {
					t.Fatalf("apply transformed update to %s: %v", b.Namespace, err)
				}
			}
		}
		batch = batch[:0]
	}
	events := 0
	for e := range o.Events(0) {
		if e.Namespace != batchNS || len(batch) == 50 {
			flush()
			batchNS = e.Namespace
		}
		batch = append(batch, e.Update)
		events++
	}
	flush()
	final, err := o.ExpectedState()
	if err != nil {
		t.Fatal(err)
	}
	want := transformState(final)
	bad := 0
	for _, ns := range slices.Sorted(maps.Keys(union(want, sink))) {
		w, g := want[ns], sink[ns]
		for _, id := range slices.Sorted(maps.Keys(union(w, g))) {
			wd, gd := w[id], g[id]
			if strip != nil {
				if wd != nil {
					wd = strip(wd)
				}
				if gd != nil {
					gd = strip(gd)
				}
			}
			if sameDoc(wd, gd, anyOrder) {
				continue
			}
			if bad++; bad <= 5 {
				t.Errorf("%s _id %d: after %d events through the transform\n got %s\nwant %s", ns, id, events, JSON(gd), JSON(wd))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d documents differ between the copy and change paths", bad)
	}
}

func union[K comparable, V any](a, b map[K]V) map[K]V {
	out := maps.Clone(a)
	if out == nil {
		out = map[K]V{}
	}
	maps.Copy(out, b)
	return out
}

func sameDoc(a, b bson.Raw, anyOrder bool) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if !anyOrder {
		return bytes.Equal(a, b)
	}
	return JSON(Sorted(a)) == JSON(Sorted(b))
}

// WithoutEmptyDocs returns d without its top-level fields that hold an
// empty document.
func WithoutEmptyDocs(d bson.Raw) bson.Raw {
	els, err := d.Elements()
	if err != nil {
		return d
	}
	var out bson.D
	for _, e := range els {
		if sub, ok := e.Value().DocumentOK(); ok && len(sub) == 5 {
			continue
		}
		out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
	}
	b, err := bson.Marshal(out)
	if err != nil {
		return d
	}
	return b
}

// Sorted returns d with the fields of every embedded document sorted by
// name.
func Sorted(d bson.Raw) bson.Raw {
	els, err := d.Elements()
	if err != nil {
		return d
	}
	sort.SliceStable(els, func(i, j int) bool { return els[i].Key() < els[j].Key() })
	var out bson.D
	for _, e := range els {
		v := e.Value()
		if sub, ok := v.DocumentOK(); ok {
			v = bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: Sorted(sub)}
		}
		out = append(out, bson.E{Key: e.Key(), Value: v})
	}
	b, err := bson.Marshal(out)
	if err != nil {
		return d
	}
	return b
}
