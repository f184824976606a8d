package postgres

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/dsyncio/dsync/sdk"
)

func dec(s string) bson.Decimal128 {
	d, err := bson.ParseDecimal128(s)
	if err != nil {
		panic(err)
	}
	return d
}

func date(s string) bson.DateTime {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return bson.NewDateTimeFromTime(t)
}

// typeCases is the documented type mapping: a column type, a value as SQL,
// the natural BSON value a source produces, and whether it is exact (else
// the document carries the PostgreSQL text in MetaField).
var typeCases = []struct {
	typ, value string
	want       any
	exact      bool
}{
	{"smallint", "-12", int32(-12), true},
	{"integer", "2147483647", int32(math.MaxInt32), true},
	{"bigint", "9007199254740993", int64(9007199254740993), true},
	{"oid", "4000000000", int64(4000000000), true},
	{"numeric", "'123.4500'", dec("123.4500"), true},
	{"numeric(10,2)", "'-1.5'", dec("-1.50"), true},
	{"numeric", "'0.000000000000000000000000000000000000001'", dec("1E-39"), true},
	{"numeric", "'1e40'", dec("1000000000000000000000000000000000E+7"), true},
	{"numeric", "'1e40' + 0.5", dec("1000000000000000000000000000000000E+7"), false},
	{"numeric", "'NaN'", dec("NaN"), true},
	{"numeric", "'Infinity'", dec("Infinity"), true},
	{"numeric", "'-Infinity'", dec("-Infinity"), true},
	{"numeric", "'3.14159265358979323846264338327950288419716939937510'", dec("3.141592653589793238462643383279503"), false},
	{"real", "1.5", 1.5, true},
	{"real", "0.1", float64(float32(0.1)), true},
	{"double precision", "1e300", 1e300, true},
	{"double precision", "'-0'", math.Copysign(0, -1), true},
	{"double precision", "'NaN'", math.NaN(), true},
	{"double precision", "'-Infinity'", math.Inf(-1), true},
	{"double precision", "4.9e-324", 4.9e-324, true},
	{"boolean", "true", true, true},
	{"text", "'héllo \"wörld\"\n'", "héllo \"wörld\"\n", true},
	{"character varying(5)", "'abc'", "abc", true},
	{"character(5)", "'ab'", "ab   ", true},
	{`"char"`, "'x'", "x", true},
	{"bytea", `'\x0001ff'`, bson.Binary{Subtype: 0, Data: []byte{0, 1, 0xff}}, true},
	{"bytea", `''`, bson.Binary{Subtype: 0, Data: []byte{}}, true},
	{"uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", bson.Binary{Subtype: 4, Data: []byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}}, true},
	{"timestamp", "'2024-05-01 10:00:00.123'", date("2024-05-01T10:00:00.123Z"), true},
	{"timestamp", "'2024-05-01 10:00:00.123456'", date("2024-05-01T10:00:00.123Z"), false},
	{"timestamp", "'infinity'", "infinity", true},
	{"timestamptz", "'2024-05-01 10:00:00.5+02'", date("2024-05-01T08:00:00.5Z"), true},
	{"timestamptz", "'1969-12-31 23:59:59.9999+00'", date("1969-12-31T23:59:59.999Z"), false},
	{"timestamptz", "'0044-03-15 12:00:00+00 BC'", bson.NewDateTimeFromTime(time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC)), true},
	{"date", "'2024-02-29'", date("2024-02-29T00:00:00Z"), true},
	{"date", "'0001-01-01 BC'", bson.NewDateTimeFromTime(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)), true},
	{"date", "'-infinity'", "-infinity", true},
	{"json", `'{"b": 1, "a": [1, 2.5]}'`, bson.D{{Key: "b", Value: int32(1)}, {Key: "a", Value: bson.A{int32(1), 2.5}}}, true},
	{"json", `'{"b":1}'`, bson.D{{Key: "b", Value: int32(1)}}, false},
	{"jsonb", `'{"bb": {"x": null}, "a": [1, 2.5, "s", true, 3000000000]}'`,
		bson.D{{Key: "a", Value: bson.A{int32(1), 2.5, "s", true, int64(3000000000)}}, {Key: "bb", Value: bson.D{{Key: "x", Value: nil}}}}, true},
	{"jsonb", `'1.0'`, 1.0, true},
	{"jsonb", `'1.50'`, 1.5, false},
	{"jsonb", `'12345678901234567890123'`, 1.2345678901234568e22, false},
	{"jsonb", `'"tab\tquote\""'`, "tab\tquote\"", true},
	{"jsonb", `'null'`, nil, false},
	{"integer[]", "'{1,NULL,3}'", bson.A{int32(1), nil, int32(3)}, true},
	{"text[]", `'{"a b",c,"",NULL,"NULL","x\"y"}'`, bson.A{"a b", "c", "", nil, "NULL", `x"y`}, true},
	{"integer[]", "'{{1,2},{3,4}}'", bson.A{bson.A{int32(1), int32(2)}, bson.A{int32(3), int32(4)}}, true},
	{"integer[]", "'[0:1]={1,2}'", bson.A{int32(1), int32(2)}, false},
	{"integer[]", "'{}'", bson.A{}, true},
	{"timestamptz[]", `'{"2024-01-01 00:00:00.5+00"}'`, bson.A{date("2024-01-01T00:00:00.5Z")}, true},
	{"timestamptz[]", `'{"2024-01-01 00:00:00.123456+00"}'`, bson.A{date("2024-01-01T00:00:00.123Z")}, false},
	{"numeric[]", `'{1.50,NaN}'`, bson.A{dec("1.50"), dec("NaN")}, true},
	{"jsonb[]", `ARRAY['{"a": 1}'::jsonb]`, bson.A{bson.D{{Key: "a", Value: int32(1)}}}, true},
	{"mood", "'happy'", "happy", true},
	{"mood[]", "'{sad,happy}'", bson.A{"sad", "happy"}, true},
	{"posint", "7", int32(7), true},
	{"interval", "'1 day 02:03:04.5'", "1 day 02:03:04.5", true},
	{"inet", "'10.0.0.1/8'", "10.0.0.1/8", true},
	{"time", "'10:11:12.5'", "10:11:12.5", true},
	{"point", "'(1,2)'", "(1,2)", true},
	{"int4range", "'[1,5)'", "[1,5)", true},
	{"pair", "ROW(1, 'x y')", `(1,"x y")`, true},
	{"integer", "NULL", nil, true},
}

