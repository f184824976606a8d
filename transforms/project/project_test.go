package project_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/transformtest"
	"github.com/dsyncio/dsync/transforms/project"
)

type up = transformtest.Update

const (
	ins  = sdk.UpdateInsert
	rep  = sdk.UpdateReplace
	del  = sdk.UpdateDelete
	part = sdk.UpdatePartial
)

func transform(name string) sdk.Transform {
	if name == "keep" {
		return project.NewKeep()
	}
	return project.NewDrop()
}

func TestDocuments(t *testing.T) {
	cases := []struct{ name, transform, spec, in, want string }{
		{"drop top-level", "drop", "password", `{"_id":1,"a":1,"password":"x"}`, `{"_id":1,"a":1}`},
		{"drop nested", "drop", "address.street", `{"_id":1,"address":{"street":"s","city":"c"}}`, `{"_id":1,"address":{"city":"c"}}`},
		{"drop in arrays", "drop", "items.price", `{"_id":1,"items":[{"price":1,"q":1},{"q":2},5]}`, `{"_id":1,"items":[{"q":1},{"q":2},5]}`},
		{"drop missing", "drop", "nope,a.b", `{"_id":1,"a":5}`, `{"_id":1,"a":5}`},
		{"drop several", "drop", "a,c.d", `{"_id":1,"a":1,"b":2,"c":{"d":1,"e":2}}`, `{"_id":1,"b":2,"c":{"e":2}}`},
		{"keep top-level", "keep", "name,email", `{"_id":1,"name":"n","x":1,"email":"e"}`, `{"_id":1,"name":"n","email":"e"}`},
		{"keep keeps _id where it is", "keep", "name", `{"name":"n","_id":1,"x":1}`, `{"name":"n","_id":1}`},
		{"keep only _id", "keep", "_id", `{"_id":1,"x":1}`, `{"_id":1}`},
		{"keep nested", "keep", "a.b", `{"_id":1,"a":{"b":1,"c":2},"z":1}`, `{"_id":1,"a":{"b":1}}`},
		{"keep empty parent", "keep", "a.b", `{"_id":1,"a":{"c":1}}`, `{"_id":1,"a":{}}`},
		{"keep scalar on the way", "keep", "a.b", `{"_id":1,"a":5}`, `{"_id":1}`},
		{"keep in arrays", "keep", "items.price", `{"_id":1,"items":[{"price":1,"q":1},5,{"q":2}]}`, `{"_id":1,"items":[{"price":1},{}]}`},
		{"keep whole subdocument", "keep", "a", `{"_id":1,"a":{"b":[1,{"c":2}]},"z":0}`, `{"_id":1,"a":{"b":[1,{"c":2}]}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := transformtest.Configured(t, transform(c.transform), c.spec)
			got := transformtest.JSON(transformtest.One(t, tr, transformtest.Doc(t, c.in)))
			if want := transformtest.JSON(transformtest.Doc(t, c.want)); got != want {
				t.Errorf("%s:%s of %s\n got %s\nwant %s", c.transform, c.spec, c.in, got, want)
			}
			for _, typ := range []sdk.UpdateType{ins, rep} {
				ups, err := transformtest.Updates(t, tr, up{Type: typ, ID: 1, Doc: c.in})
				if err != nil {
					t.Fatal(err)
				}
				transformtest.SameUpdates(t, ups, []up{{Type: typ, ID: 1, Doc: c.want}})
			}
		})
	}
}

func TestUpdates(t *testing.T) {
	cases := []struct {
		name, transform, spec string
		in                    up
		want                  []up
	}{
		{"drop: delete passes", "drop", "a", up{Type: del, ID: 1}, []up{{Type: del, ID: 1}}},
		{"drop: set dropped field", "drop", "password", up{Type: part, ID: 1, Doc: `{"password":"x","name":"n"}`}, []up{{Type: part, ID: 1, Doc: `{"name":"n"}`}}},
		{"drop: nothing left", "drop", "password", up{Type: part, ID: 1, Doc: `{"password":"x"}`, Unset: []string{"password"}}, nil},
		{"drop: set above", "drop", "address.street", up{Type: part, ID: 1, Doc: `{"address":{"street":"s","city":"c"}}`}, []up{{Type: part, ID: 1, Doc: `{"address":{"city":"c"}}`}}},
		{"drop: set below", "drop", "address", up{Type: part, ID: 1, Doc: `{"address.city":"c","x":1}`}, []up{{Type: part, ID: 1, Doc: `{"x":1}`}}},
		{"drop: unsets", "drop", "address.street", up{Type: part, ID: 1, Unset: []string{"address.street", "address", "x"}}, []up{{Type: part, ID: 1, Unset: []string{"address", "x"}}}},
		{"drop: array index below", "drop", "items.price", up{Type: part, ID: 1, Doc: `{"items.1.price":1,"items.1.q":2}`}, []up{{Type: part, ID: 1, Doc: `{"items.1.q":2}`}}},
		{"drop: array element", "drop", "items.price", up{Type: part, ID: 1, Doc: `{"items.1":{"price":1,"q":2}}`}, []up{{Type: part, ID: 1, Doc: `{"items.1":{"q":2}}`}}},
		{"drop: whole array", "drop", "items.price", up{Type: part, ID: 1, Doc: `{"items":[{"price":1},7]}`}, []up{{Type: part, ID: 1, Doc: `{"items":[{},7]}`}}},
		{"keep: delete passes", "keep", "a", up{Type: del, ID: 1}, []up{{Type: del, ID: 1}}},
		{"keep: set kept and other", "keep", "name", up{Type: part, ID: 1, Doc: `{"name":"n","x":1}`, Unset: []string{"name", "y"}}, []up{{Type: part, ID: 1, Doc: `{"name":"n"}`, Unset: []string{"name"}}}},
		{"keep: nothing kept", "keep", "name", up{Type: part, ID: 1, Doc: `{"x":1}`}, nil},
		{"keep: set above", "keep", "address.city", up{Type: part, ID: 1, Doc: `{"address":{"street":"s","city":"c"}}`}, []up{{Type: part, ID: 1, Doc: `{"address":{"city":"c"}}`}}},
		{"keep: scalar above", "keep", "address.city", up{Type: part, ID: 1, Doc: `{"address":5}`}, []up{{Type: part, ID: 1, Unset: []string{"address"}}}},
		{"keep: set below and beside", "keep", "address.city", up{Type: part, ID: 1, Doc: `{"address.city":"c","address.street":"s"}`}, []up{{Type: part, ID: 1, Doc: `{"address.city":"c"}`}}},
		{"keep: unsets", "keep", "address.city", up{Type: part, ID: 1, Unset: []string{"address", "address.city", "address.street", "x"}}, []up{{Type: part, ID: 1, Unset: []string{"address", "address.city"}}}},
		{"keep: whole array", "keep", "items.price", up{Type: part, ID: 1, Doc: `{"items":[{"price":1,"q":1},5]}`}, []up{{Type: part, ID: 1, Doc: `{"items":[{"price":1}]}`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := transformtest.Configured(t, transform(c.transform), c.spec)
			got, err := transformtest.Updates(t, tr, c.in)
			if err != nil {
				t.Fatal(err)
			}
			transformtest.SameUpdates(t, got, c.want)
		})
	}
}

// keep removes array elements that are not documents, so an update path
// through an array index of a kept path cannot be mapped.
func TestKeepArrayIndex(t *testing.T) {
	tr := transformtest.Configured(t, project.NewKeep(), "items.price")
	for _, in := range []up{
		{Type: part, ID: 3, Doc: `{"items.1.price":1}`},
		{Type: part, ID: 3, Doc: `{"items.1":{"price":1}}`},
		{Type: part, ID: 3, Unset: []string{"items.0.price"}},
	} {
		_, err := transformtest.Updates(t, tr, in)
		if sdk.KindOf(err) != sdk.KindFailedPrecondition || !strings.Contains(err.Error(), "keep: namespace \"db.c\", _id 3: ") {
			t.Errorf("%v: error = %v (kind %v), want a failed precondition naming the document", in, err, sdk.KindOf(err))
		}
	}
}

func TestSpecErrors(t *testing.T) {
	cases := []struct{ transform, spec, want string }{
		{"drop", "", "drop: no fields given: write drop:FIELD[,FIELD...]"},
		{"keep", " ", "keep: no fields given: write keep:FIELD[,FIELD...]"},
		{"drop", "_id", "drop: _id cannot be dropped"},
		{"drop", "_id.x", "drop: _id cannot be dropped"},
		{"keep", "_id.x", `keep: field "_id.x": keep always keeps _id whole`},
		{"drop", "a,a.b", `drop: "a.b" overlaps "a"`},
		{"keep", "a.b,a", `keep: "a" overlaps "a.b"`},
		{"drop", "a,a", `drop: "a" is given twice`},
		{"keep", "a,$b", `keep: field "$b": field name "$b" starts with '$'`},
		{"drop", "a,,b", `drop: entry 2 of "a,,b" is empty`},
		{"drop", "a..b", `drop: field "a..b": empty field name between dots`},
	}
	for _, c := range cases {
		err := transform(c.transform).Configure(context.Background(), c.spec)
		if err == nil || sdk.KindOf(err) != sdk.KindInvalidArgument || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s Configure(%q) = %v (kind %v), want an invalid argument starting %q", c.transform, c.spec, err, sdk.KindOf(err), c.want)
		}
	}
}

func TestCDCAgreesWithCopy(t *testing.T) {
	o := random.DefaultOptions()
	o.Namespaces, o.Docs, o.Size, o.Updates = 2, 300, 200, 3000
	t.Run("drop", func(t *testing.T) {
		transformtest.CheckCDC(t, transformtest.Configured(t, project.NewDrop(), "arr,sub.b,tag"), o, false, nil)
	})
	// Dropping meta.seq leaves meta, possibly empty; an update that creates
	// meta through meta.seq cannot create that empty parent in the sink.
	t.Run("drop inside a created parent", func(t *testing.T) {
		transformtest.CheckCDC(t, transformtest.Configured(t, project.NewDrop(), "meta.seq,sub.a"), o, false, transformtest.WithoutEmptyDocs)
	})
	t.Run("keep", func(t *testing.T) {
		transformtest.CheckCDC(t, transformtest.Configured(t, project.NewKeep(), "v,sub.a,meta,tag"), o, false, nil)
	})
}
