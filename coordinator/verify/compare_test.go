package verify

import (
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func dec(t *testing.T, s string) bson.Decimal128 {
	t.Helper()
	d, err := bson.ParseDecimal128(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCompare(t *testing.T) {
	type opts struct {
		order, numeric bool
		exclude        []string
	}
	one := func(v any) bson.D { return bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: v}} }
	tests := []struct {
		name  string
		o     opts
		a, b  bson.D
		equal bool
		diffs []FieldDiff // compared on Path, Kind, TypeA, TypeB
	}{
		{name: "identical", a: one(1), b: one(1), equal: true},
		{name: "int32 vs int64", a: one(int32(1)), b: one(int64(1)),
			diffs: []FieldDiff{{Path: "v", Kind: FieldType, TypeA: "int", TypeB: "long"}}},
		{name: "int32 vs double", a: one(int32(1)), b: one(1.0),
			diffs: []FieldDiff{{Path: "v", Kind: FieldType, TypeA: "int", TypeB: "double"}}},
		{name: "int64 vs string", a: one(int64(1)), b: one("1"),
			diffs: []FieldDiff{{Path: "v", Kind: FieldType, TypeA: "long", TypeB: "string"}}},
		{name: "numeric: int32 vs int64", o: opts{numeric: true}, a: one(int32(1)), b: one(int64(1)), equal: true},
		{name: "numeric: int32 vs double", o: opts{numeric: true}, a: one(int32(1)), b: one(1.0), equal: true},
		{name: "numeric: double vs decimal", o: opts{numeric: true}, a: one(2.5), b: one(dec(t, "2.50")), equal: true},
		{name: "numeric: int vs decimal", o: opts{numeric: true}, a: one(int64(7)), b: one(dec(t, "7E0")), equal: true},
		{name: "numeric: 0.1 double is not decimal 0.1", o: opts{numeric: true}, a: one(0.1), b: one(dec(t, "0.1")),
			diffs: []FieldDiff{{Path: "v", Kind: FieldValue, TypeA: "double", TypeB: "decimal"}}},
		{name: "numeric: -0 is 0", o: opts{numeric: true}, a: one(0.0), b: one(negZero()), equal: true},
		{name: "numeric: string is not a number", o: opts{numeric: true}, a: one(int32(1)), b: one("1"),
			diffs: []FieldDiff{{Path: "v", Kind: FieldType, TypeA: "int", TypeB: "string"}}},
		{name: "numeric: values differ", o: opts{numeric: true}, a: one(int32(1)), b: one(int64(2)),
			diffs: []FieldDiff{{Path: "v", Kind: FieldValue, TypeA: "int", TypeB: "long"}}},
		{name: "value", a: one("x"), b: one("y"), diffs: []FieldDiff{{Path: "v", Kind: FieldValue, TypeA: "string"}}},
		{name: "order", a: bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 1}, {Key: "y", Value: 2}},
			b:     bson.D{{Key: "_id", Value: 1}, {Key: "y", Value: 2}, {Key: "x", Value: 1}},
			diffs: []FieldDiff{{Path: "", Kind: FieldOrder}}},
		{name: "order ignored", o: opts{order: true}, a: bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 1}, {Key: "y", Value: 2}},
			b: bson.D{{Key: "y", Value: 2}, {Key: "_id", Value: 1}, {Key: "x", Value: 1}}, equal: true},
		{name: "nested order", a: one(bson.D{{Key: "p", Value: 1}, {Key: "q", Value: 2}}), b: one(bson.D{{Key: "q", Value: 2}, {Key: "p", Value: 1}}),
			diffs: []FieldDiff{{Path: "v", Kind: FieldOrder}}},
		{name: "nested order ignored", o: opts{order: true},
			a: one(bson.A{bson.D{{Key: "p", Value: 1}, {Key: "q", Value: 2}}}), b: one(bson.A{bson.D{{Key: "q", Value: 2}, {Key: "p", Value: 1}}}), equal: true},
		{name: "array order is significant", o: opts{order: true}, a: one(bson.A{1, 2}), b: one(bson.A{2, 1}),
			diffs: []FieldDiff{{Path: "v.0", Kind: FieldValue, TypeA: "int"}, {Path: "v.1", Kind: FieldValue, TypeA: "int"}}},
		{name: "array length", a: one(bson.A{1, 2}), b: one(bson.A{1}),
			diffs: []FieldDiff{{Path: "v.1", Kind: FieldMissingOnB, TypeA: "int"}}},
		{name: "nested value", a: one(bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: 1}}}}), b: one(bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: 2}}}}),
			diffs: []FieldDiff{{Path: "v.a.b", Kind: FieldValue, TypeA: "int"}}},
		{name: "missing fields", a: bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 1}}, b: bson.D{{Key: "_id", Value: 1}, {Key: "y", Value: 1}},
			diffs: []FieldDiff{{Path: "x", Kind: FieldMissingOnB, TypeA: "int"}, {Path: "y", Kind: FieldMissingOnA, TypeB: "int"}}},
		{name: "document vs array", a: one(bson.D{}), b: one(bson.A{}),
			diffs: []FieldDiff{{Path: "v", Kind: FieldType, TypeA: "object", TypeB: "array"}}},
		{name: "excluded top-level field", o: opts{exclude: []string{"ts"}},
			a: bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 1}}, b: bson.D{{Key: "_id", Value: 1}, {Key: "ts", Value: 5}, {Key: "x", Value: 1}}, equal: true},
		{name: "excluded nested field", o: opts{exclude: []string{"v.ts"}},
			a: one(bson.D{{Key: "ts", Value: 1}, {Key: "k", Value: 1}}), b: one(bson.D{{Key: "ts", Value: 2}, {Key: "k", Value: 1}}), equal: true},
		{name: "excluded field in array documents", o: opts{exclude: []string{"v.ts"}},
			a: one(bson.A{bson.D{{Key: "ts", Value: 1}}, bson.D{{Key: "k", Value: 1}}}), b: one(bson.A{bson.D{{Key: "ts", Value: 2}}, bson.D{{Key: "k", Value: 1}, {Key: "ts", Value: 3}}}), equal: true},
		{name: "exclusion keeps other differences", o: opts{exclude: []string{"v.ts"}},
			a: one(bson.D{{Key: "ts", Value: 1}, {Key: "k", Value: 1}}), b: one(bson.D{{Key: "ts", Value: 2}, {Key: "k", Value: 2}}),
			diffs: []FieldDiff{{Path: "v.k", Kind: FieldValue, TypeA: "int"}}},
		{name: "binary subtype", a: one(bson.Binary{Subtype: 0, Data: []byte{1}}), b: one(bson.Binary{Subtype: 4, Data: []byte{1}}),
			diffs: []FieldDiff{{Path: "v", Kind: FieldValue, TypeA: "binData"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newComparer(tt.o.order, tt.o.numeric, tt.o.exclude)
			a, b := mustRaw(tt.a), mustRaw(tt.b)
			eq, err := c.newDoc().equal(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if eq != tt.equal {
				t.Fatalf("equal = %v, want %v", eq, tt.equal)
			}
			if eq {
				return
			}
			got, _ := c.diff(a, b)
			var norm []FieldDiff
			for _, d := range got {
				norm = append(norm, FieldDiff{Path: d.Path, Kind: d.Kind, TypeA: d.TypeA, TypeB: d.TypeB})
			}
			if !slices.Equal(norm, tt.diffs) {
				t.Errorf("diff = %+v, want %+v", norm, tt.diffs)
			}
		})
	}
}

