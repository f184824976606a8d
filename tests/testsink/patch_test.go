package testsink

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func marshal(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestApplyPartial(t *testing.T) {
	id := bson.RawValue{Type: bson.TypeInt32, Value: []byte{7, 0, 0, 0}}
	base := bson.D{
		{Key: "_id", Value: int32(7)},
		{Key: "a", Value: int32(1)},
		{Key: "sub", Value: bson.D{{Key: "x", Value: "x"}, {Key: "y", Value: bson.D{{Key: "z", Value: true}}}}},
		{Key: "arr", Value: bson.A{int32(1), int32(2), bson.D{{Key: "name", Value: "n"}}}},
		{Key: "s", Value: "scalar"},
	}
	// with returns base with the top-level field key replaced (or appended).
	with := func(kvs ...bson.E) bson.D {
		out := append(bson.D(nil), base...)
		for _, kv := range kvs {
			found := false
			for i := range out {
				if out[i].Key == kv.Key {
					out[i].Value, found = kv.Value, true
				}
			}
			if !found {
				out = append(out, kv)
			}
		}
		return out
	}
	without := func(key string) bson.D {
		var out bson.D
		for _, e := range base {
			if e.Key != key {
				out = append(out, e)
			}
		}
		return out
	}
	tests := []struct {
		name    string
		missing bool // the document does not exist yet
		set     bson.D
		unset   []string
		want    bson.D
		wantErr string
	}{
		{name: "no change", want: base},
		{name: "replace top-level field in place", set: bson.D{{Key: "a", Value: "one"}}, want: with(bson.E{Key: "a", Value: "one"})},
		{name: "add top-level field at the end", set: bson.D{{Key: "new", Value: int64(3)}}, want: with(bson.E{Key: "new", Value: int64(3)})},
		{
			name: "dotted path into embedded document",
			set:  bson.D{{Key: "sub.y.z", Value: false}, {Key: "sub.w", Value: int32(2)}},
			want: with(bson.E{Key: "sub", Value: bson.D{
				{Key: "x", Value: "x"}, {Key: "y", Value: bson.D{{Key: "z", Value: false}}}, {Key: "w", Value: int32(2)},
			}}),
		},
		{
			name: "dotted path creates missing documents",
			set:  bson.D{{Key: "p.q.r", Value: int32(1)}},
			want: with(bson.E{Key: "p", Value: bson.D{{Key: "q", Value: bson.D{{Key: "r", Value: int32(1)}}}}}),
		},
		{
			name: "dotted path through a scalar replaces it",
			set:  bson.D{{Key: "s.t", Value: int32(1)}},
			want: with(bson.E{Key: "s", Value: bson.D{{Key: "t", Value: int32(1)}}}),
		},
		{
			name: "array index",
			set:  bson.D{{Key: "arr.1", Value: "two"}},
			want: with(bson.E{Key: "arr", Value: bson.A{int32(1), "two", bson.D{{Key: "name", Value: "n"}}}}),
		},
		{
			name: "array index past the end pads with null",
			set:  bson.D{{Key: "arr.5", Value: "six"}},
			want: with(bson.E{Key: "arr", Value: bson.A{int32(1), int32(2), bson.D{{Key: "name", Value: "n"}}, nil, nil, "six"}}),
		},
		{
			name: "field inside an array element",
			set:  bson.D{{Key: "arr.2.name", Value: "m"}},
			want: with(bson.E{Key: "arr", Value: bson.A{int32(1), int32(2), bson.D{{Key: "name", Value: "m"}}}}),
		},
		{
			name: "field name into an array makes it a document",
			set:  bson.D{{Key: "arr.k", Value: int32(0)}},
			want: with(bson.E{Key: "arr", Value: bson.D{
				{Key: "0", Value: int32(1)}, {Key: "1", Value: int32(2)}, {Key: "2", Value: bson.D{{Key: "name", Value: "n"}}}, {Key: "k", Value: int32(0)},
			}}),
		},
		{name: "_id is never set", set: bson.D{{Key: "_id", Value: "other"}, {Key: "_id.x", Value: int32(1)}}, want: base},
		{name: "unset top-level field", unset: []string{"a"}, want: without("a")},
		{
			name:  "unset dotted path",
			unset: []string{"sub.y.z", "sub.x"},
			want:  with(bson.E{Key: "sub", Value: bson.D{{Key: "y", Value: bson.D{}}}}),
		},
		{name: "unset missing paths", unset: []string{"nope", "sub.nope", "nope.deeper", "s.t", "arr.9", "arr.x"}, want: base},
		{name: "unset _id is ignored", unset: []string{"_id"}, want: base},
		{
			name:  "unset array element leaves null",
			unset: []string{"arr.0"},
			want:  with(bson.E{Key: "arr", Value: bson.A{nil, int32(2), bson.D{{Key: "name", Value: "n"}}}}),
		},
		{
			name:  "set then unset",
			set:   bson.D{{Key: "b", Value: int32(2)}},
			unset: []string{"a"},
			want:  append(without("a"), bson.E{Key: "b", Value: int32(2)}),
		},
		{
			name:    "missing document is created from _id and set fields",
			missing: true,
			set:     bson.D{{Key: "a", Value: int32(1)}, {Key: "b.c", Value: "d"}},
			unset:   []string{"gone"},
			want:    bson.D{{Key: "_id", Value: int32(7)}, {Key: "a", Value: int32(1)}, {Key: "b", Value: bson.D{{Key: "c", Value: "d"}}}},
		},
		{name: "array index too far", set: bson.D{{Key: "arr.99999999", Value: int32(1)}}, wantErr: "too far"},
		{name: "NUL in unset field", unset: []string{"a\x00b"}, wantErr: "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc bson.Raw
			if !tt.missing {
				doc = marshal(t, base)
			}
			var set bson.Raw
			if tt.set != nil {
				set = marshal(t, tt.set)
			}
			got, err := applyPartial(doc, id, set, tt.unset)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("result is not valid BSON: %v", err)
			}
			if want := marshal(t, tt.want); string(got) != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestApplyPartialKeepsUnchangedBytes(t *testing.T) {
	// Values outside the edited path keep their exact bytes.
	doc := marshal(t, bson.D{
		{Key: "_id", Value: "k"},
		{Key: "bin", Value: bson.Binary{Subtype: 0x80, Data: []byte{1, 2}}},
		{Key: "d", Value: bson.D{{Key: "ts", Value: bson.Timestamp{T: 1, I: 2}}, {Key: "x", Value: int32(1)}}},
	})
	id := doc.Lookup("_id")
	got, err := applyPartial(doc, id, marshal(t, bson.D{{Key: "d.x", Value: int32(1)}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(doc) {
		t.Errorf("setting a field to its value changed the document:\ngot  %x\nwant %x", []byte(got), []byte(doc))
	}
}

func TestKeyEncoding(t *testing.T) {
	// Namespaces that are prefixes of one another, or hold NUL bytes, get
	// disjoint key ranges.
	nss := []string{"", "a", "a\x00", "a\x00b", "ab", "a.b", "\x00"}
	for _, ns := range nss {
		p := docPrefix(ns)
		got, rest, err := decodeNS(p[1:])
		if err != nil || got != ns || len(rest) != 0 {
			t.Errorf("decodeNS(docPrefix(%q)) = %q, %x, %v", ns, got, rest, err)
		}
		for _, other := range nss {
			if other == ns {
				continue
			}
			q := docPrefix(other)
			if len(q) >= len(p) && string(q[:len(p)]) == string(p) {
				t.Errorf("prefix of %q is a prefix of that of %q", ns, other)
			}
		}
	}
	if _, _, err := decodeNS([]byte("abc")); err == nil {
		t.Error("decodeNS accepted an unterminated namespace")
	}
}

func TestPlainID(t *testing.T) {
	oid := bson.NewObjectID()
	tests := []struct {
		v    any
		want string
	}{
		{"42", "42"},
		{int32(42), "42"},
		{int64(42), "42"},
		{42.5, "42.5"},
		{oid, oid.Hex()},
		{true, "true"},
	}
	for _, tt := range tests {
		typ, val, err := bson.MarshalValue(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		if got := plainID(bson.RawValue{Type: typ, Value: val}); got != tt.want {
			t.Errorf("plainID(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
