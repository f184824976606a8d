package mongodb

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/testserver/ferret"
	"github.com/dsyncio/dsync/sdk"
)

func mustRaw(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key(kv ...any) bson.D {
	d := bson.D{}
	for i := 0; i < len(kv); i += 2 {
		d = append(d, bson.E{Key: kv[i].(string), Value: kv[i+1]})
	}
	return d
}

// listIndexes entries as MongoDB 7 returns them become createIndexes
// specifications with every option kept and only v, ns and background
// removed.
func TestIndexSpec(t *testing.T) {
	tests := []struct {
		name  string
		entry bson.D
		want  bson.D
		id    bool
	}{
		{
			name:  "id",
			entry: bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: key("_id", int32(1))}, {Key: "name", Value: "_id_"}},
			want:  bson.D{{Key: "key", Value: key("_id", int32(1))}, {Key: "name", Value: "_id_"}},
			id:    true,
		},
		{
			name:  "clustered",
			entry: bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: key("_id", int32(1))}, {Key: "name", Value: "by_id"}, {Key: "unique", Value: true}, {Key: "clustered", Value: true}},
			want:  bson.D{{Key: "key", Value: key("_id", int32(1))}, {Key: "name", Value: "by_id"}, {Key: "unique", Value: true}, {Key: "clustered", Value: true}},
			id:    true,
		},
		{
			name:  "hashed id is secondary",
			entry: bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: key("_id", "hashed")}, {Key: "name", Value: "_id_hashed"}},
			want:  bson.D{{Key: "key", Value: key("_id", "hashed")}, {Key: "name", Value: "_id_hashed"}},
		},
		{
			name:  "unique compound",
			entry: bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: key("a", int32(1), "b", float64(-1))}, {Key: "name", Value: "a_1_b_-1"}, {Key: "unique", Value: true}, {Key: "ns", Value: "db.c"}, {Key: "background", Value: true}},
			want:  bson.D{{Key: "key", Value: key("a", int32(1), "b", float64(-1))}, {Key: "name", Value: "a_1_b_-1"}, {Key: "unique", Value: true}},
		},
		{
			name:  "ttl",
			entry: bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: key("at", int32(1))}, {Key: "name", Value: "at_1"}, {Key: "expireAfterSeconds", Value: int32(3600)}},
			want:  bson.D{{Key: "key", Value: key("at", int32(1))}, {Key: "name", Value: "at_1"}, {Key: "expireAfterSeconds", Value: int32(3600)}},
		},
		{
			name: "partial sparse hidden collation",
			entry: bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: key("s", int32(1))}, {Key: "name", Value: "s"}, {Key: "sparse", Value: true}, {Key: "hidden", Value: true},
				{Key: "partialFilterExpression", Value: key("n", key("$gt", int32(5)))},
				{Key: "collation", Value: key("locale", "fr", "strength", int32(2))}},
			want: bson.D{{Key: "key", Value: key("s", int32(1))}, {Key: "name", Value: "s"}, {Key: "sparse", Value: true}, {Key: "hidden", Value: true},
				{Key: "partialFilterExpression", Value: key("n", key("$gt", int32(5)))},
				{Key: "collation", Value: key("locale", "fr", "strength", int32(2))}},
		},
		{
			name: "text",
			entry: bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: key("_fts", "text", "_ftsx", int32(1))}, {Key: "name", Value: "body_text"},
				{Key: "weights", Value: key("body", int32(1), "title", int32(10))}, {Key: "default_language", Value: "english"},
				{Key: "language_override", Value: "language"}, {Key: "textIndexVersion", Value: int32(3)}},
			want: bson.D{{Key: "key", Value: key("_fts", "text", "_ftsx", int32(1))}, {Key: "name", Value: "body_text"},
				{Key: "weights", Value: key("body", int32(1), "title", int32(10))}, {Key: "default_language", Value: "english"},
				{Key: "language_override", Value: "language"}, {Key: "textIndexVersion", Value: int32(3)}},
		},
		{
			name:  "2dsphere",
			entry: bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: key("loc", "2dsphere")}, {Key: "name", Value: "loc_2dsphere"}, {Key: "2dsphereIndexVersion", Value: int32(3)}},
			want:  bson.D{{Key: "key", Value: key("loc", "2dsphere")}, {Key: "name", Value: "loc_2dsphere"}, {Key: "2dsphereIndexVersion", Value: int32(3)}},
		},
		{
			name:  "2d",
			entry: bson.D{{Key: "v", Value: int32(1)}, {Key: "key", Value: key("p", "2d")}, {Key: "name", Value: "p_2d"}, {Key: "bits", Value: int32(26)}, {Key: "min", Value: float64(-180)}, {Key: "max", Value: float64(180)}},
			want:  bson.D{{Key: "key", Value: key("p", "2d")}, {Key: "name", Value: "p_2d"}, {Key: "bits", Value: int32(26)}, {Key: "min", Value: float64(-180)}, {Key: "max", Value: float64(180)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := indexSpec(mustRaw(t, tt.entry))
			if err != nil {
				t.Fatal(err)
			}
			if want := mustRaw(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("indexSpec = %s, want %s", got, want)
			}
			if isIDIndex(got) != tt.id {
				t.Errorf("isIDIndex = %v, want %v", !tt.id, tt.id)
			}
		})
	}
}