func negZero() float64 {
	z := 0.0
	return -z
}

// Hashes change with the document and only with it.
func TestHash(t *testing.T) {
	dc := newComparer(false, false, nil).newDoc()
	h1, _ := dc.hash(mustRaw(bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}}))
	h2, _ := dc.hash(mustRaw(bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}}))
	h3, _ := dc.hash(mustRaw(bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: int64(1)}}))
	if h1 != h2 || h1 == h3 || len(h1) != 16 {
		t.Errorf("hashes %q %q %q", h1, h2, h3)
	}
	if h, _ := dc.hash(nil); h != "" {
		t.Errorf("hash of nil = %q", h)
	}
}

func TestInvalidDocument(t *testing.T) {
	dc := newComparer(false, false, nil).newDoc()
	if _, err := dc.equal(mustRaw(bson.D{{Key: "_id", Value: 1}}), bson.Raw{5, 0, 0, 0, 1}); err == nil {
		t.Error("no error for invalid BSON")
	}
}

func TestIDEncoding(t *testing.T) {
	for _, v := range []any{int32(1), int64(1), 1.0, "1", bson.NewObjectID(), bson.D{{Key: "a", Value: 1}}} {
		id := rawValue(v)
		got, err := decodeID(encodeID(id))
		if err != nil || !got.Equal(id) {
			t.Errorf("decodeID(encodeID(%v)) = %v, %v", v, got, err)
		}
	}
	if encodeID(rawValue(int32(1))) == encodeID(rawValue(int64(1))) {
		t.Error("int32 1 and int64 1 encode alike")
	}
	if got := idJSON(rawValue(int64(5))); got != `{"$numberLong":"5"}` {
		t.Errorf("idJSON = %s", got)
	}
	if got := idText(rawValue(`a"b`)); got != `"a\"b"` {
		t.Errorf("idText = %s", got)
	}
}
