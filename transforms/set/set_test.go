package set

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/transformtest"
)

type up = transformtest.Update

const (
	ins  = sdk.UpdateInsert
	rep  = sdk.UpdateReplace
	del  = sdk.UpdateDelete
	part = sdk.UpdatePartial
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 890_123_000, time.UTC)

const nowJSON = `{"$date":"2025-03-04T05:06:07.89Z"}`

func fixed() sdk.Transform { return newTransform().WithClock(func() time.Time { return t0 }) }

func TestDocuments(t *testing.T) {
	cases := []struct{ name, spec, in, want, err string }{
		{"string", `env="staging"`, `{"_id":1,"a":1}`, `{"_id":1,"env":"staging","a":1}`, ""},
		{"spec order after _id", `a=1,b=2`, `{"_id":1,"x":0}`, `{"_id":1,"a":1,"b":2,"x":0}`, ""},
		{"_id not first", `a=1`, `{"x":0,"_id":1}`, `{"a":1,"x":0,"_id":1}`, ""},
		{"existing replaced and moved", `x=5`, `{"_id":1,"y":0,"x":"old"}`, `{"_id":1,"x":5,"y":0}`, ""},
		{"nested created", `m.env="s"`, `{"_id":1,"z":0}`, `{"_id":1,"m":{"env":"s"},"z":0}`, ""},
		{"nested in existing parent", `m.env="s"`, `{"_id":1,"m":{"k":1}}`, `{"_id":1,"m":{"env":"s","k":1}}`, ""},
		{"nested existing moved", `m.env="s"`, `{"_id":1,"m":{"k":1,"env":0}}`, `{"_id":1,"m":{"env":"s","k":1}}`, ""},
		{"computed", `ns=$namespace,copy=$id,at=$now`, `{"_id":1}`, `{"_id":1,"ns":"db.c","copy":1,"at":` + nowJSON + `}`, ""},
		{"JSON values", `o={"a":[1,{"b":null}]},l=3000000000,d=1.5,t=true,n=null,dt={"$date":"2024-01-01T00:00:00Z"},s="a,b=c",e=""`,
			`{"_id":1}`, `{"_id":1,"o":{"a":[1,{"b":null}]},"l":3000000000,"d":1.5,"t":true,"n":null,"dt":{"$date":"2024-01-01T00:00:00Z"},"s":"a,b=c","e":""}`, ""},
		{"quoted dollar string", `s="$now"`, `{"_id":1}`, `{"_id":1,"s":"$now"}`, ""},
		{"scalar on the way", `m.env="s"`, `{"_id":1,"m":5}`, "", `set "m.env": "m" is of type 32-bit integer, not a document`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := transformtest.Configured(t, fixed(), c.spec)
			out, err := tr.TransformData(context.Background(), "db.c", []bson.Raw{transformtest.Doc(t, c.in)})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), `set: namespace "db.c", _id 1: `) {
					t.Fatalf("error = %v, want one naming the document and containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := transformtest.JSON(out[0].Docs[0])
			if want := transformtest.JSON(transformtest.Doc(t, c.want)); got != want {
				t.Errorf("set:%s of %s\n got %s\nwant %s", c.spec, c.in, got, want)
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
		name, spec string
		in         up
		want       []up
	}{
		{"delete passes", `env="s",at=$now`, up{Type: del, ID: 1}, []up{{Type: del, ID: 1}}},
		{"unrelated passes", `env="s"`, up{Type: part, ID: 1, Doc: `{"x":1}`, Unset: []string{"y"}}, []up{{Type: part, ID: 1, Doc: `{"x":1}`, Unset: []string{"y"}}}},
		{"set field gets the value", `env="s"`, up{Type: part, ID: 1, Doc: `{"env":"other","x":1}`}, []up{{Type: part, ID: 1, Doc: `{"env":"s","x":1}`}}},
		{"set inside field dropped", `env="s"`, up{Type: part, ID: 1, Doc: `{"env.x":1}`}, nil},
		{"unset field dropped", `env="s"`, up{Type: part, ID: 1, Unset: []string{"env", "env.x"}}, nil},
		{"now on every change", `at=$now`, up{Type: part, ID: 1, Doc: `{"x":1}`}, []up{{Type: part, ID: 1, Doc: `{"x":1,"at":` + nowJSON + `}`}}},
		{"now once", `at=$now`, up{Type: part, ID: 1, Doc: `{"at":0}`}, []up{{Type: part, ID: 1, Doc: `{"at":` + nowJSON + `}`}}},
		{"now even when nothing else is left", `env="s",at=$now`, up{Type: part, ID: 1, Unset: []string{"env"}}, []up{{Type: part, ID: 1, Doc: `{"at":` + nowJSON + `}`}}},
		{"set above", `meta.src=$namespace`, up{Type: part, ID: 1, Doc: `{"meta":{"k":1}}`}, []up{{Type: part, ID: 1, Doc: `{"meta":{"src":"db.c","k":1}}`}}},
		{"unset above", `meta.src=$namespace,meta.at=$now`, up{Type: part, ID: 1, Unset: []string{"meta"}},
			[]up{{Type: part, ID: 1, Doc: `{"meta":{"src":"db.c","at":` + nowJSON + `}}`}}},
		{"beside", `meta.src=$namespace`, up{Type: part, ID: 1, Doc: `{"meta.k":1}`}, []up{{Type: part, ID: 1, Doc: `{"meta.k":1}`}}},
		{"id", `copy=$id`, up{Type: part, ID: 4, Doc: `{"copy":1}`}, []up{{Type: part, ID: 4, Doc: `{"copy":4}`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := transformtest.Configured(t, fixed(), c.spec)
			got, err := transformtest.Updates(t, tr, c.in)
			if err != nil {
				t.Fatal(err)
			}
			transformtest.SameUpdates(t, got, c.want)
		})
	}
}

func TestUpdateAboveWithScalar(t *testing.T) {
	tr := transformtest.Configured(t, fixed(), `meta.src=$namespace`)
	_, err := transformtest.Updates(t, tr, up{Type: part, ID: 2, Doc: `{"meta":5}`})
	if err == nil || !strings.Contains(err.Error(), `set: namespace "db.c", _id 2: `) || !strings.Contains(err.Error(), "not a document") {
		t.Errorf("error = %v, want one naming the document", err)
	}
}

func TestNowIsTheCallTime(t *testing.T) {
	tr := transformtest.Configured(t, New(), `at=$now`)
	before := time.Now().Truncate(time.Millisecond)
	d := transformtest.One(t, tr, transformtest.Doc(t, `{"_id":1}`))
	after := time.Now()
	at, ok := d.Lookup("at").TimeOK()
	if !ok || at.Before(before) || at.After(after) {
		t.Errorf("at = %v, want a datetime between %v and %v", d.Lookup("at"), before, after)
	}
}

func TestSpecErrors(t *testing.T) {
	cases := []struct{ spec, want string }{
		{"", "set: no fields given: write set:FIELD=VALUE"},
		{"env", `set: entry "env" has no '='`},
		{`a=1,env`, `set: entry "env" has no '='`},
		{"env=staging", `set: value of "env": not a JSON value (strings need double quotes, e.g. env="staging")`},
		{`env="a"x`, `set: value of "env": unexpected "x" after the value: separate entries with ','`},
		{`env="a",`, `set: value of "env": the spec ends with ','`},
		{`a=$bogus`, `set: value of "a": unknown computed value "$bogus": use $namespace, $id or $now`},
		{`_id=1`, `set: _id cannot be set`},
		{`a=1,a.b=2`, `set: "a.b" overlaps "a"`},
		{`a=1,a=2`, `set: "a" is given twice`},
		{`a.=1`, `set: entry 1: field "a.": empty field name between dots`},
		{`=1`, `set: entry 1: field "": empty field path`},
		{`d={"$date":"bad"}`, `set: value of "d": not a valid Extended JSON value`},
	}
	for _, c := range cases {
		err := New().Configure(context.Background(), c.spec)
		if err == nil || sdk.KindOf(err) != sdk.KindInvalidArgument || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Configure(%q) = %v (kind %v), want an invalid argument starting %q", c.spec, err, sdk.KindOf(err), c.want)
		}
	}
}

func TestCDCAgreesWithCopy(t *testing.T) {
	o := random.DefaultOptions()
	o.Namespaces, o.Docs, o.Size, o.Updates = 2, 300, 200, 3000
	t.Run("top level", func(t *testing.T) {
		transformtest.CheckCDC(t, transformtest.Configured(t, fixed(), `env="staging",origin=$namespace,idcopy=$id,at=$now,tag="fixed"`), o, false, nil)
	})
	// meta is created by the copy (first) and by updates (last).
	t.Run("nested", func(t *testing.T) {
		transformtest.CheckCDC(t, transformtest.Configured(t, fixed(), `meta.src=$namespace,sub.c=1`), o, true, nil)
	})
}