func TestNamedIndexSpec(t *testing.T) {
	spec, name, err := namedIndexSpec(mustRaw(t, bson.D{{Key: "key", Value: key("a", float64(1), "b", int32(-1), "loc", "2dsphere")}, {Key: "unique", Value: true}}))
	if err != nil {
		t.Fatal(err)
	}
	if name != "a_1_b_-1_loc_2dsphere" {
		t.Errorf("default name = %q", name)
	}
	if n, _ := spec.Lookup("name").StringValueOK(); n != name {
		t.Errorf("spec name = %q, want %q", n, name)
	}
	for _, bad := range []bson.D{
		{{Key: "name", Value: "x"}},
		{{Key: "key", Value: bson.D{}}, {Key: "name", Value: "x"}},
		{{Key: "key", Value: key("a", int32(1))}, {Key: "name", Value: int32(3)}},
		{{Key: "key", Value: key("a", int32(1))}, {Key: "name", Value: ""}},
	} {
		if _, _, err := namedIndexSpec(mustRaw(t, bad)); err == nil {
			t.Errorf("namedIndexSpec(%v) succeeded", bad)
		}
	}
}

func TestSameIndex(t *testing.T) {
	base := bson.D{{Key: "key", Value: key("a", int32(1), "b", int32(-1))}, {Key: "name", Value: "ab"}, {Key: "unique", Value: true}}
	same := []bson.D{
		{{Key: "v", Value: int32(2)}, {Key: "unique", Value: true}, {Key: "name", Value: "ab"}, {Key: "key", Value: key("a", float64(1), "b", int64(-1))}},
		{{Key: "key", Value: key("a", int32(1), "b", int32(-1))}, {Key: "name", Value: "ab"}, {Key: "unique", Value: true}, {Key: "sparse", Value: false}},
	}
	for _, s := range same {
		if !sameIndex(mustRaw(t, base), mustRaw(t, s)) {
			t.Errorf("%v and %v differ", base, s)
		}
	}
	different := []bson.D{
		{{Key: "key", Value: key("b", int32(-1), "a", int32(1))}, {Key: "name", Value: "ab"}, {Key: "unique", Value: true}},
		{{Key: "key", Value: key("a", int32(1), "b", int32(-1))}, {Key: "name", Value: "ab"}},
		{{Key: "key", Value: key("a", int32(1), "b", int32(1))}, {Key: "name", Value: "ab"}, {Key: "unique", Value: true}},
		{{Key: "key", Value: key("a", int32(1), "b", int32(-1))}, {Key: "name", Value: "ab"}, {Key: "unique", Value: true}, {Key: "expireAfterSeconds", Value: int32(1)}},
		{{Key: "key", Value: key("a", int32(1), "b", int32(-1))}, {Key: "name", Value: "ab"}, {Key: "unique", Value: true}, {Key: "partialFilterExpression", Value: key("a", key("$exists", true))}},
	}
	for _, d := range different {
		if sameIndex(mustRaw(t, base), mustRaw(t, d)) {
			t.Errorf("%v and %v are the same", base, d)
		}
	}
}