const typeSetup = `CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text)`

// TestTypeMapping reads one column of each case and checks its BSON value
// and whether the document marks it as inexact.
func TestTypeMapping(t *testing.T) {
	url := newDB(t)
	for _, s := range strings.Split(typeSetup, ";\n") {
		exec(t, url, s)
	}
	var cols, vals []string
	for i, tc := range typeCases {
		cols = append(cols, fmt.Sprintf("c%d %s", i, tc.typ))
		vals = append(vals, tc.value)
	}
	exec(t, url, "CREATE TABLE types (id int PRIMARY KEY, "+strings.Join(cols, ", ")+")",
		"INSERT INTO types VALUES (1, "+strings.Join(vals, ", ")+")")
	c := configured(t, url)
	docs := readAll(t, c, plan(t, c, sdk.PlanRequest{Namespaces: []string{"public.types"}, InitialSync: true}))["public.types"]
	if len(docs) != 1 {
		t.Fatalf("got %d documents, want 1", len(docs))
	}
	doc := docs[0]
	if id := doc.Lookup("_id"); id.Type != bson.TypeInt32 || id.Int32() != 1 {
		t.Errorf("_id = %v, want int32 1", id)
	}
	meta, _ := doc.Lookup(MetaField).DocumentOK()
	for i, tc := range typeCases {
		key := fmt.Sprintf("c%d", i)
		got, err := doc.LookupErr(key)
		if err != nil {
			t.Errorf("%s %s: field missing", tc.typ, tc.value)
			continue
		}
		wantDoc, _ := bson.Marshal(bson.D{{Key: "v", Value: tc.want}})
		want := bson.Raw(wantDoc).Lookup("v")
		if !sameValue(got, want) {
			t.Errorf("%s %s: got %s %v, want %s %v", tc.typ, tc.value, got.Type, got, want.Type, want)
		}
		_, inMeta := meta.Lookup(key).StringValueOK()
		if inMeta == tc.exact {
			t.Errorf("%s %s: exact text in %s: %v, want %v", tc.typ, tc.value, MetaField, inMeta, !tc.exact)
		}
	}
}

func sameValue(a, b bson.RawValue) bool {
	if a.Type == bson.TypeDouble && b.Type == bson.TypeDouble {
		x, y := a.Double(), b.Double()
		return math.Float64bits(x) == math.Float64bits(y) || math.IsNaN(x) && math.IsNaN(y)
	}
	return a.Type == b.Type && string(a.Value) == string(b.Value)
}

