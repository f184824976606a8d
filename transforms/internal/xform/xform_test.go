package xform_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/transformtest"
	"github.com/dsyncio/dsync/transforms/internal/xform"
)

// passThrough returns documents unchanged, failing those with a field
// "fail", and partial updates unchanged, emptying those that set "drop".
type passThrough struct{}

func (passThrough) Doc(c *xform.Call, doc bson.Raw) (bson.Raw, error) {
	if _, err := doc.LookupErr("fail"); err == nil {
		return nil, errors.New("asked to fail")
	}
	return doc, nil
}

func (passThrough) Partial(c *xform.Call, set bson.Raw, unset []string) (bson.Raw, []string, error) {
	if _, err := set.LookupErr("drop"); err == nil {
		return nil, nil, nil
	}
	return set, unset, nil
}

func newT() *xform.Transform {
	return xform.New("t", func(spec string) (xform.Rewriter, error) {
		if spec == "bad" {
			return nil, errors.New("bad spec:\nsecond line")
		}
		return passThrough{}, nil
	})
}

func TestAdapter(t *testing.T) {
	ctx := context.Background()
	tr := newT()
	if _, err := tr.TransformUpdates(ctx, "db.c", nil); sdk.KindOf(err) != sdk.KindFailedPrecondition || !errors.Is(err, sdk.ErrNotConfigured) {
		t.Errorf("before Configure: %v", err)
	}
	err := tr.Configure(ctx, "bad")
	if sdk.KindOf(err) != sdk.KindInvalidArgument || err.Error() != "t: bad spec: second line" {
		t.Errorf("Configure(bad) = %v, want one line with the name", err)
	}
	transformtest.Configured(t, tr, "ok")

	_, err = tr.TransformData(ctx, "db.c", []bson.Raw{transformtest.Doc(t, `{"a":1}`)})
	if err == nil || err.Error() != `t: namespace "db.c": a document has no _id` {
		t.Errorf("document without _id: %v", err)
	}
	_, err = tr.TransformData(ctx, "db.c", []bson.Raw{transformtest.Doc(t, `{"_id":"k","fail":1}`)})
	if err == nil || err.Error() != `t: namespace "db.c", _id "k": asked to fail` || sdk.KindOf(err) != sdk.KindFatal {
		t.Errorf("failing document: %v", err)
	}
	for _, u := range []transformtest.Update{
		{Type: sdk.UpdateInsert, ID: 3},
		{Type: sdk.UpdateType(9), ID: 3},
	} {
		if _, err := transformtest.Updates(t, tr, u); err == nil || !strings.HasPrefix(err.Error(), `t: namespace "db.c", _id 3: `) {
			t.Errorf("%v: error %v", u, err)
		}
	}
	got, err := transformtest.Updates(t, tr,
		transformtest.Update{Type: sdk.UpdatePartial, ID: 1, Doc: `{"drop":1}`},
		transformtest.Update{Type: sdk.UpdatePartial, ID: 2, Doc: `{"a":1}`, Unset: []string{"b"}},
		transformtest.Update{Type: sdk.UpdateDelete, ID: 3},
	)
	if err != nil {
		t.Fatal(err)
	}
	transformtest.SameUpdates(t, got, []transformtest.Update{
		{Type: sdk.UpdatePartial, ID: 2, Doc: `{"a":1}`, Unset: []string{"b"}},
		{Type: sdk.UpdateDelete, ID: 3},
	})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tr.TransformData(cctx, "db.c", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
}

func TestIDString(t *testing.T) {
	for ej, want := range map[string]string{
		`1`:                                   "1",
		`{"$numberLong":"5"}`:                 "5",
		`"k"`:                                 `"k"`,
		`{"$oid":"5f0000000000000000000001"}`: `ObjectId("5f0000000000000000000001")`,
		`{"t":"a"}`:                           `{"t": "a"}`,
	} {
		if got := xform.IDString(transformtest.Value(t, ej)); got != want {
			t.Errorf("IDString(%s) = %s, want %s", ej, got, want)
		}
	}
}

func TestList(t *testing.T) {
	got, err := xform.List(" a , b.c ")
	if err != nil || strings.Join(got, "|") != "a|b.c" {
		t.Errorf("List = %q, %v", got, err)
	}
	if _, err := xform.List("a,"); err == nil || err.Error() != `entry 2 of "a," is empty` {
		t.Errorf("List(a,) error %v", err)
	}
}
