package rename_test

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/transformtest"
	"github.com/dsyncio/dsync/transforms/rename"
)

type up = transformtest.Update

const (
	ins  = sdk.UpdateInsert
	rep  = sdk.UpdateReplace
	del  = sdk.UpdateDelete
	part = sdk.UpdatePartial
)

func TestDocuments(t *testing.T) {
	cases := []struct{ name, spec, in, want, err string }{
		{"in place", "a=b", `{"_id":1,"a":1,"c":2}`, `{"_id":1,"b":1,"c":2}`, ""},
		{"target replaced", "a=b", `{"_id":1,"b":0,"a":1}`, `{"_id":1,"b":1}`, ""},
		{"target discarded without source", "a=b", `{"_id":1,"b":0,"c":1}`, `{"_id":1,"c":1}`, ""},
		{"missing source", "a=b", `{"_id":1,"c":1}`, `{"_id":1,"c":1}`, ""},
		{"swap", "a=b,b=a", `{"_id":1,"a":1,"b":2,"c":3}`, `{"_id":1,"b":1,"a":2,"c":3}`, ""},
		{"chain", "a=b,b=c", `{"_id":1,"a":1,"b":2}`, `{"_id":1,"b":1,"c":2}`, ""},
		{"nested in place", "sub.a=sub.x", `{"_id":1,"sub":{"a":1,"b":2}}`, `{"_id":1,"sub":{"x":1,"b":2}}`, ""},
		{"move out", "sub.a=top", `{"_id":1,"sub":{"a":1,"b":2},"z":0}`, `{"_id":1,"sub":{"b":2},"z":0,"top":1}`, ""},
		{"move into new parent", "a=m.n", `{"_id":1,"a":{"deep":true},"z":2}`, `{"_id":1,"z":2,"m":{"n":{"deep":true}}}`, ""},
		{"move into existing parent", "a=m.n", `{"_id":1,"a":1,"m":{"k":0}}`, `{"_id":1,"m":{"k":0,"n":1}}`, ""},
		{"arrays are not entered", "arr.a=arr.b", `{"_id":1,"arr":[{"a":1}]}`, `{"_id":1,"arr":[{"a":1}]}`, ""},
		{"scalar on the way to the source", "s.a=s.b", `{"_id":1,"s":5}`, `{"_id":1,"s":5}`, ""},
		{"move under a scalar", "a=z.n", `{"_id":1,"a":1,"z":5}`, "", `"z" is of type 32-bit integer, not a document`},
		{"values keep their type", "d=e", `{"_id":{"$oid":"5f0000000000000000000001"},"d":{"$date":"2024-01-01T00:00:00Z"}}`,
			`{"_id":{"$oid":"5f0000000000000000000001"},"e":{"$date":"2024-01-01T00:00:00Z"}}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := transformtest.Configured(t, rename.New(), c.spec)
			in := transformtest.Doc(t, c.in)
			out, err := tr.TransformData(context.Background(), "db.c", []bson.Raw{in})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error = %v, want one containing %q", err, c.err)
				}
				if sdk.KindOf(err) != sdk.KindFatal {
					t.Errorf("error kind = %v, want fatal", sdk.KindOf(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := transformtest.JSON(out[0].Docs[0])
			if want := transformtest.JSON(transformtest.Doc(t, c.want)); got != want {
				t.Errorf("rename:%s of %s\n got %s\nwant %s", c.spec, c.in, got, want)
			}
			// The same document as an insert and a replace.
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
	const spec = "a=b,sub.x=sub.y,m.p=top"
	cases := []struct {
		name string
		in   up
		want []up
	}{
		{"delete passes", up{Type: del, ID: 1}, []up{{Type: del, ID: 1}}},
		{"insert", up{Type: ins, ID: 1, Doc: `{"_id":1,"a":1,"m":{"p":2}}`}, []up{{Type: ins, ID: 1, Doc: `{"_id":1,"b":1,"m":{},"top":2}`}}},
		{"set source", up{Type: part, ID: 1, Doc: `{"a":1,"c":2}`}, []up{{Type: part, ID: 1, Doc: `{"b":1,"c":2}`}}},
		{"set inside source", up{Type: part, ID: 1, Doc: `{"a.q":1}`}, []up{{Type: part, ID: 1, Doc: `{"b.q":1}`}}},
		{"set target only is dropped", up{Type: part, ID: 1, Doc: `{"b":1}`}, nil},
		{"set target dropped, rest kept", up{Type: part, ID: 1, Doc: `{"b":1,"c":1}`, Unset: []string{"b.x"}}, []up{{Type: part, ID: 1, Doc: `{"c":1}`}}},
		{"unset source", up{Type: part, ID: 1, Unset: []string{"a", "sub.x", "c"}}, []up{{Type: part, ID: 1, Unset: []string{"b", "sub.y", "c"}}}},
		{"set above an in-place rename", up{Type: part, ID: 1, Doc: `{"sub":{"x":1,"z":2,"y":0}}`}, []up{{Type: part, ID: 1, Doc: `{"sub":{"y":1,"z":2}}`}}},
		{"set above a move", up{Type: part, ID: 1, Doc: `{"m":{"p":1,"q":2}}`}, []up{{Type: part, ID: 1, Doc: `{"m":{"q":2},"top":1}`}}},
		{"set above a move without the source", up{Type: part, ID: 1, Doc: `{"m":{"q":2}}`}, []up{{Type: part, ID: 1, Doc: `{"m":{"q":2}}`, Unset: []string{"top"}}}},
		{"set a scalar above a move", up{Type: part, ID: 1, Doc: `{"m":5}`}, []up{{Type: part, ID: 1, Doc: `{"m":5}`, Unset: []string{"top"}}}},
		{"unset above a move", up{Type: part, ID: 1, Unset: []string{"m"}}, []up{{Type: part, ID: 1, Unset: []string{"m", "top"}}}},
		{"unset above in-place", up{Type: part, ID: 1, Unset: []string{"sub"}}, []up{{Type: part, ID: 1, Unset: []string{"sub"}}}},
	}
	tr := transformtest.Configured(t, rename.New(), spec)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := transformtest.Updates(t, tr, c.in)
			if err != nil {
				t.Fatal(err)
			}
			transformtest.SameUpdates(t, got, c.want)
		})
	}
}

// Replacing or removing a document above a NEW path whose OLD lies outside
// it would lose NEW in the sink: the run fails.
func TestUpdateAboveTarget(t *testing.T) {
	tr := transformtest.Configured(t, rename.New(), "a=m.n")
	for _, in := range []up{
		{Type: part, ID: 7, Doc: `{"m":{"k":1}}`},
		{Type: part, ID: 7, Unset: []string{"m"}},
	} {
		_, err := transformtest.Updates(t, tr, in)
		if sdk.KindOf(err) != sdk.KindFailedPrecondition || !strings.Contains(err.Error(), `_id 7`) ||
			!strings.Contains(err.Error(), `"m.n" renamed from "a"`) {
			t.Errorf("%v: error = %v (kind %v), want a failed precondition naming _id 7 and the rename", in, err, sdk.KindOf(err))
		}
	}
}

func TestSpecErrors(t *testing.T) {
	cases := []struct{ spec, want string }{
		{"", "rename: no fields given: write rename:OLD=NEW"},
		{"a", `rename: entry "a" has no '='`},
		{"a=", `rename: entry "a=": empty field path`},
		{"a=b,,c=d", `rename: entry 2 of "a=b,,c=d" is empty`},
		{"a.=b", `rename: entry "a.=b": empty field name between dots`},
		{"$a=b", `rename: entry "$a=b": field name "$a" starts with '$'`},
		{"_id=x", `rename: entry "_id=x": _id cannot be renamed`},
		{"a=_id.x", `rename: entry "a=_id.x": _id cannot be renamed`},
		{"a=a.b", `rename: entry "a=a.b": a field cannot move into itself or its parent`},
		{"a.b=a", `rename: entry "a.b=a": a field cannot move into itself or its parent`},
		{"a=b,a=c", `rename: field "a" is renamed twice`},
		{"a=c,b=c", `rename: two fields are renamed to "c"`},
		{"a=x,a.b=y", `rename: "a.b" overlaps "a"`},
		{"a=x.y,b=x", `rename: "x" overlaps "x.y"`},
	}
	for _, c := range cases {
		err := rename.New().Configure(context.Background(), c.spec)
		if err == nil || sdk.KindOf(err) != sdk.KindInvalidArgument || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Configure(%q) = %v (kind %v), want an invalid argument starting %q", c.spec, err, sdk.KindOf(err), c.want)
		}
	}
}

func TestNotConfigured(t *testing.T) {
	_, err := rename.New().TransformData(context.Background(), "db.c", nil)
	if sdk.KindOf(err) != sdk.KindFailedPrecondition {
		t.Errorf("TransformData before Configure = %v, want a failed precondition", err)
	}
}

// The copy and change paths agree on generated documents and events
// (inserts, replaces, partial updates of top-level and dotted fields,
// deletes): in place byte for byte, moves with fields in any order.
func TestCDCAgreesWithCopy(t *testing.T) {
	o := random.DefaultOptions()
	o.Namespaces, o.Docs, o.Size, o.Updates = 2, 300, 200, 3000
	t.Run("in place", func(t *testing.T) {
		transformtest.CheckCDC(t, transformtest.Configured(t, rename.New(), "tag=label,sub.a=sub.alpha,f=v,v=f"), o, false, nil)
	})
	// A move leaves its parent, possibly empty; an update that creates
	// the parent through the moved field ($set meta.seq on a document
	// without meta) cannot create that empty parent in the sink.
	t.Run("moves", func(t *testing.T) {
		transformtest.CheckCDC(t, transformtest.Configured(t, rename.New(), "sub.a=top.a,tag=sub.tag,meta.seq=seq"), o, true,
			transformtest.WithoutEmptyDocs)
	})
}