// Indexes listed on one FerretDB are created on another, a second call
// changes nothing, and what FerretDB cannot do is a failed precondition
// naming the index.
func TestIndexesFerretDB(t *testing.T) {
	ctx := testCtx(t)
	srcURI, dstURI := ferret.Start(t), ferret.Start(t)
	src, dst := configured(t, srcURI), configured(t, dstURI)
	info, err := src.Info(ctx)
	if err != nil || !info.Source.Indexes || !info.Sink.Indexes {
		t.Fatalf("Info = %+v, %v: want index capabilities", info, err)
	}
	cl := connect(t, srcURI)
	coll := cl.Database("shop").Collection("users")
	seed(t, cl, "shop.users", []any{int32(1), int32(2)}, 10)
	for _, spec := range []bson.D{
		{{Key: "key", Value: key("email", int32(1))}, {Key: "name", Value: "email_1"}, {Key: "unique", Value: true}},
		{{Key: "key", Value: key("country", int32(1), "age", int32(-1))}, {Key: "name", Value: "country_age"}},
		{{Key: "key", Value: key("nick", int32(1))}, {Key: "name", Value: "nick_sparse"}, {Key: "sparse", Value: true}},
	} {
		if err := coll.Database().RunCommand(ctx, bson.D{{Key: "createIndexes", Value: "users"}, {Key: "indexes", Value: bson.A{spec}}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	specs, err := src.ListIndexes(ctx, "shop.users")
	if err != nil {
		t.Fatal(err)
	}
	if got := indexNamesOf(specs); got != "country_age,email_1,nick_sparse" {
		t.Fatalf("ListIndexes names = %s (%v)", got, specs)
	}
	for _, s := range specs {
		if _, err := s.LookupErr("v"); err == nil {
			t.Errorf("spec %s keeps v", s)
		}
	}
	if none, err := src.ListIndexes(ctx, "shop.missing"); err != nil || len(none) != 0 {
		t.Errorf("ListIndexes(missing) = %v, %v", none, err)
	}

	for range 2 {
		if err := dst.CreateIndexes(ctx, "shop.users", specs); err != nil {
			t.Fatalf("CreateIndexes: %v", err)
		}
	}
	got, err := dst.ListIndexes(ctx, "shop.users")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(specs) {
		t.Fatalf("target has %d indexes, want %d: %v", len(got), len(specs), got)
	}
	for _, s := range specs {
		name, _ := s.Lookup("name").StringValueOK()
		if !containsSame(got, name, s) {
			t.Errorf("target lacks %s: %v", s, got)
		}
	}

	conflict := mustRaw(t, bson.D{{Key: "key", Value: key("other", int32(1))}, {Key: "name", Value: "email_1"}})
	err = dst.CreateIndexes(ctx, "shop.users", []bson.Raw{conflict})
	if sdk.KindOf(err) != sdk.KindFailedPrecondition || !errors.Is(err, ErrIndexConflict) || !strings.Contains(err.Error(), `"email_1"`) {
		t.Errorf("same name, other key: %v (kind %v)", err, sdk.KindOf(err))
	}

	for _, spec := range []bson.D{
		{{Key: "key", Value: key("at", int32(1))}, {Key: "name", Value: "ttl_at"}, {Key: "expireAfterSeconds", Value: int32(60)}},
		{{Key: "key", Value: key("n", int32(1))}, {Key: "name", Value: "partial_n"}, {Key: "partialFilterExpression", Value: key("n", key("$gt", int32(1)))}},
		{{Key: "key", Value: key("body", "text")}, {Key: "name", Value: "body_text"}},
		{{Key: "key", Value: key("loc", "2dsphere")}, {Key: "name", Value: "loc_geo"}},
	} {
		name := spec[1].Value.(string)
		err := dst.CreateIndexes(ctx, "shop.users", []bson.Raw{mustRaw(t, spec)})
		if err == nil {
			t.Logf("FerretDB created %s", name)
			continue
		}
		if sdk.KindOf(err) != sdk.KindFailedPrecondition || !strings.Contains(err.Error(), name) {
			t.Errorf("create %s: %v (kind %v), want a failed precondition naming it", name, err, sdk.KindOf(err))
		}
	}
}

func indexNamesOf(specs []bson.Raw) string {
	var names []string
	for _, s := range specs {
		n, _ := s.Lookup("name").StringValueOK()
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}