// TestTextFormsMatchServer checks that the text the sink writes for
// natural values is what the server prints for them, so that exact values
// are recognized as exact.
func TestTextFormsMatchServer(t *testing.T) {
	url := newDB(t)
	floats := []float64{0, 1, -1, 1.5, 0.1, 1e14, 1e15, 123456789012345.6, 1e16, 0.0001, 0.00001, 1e-7, 1e300, -2.5e-300, 4.9e-324, math.MaxFloat64, 1.0 / 3, 100, 1234567, math.Pi * 1e10}
	for _, f := range floats {
		want := queryOne(t, url, "SELECT $1::float8::text", f)
		if got := string(appendPGFloat(nil, f, 64)); got != want {
			t.Errorf("float8 %v: got %q, server prints %q", f, got, want)
		}
		f32 := float64(float32(f))
		if math.IsInf(f32, 0) || (f32 == 0 && f != 0) {
			continue
		}
		want = queryOne(t, url, "SELECT $1::float4::text", float32(f))
		if got := string(appendPGFloat(nil, f32, 32)); got != want {
			t.Errorf("float4 %v: got %q, server prints %q", f32, got, want)
		}
	}
	times := []string{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00.1Z", "2024-05-01T10:00:00.12Z", "2024-05-01T10:00:00.123Z", "1969-12-31T23:59:59.999Z", "0099-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"}
	for _, s := range times {
		ms := date(s)
		tt := time.UnixMilli(int64(ms)).UTC()
		if got, want := string(appendTimestamp(nil, int64(ms), true)), queryOne(t, url, "SELECT $1::timestamptz::text", tt); got != want {
			t.Errorf("timestamptz %s: got %q, server prints %q", s, got, want)
		}
		if got, want := string(appendTimestamp(nil, int64(ms), false)), queryOne(t, url, "SELECT ($1::timestamptz AT TIME ZONE 'UTC')::text", tt); got != want {
			t.Errorf("timestamp %s: got %q, server prints %q", s, got, want)
		}
	}
	bc := bson.NewDateTimeFromTime(time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC))
	if got, want := string(appendTimestamp(nil, int64(bc), true)), queryOne(t, url, "SELECT '0044-03-15 12:00:00+00 BC'::timestamptz::text"); got != want {
		t.Errorf("BC timestamptz: got %q, server prints %q", got, want)
	}
	for _, s := range []string{"0", "0.00", "-1.50", "123456789012345678901234567890.1234", "1e-20", "1e20", "NaN", "Infinity", "-Infinity", "-0.000001"} {
		want := queryOne(t, url, "SELECT $1::numeric::text", s)
		h, l, exact, ok := parseNumeric([]byte(want))
		if !ok || !exact {
			t.Errorf("numeric %s: parse %q: ok %v exact %v", s, want, ok, exact)
			continue
		}
		if got, _ := appendDecimalPlain(nil, h, l); string(got) != want {
			t.Errorf("numeric %s: got %q, server prints %q", s, got, want)
		}
	}
}

