package namespace_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/transformtest"
	"github.com/dsyncio/dsync/transforms/namespace"
)

func TestRenames(t *testing.T) {
	const spec = "shop.users=staging.customers,shop=staging,logs.a.b=archive.x.y"
	cases := map[string]string{
		"shop.users":  "staging.customers",
		"shop.orders": "staging.orders",
		"shop.a.b":    "staging.a.b",
		"logs.a.b":    "archive.x.y",
		"logs.a":      "logs.a",
		"other.c":     "other.c",
		"shopping.c":  "shopping.c",
	}
	tr := transformtest.Configured(t, namespace.New(), spec)
	doc := transformtest.Doc(t, `{"_id":1,"a":1}`)
	u := sdk.Update{ID: transformtest.ID(1), Type: sdk.UpdatePartial, Doc: transformtest.Doc(t, `{"a":2}`), Unset: []string{"b"}}
	for in, want := range cases {
		data, err := tr.TransformData(context.Background(), in, []bson.Raw{doc})
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 1 || data[0].Namespace != want || len(data[0].Docs) != 1 || !bytes.Equal(data[0].Docs[0], doc) {
			t.Errorf("TransformData(%q) = %+v, want the document unchanged in %q", in, data, want)
		}
		ups, err := tr.TransformUpdates(context.Background(), in, []sdk.Update{u, {ID: u.ID, Type: sdk.UpdateDelete}})
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) != 1 || ups[0].Namespace != want || len(ups[0].Updates) != 2 || ups[0].Updates[0].Type != sdk.UpdatePartial ||
			ups[0].Updates[1].Type != sdk.UpdateDelete {
			t.Errorf("TransformUpdates(%q) = %+v, want both updates, in order, in %q", in, ups, want)
		}
	}
}

func TestSpecErrors(t *testing.T) {
	cases := []struct{ spec, want string }{
		{"", "namespace: no rules given: write namespace:FROM=TO"},
		{"a.b", `namespace: entry "a.b" has no '='`},
		{"a.b=c", `namespace: entry "a.b=c" maps a namespace to a database or the reverse`},
		{"a=c.d", `namespace: entry "a=c.d" maps a namespace to a database or the reverse`},
		{"a.b=", `namespace: entry "a.b=" maps a namespace to a database or the reverse`},
		{"=b", `namespace: entry "=b" has an empty side`},
		{".b=c.d", `namespace: entry ".b=c.d": ".b" needs a database and a collection`},
		{"a.b=c.", `namespace: entry "a.b=c.": "c." needs a database and a collection`},
		{"a.b=c d.e", `namespace: entry "a.b=c d.e": "c d.e" holds a character namespaces cannot have`},
		{"a.b=c.d,a.b=e.f", `namespace: "a.b" is renamed twice`},
		{"a.b=c.d,x.y=c.d", `namespace: entries "a.b=c.d" and "x.y=c.d" both map to "c.d"`},
		{"a=c,b=c", `namespace: entries "a=c" and "b=c" both map to "c"`},
	}
	for _, c := range cases {
		err := namespace.New().Configure(context.Background(), c.spec)
		if err == nil || sdk.KindOf(err) != sdk.KindInvalidArgument || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Configure(%q) = %v (kind %v), want an invalid argument starting %q", c.spec, err, sdk.KindOf(err), c.want)
		}
	}
}
