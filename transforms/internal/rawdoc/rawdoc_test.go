package rawdoc_test

import (
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/transforms/internal/fieldpath"
	"github.com/dsyncio/dsync/transforms/internal/rawdoc"
	"github.com/dsyncio/dsync/transforms/internal/transformtest"
)

func TestSet(t *testing.T) {
	cases := []struct {
		doc, path string
		pos       rawdoc.Position
		want      string
	}{
		{`{"_id":1,"a":1}`, "b", rawdoc.Last, `{"_id":1,"a":1,"b":"v"}`},
		{`{"_id":1,"a":1}`, "b", rawdoc.First, `{"_id":1,"b":"v","a":1}`},
		{`{"a":1,"_id":1}`, "b", rawdoc.First, `{"b":"v","a":1,"_id":1}`},
		{`{"_id":1,"a":1,"c":2}`, "a", rawdoc.First, `{"_id":1,"a":"v","c":2}`},
		{`{"_id":1}`, "m.n", rawdoc.Last, `{"_id":1,"m":{"n":"v"}}`},
		{`{"_id":1,"m":{"_id":0,"k":1}}`, "m.n", rawdoc.First, `{"_id":1,"m":{"n":"v","_id":0,"k":1}}`},
		{`{}`, "a", rawdoc.First, `{"a":"v"}`},
	}
	for _, c := range cases {
		got, err := rawdoc.Set(transformtest.Doc(t, c.doc), fieldpath.Split(c.path), rawdoc.String("v"), c.pos)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := transformtest.JSON(got), transformtest.JSON(transformtest.Doc(t, c.want)); g != w {
			t.Errorf("Set(%s, %s) = %s, want %s", c.doc, c.path, g, w)
		}
	}
	_, err := rawdoc.Set(transformtest.Doc(t, `{"a":{"b":[1]}}`), fieldpath.Split("a.b.c"), rawdoc.Null(), rawdoc.Last)
	var nd *rawdoc.NotDocumentError
	if !errors.As(err, &nd) || nd.Path.String() != "a.b" || nd.Type != bson.TypeArray || err.Error() != `"a.b" is of type array, not a document` {
		t.Errorf("Set through an array: %v", err)
	}
}

func TestRemoveAndLookup(t *testing.T) {
	doc := transformtest.Doc(t, `{"_id":1,"a":{"b":2,"c":3},"d":[{"b":1}]}`)
	out, v, ok, err := rawdoc.Remove(doc, fieldpath.Split("a.b"))
	if err != nil || !ok || v.Int32() != 2 || transformtest.JSON(out) != `{"_id":1,"a":{"c":3},"d":[{"b":1}]}` {
		t.Errorf("Remove(a.b) = %s, %v, %v, %v", transformtest.JSON(out), v, ok, err)
	}
	for _, p := range []string{"x", "a.x", "d.b", "a.b.c"} {
		if out, _, ok, err := rawdoc.Remove(doc, fieldpath.Split(p)); ok || err != nil || string(out) != string(doc) {
			t.Errorf("Remove(%s) changed the document: %v %v", p, ok, err)
		}
		if _, ok := rawdoc.Lookup(doc, fieldpath.Split(p)); ok {
			t.Errorf("Lookup(%s) found a value", p)
		}
	}
	if v, ok := rawdoc.Lookup(doc, fieldpath.Split("a.c")); !ok || v.Int32() != 3 {
		t.Errorf("Lookup(a.c) = %v, %v", v, ok)
	}
}

func TestMapLeaves(t *testing.T) {
	v := transformtest.Value(t, `{"a":[1,{"b":2}],"c":{}}`)
	got, err := rawdoc.MapLeaves(v, func(bson.RawValue) bson.RawValue { return rawdoc.String("x") })
	if err != nil {
		t.Fatal(err)
	}
	if g := transformtest.JSON(got.Document()); g != `{"a":["x",{"b":"x"}],"c":{}}` {
		t.Errorf("MapLeaves = %s", g)
	}
}