func TestParseNumericRounding(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1.00000000000000000000000000000000005", "1.000000000000000000000000000000000"},
		{"1.00000000000000000000000000000000015", "1.000000000000000000000000000000000"},
		{"1.00000000000000000000000000000000025", "1.000000000000000000000000000000000"},
		{"1.000000000000000000000000000000000251", "1.000000000000000000000000000000000"},
		{"9.9999999999999999999999999999999999", "10.00000000000000000000000000000000"},
		{"-9.99999999999999999999999999999999951", "-10.00000000000000000000000000000000"},
		{"12345678901234567890123456789012345678", "12345678901234567890123456789012350000"},
	} {
		h, l, exact, ok := parseNumeric([]byte(tc.in))
		if !ok || exact {
			t.Errorf("%s: ok %v exact %v", tc.in, ok, exact)
			continue
		}
		if got, _ := appendDecimalPlain(nil, h, l); string(got) != tc.want {
			t.Errorf("%s rounds to %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseArray(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{`{1,2,3}`, `[1 2 3]`},
		{`{"a b","c\"d",NULL,"NULL",""}`, `[a b c"d <null> NULL ]`},
		{`{{1,2},{3,4}}`, `[[1 2] [3 4]]`},
		{`[2:3]={1,2}`, `[1 2]`},
		{`{}`, `[]`},
	} {
		n, ok := parseArray([]byte(tc.in), ',')
		if !ok {
			t.Errorf("parseArray(%s) failed", tc.in)
			continue
		}
		if got := nodeString(n); got != tc.want {
			t.Errorf("parseArray(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`{1,2`, `1,2}`, `{"a}`, `{1}x`} {
		if _, ok := parseArray([]byte(bad), ','); ok {
			t.Errorf("parseArray(%s) succeeded", bad)
		}
	}
}

func nodeString(n arrayNode) string {
	if n.null {
		return "<null>"
	}
	if !n.sub {
		return string(n.text)
	}
	var parts []string
	for _, it := range n.items {
		parts = append(parts, nodeString(it))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// TestDocTableJSONRoundTrip: the typed Extended JSON of document tables
// keeps every BSON type.
func TestDocTableJSONRoundTrip(t *testing.T) {
	oid, _ := bson.ObjectIDFromHex("65a1b2c3d4e5f60718293a4b")
	doc := bson.D{
		{Key: "_id", Value: oid},
		{Key: "i32", Value: int32(5)}, {Key: "i64", Value: int64(5)}, {Key: "big", Value: int64(1 << 60)},
		{Key: "f", Value: 2.0}, {Key: "g", Value: 0.1}, {Key: "nz", Value: math.Copysign(0, -1)}, {Key: "nan", Value: math.NaN()},
		{Key: "inf", Value: math.Inf(1)}, {Key: "d", Value: dec("1.50")}, {Key: "s", Value: "x\"\\\n\u0001é"},
		{Key: "at", Value: bson.DateTime(1_700_000_000_123)}, {Key: "old", Value: bson.DateTime(-1_000_000_000_000_000)},
		{Key: "bin", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}}, {Key: "null", Value: nil}, {Key: "t", Value: true},
		{Key: "sub", Value: bson.D{{Key: "a", Value: bson.A{int32(1), "two", bson.D{}}}}},
		{Key: "ts", Value: bson.Timestamp{T: 5, I: 6}}, {Key: "re", Value: bson.Regex{Pattern: "a.*", Options: "i"}},
		{Key: "min", Value: bson.MinKey{}},
	}
	raw, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	text, err := appendJSON(nil, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: raw}, true)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseEJSON(text)
	if err != nil {
		t.Fatalf("parse %s: %v", text, err)
	}
	elems, _ := bson.Raw(raw).Elements()
	for _, e := range elems {
		got := back.Lookup(e.Key())
		if !sameValue(got, e.Value()) {
			t.Errorf("%s: %s %v read back as %s %v (json %s)", e.Key(), e.Value().Type, e.Value(), got.Type, got, text)
		}
	}
	// And through the server's jsonb, which reorders keys and normalizes
	// numbers.
	url := newDB(t)
	stored := queryOne(t, url, "SELECT $1::jsonb::text", string(text))
	back, err = parseEJSON([]byte(stored))
	if err != nil {
		t.Fatalf("parse %s: %v", stored, err)
	}
	for _, e := range elems {
		if got := back.Lookup(e.Key()); !sameValue(got, e.Value()) {
			t.Errorf("through jsonb: %s: %s %v read back as %s %v (jsonb %s)", e.Key(), e.Value().Type, e.Value(), got.Type, got, stored)
		}
	}
}

// TestJSONParser compares the JSON reader with the driver's Extended JSON
// reader, which maps plain JSON the same way.
func TestJSONParser(t *testing.T) {
	for _, in := range []string{
		`{}`, `{"a": 1, "b": [true, false, null], "c": {"d": "e"}}`,
		` { "x" : -0.5e-3 , "y":[ 1 , 2147483648, -2147483649, 9223372036854775807 ] } `,
		`{"s": "quote \" backslash \\ slash \/ \b\f\n\r\t \u00e9 \ud83d\ude00 日本"}`,
		`{"dup": 1, "dup": 2}`, `{"nested": [[[]], [{}], {"a": [1.0, 2.5, 1e300]}]}`,
	} {
		got, typ, ok := appendJSONValue(nil, []byte(in))
		if !ok || typ != bsoncore.TypeEmbeddedDocument {
			t.Errorf("%s: ok %v type %v", in, ok, typ)
			continue
		}
		var want bson.D
		if err := bson.UnmarshalExtJSON([]byte(in), false, &want); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		w, _ := bson.Marshal(want)
		if !bytes.Equal(got, w) {
			t.Errorf("%s:\n got %s\nwant %s", in, bson.Raw(got), bson.Raw(w))
		}
	}
	for _, bad := range []string{`{`, `{"a"}`, `[1,]`, `{"a": 1}}`, `"abc`, `tru`, `{"k\u0000": 1}`, ``} {
		if _, _, ok := appendJSONValue(nil, []byte(bad)); ok {
			t.Errorf("%q: accepted", bad)
		}
	}
}
