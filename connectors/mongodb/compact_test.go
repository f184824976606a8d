package mongodb

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

func describeRounds(rounds [][]writeOp) string {
	var parts []string
	for i, r := range rounds {
		var ops []string
		for _, o := range r {
			switch o.kind {
			case opReplace:
				ops = append(ops, fmt.Sprintf("replace %s %s", o.id, o.doc))
			case opDelete:
				ops = append(ops, fmt.Sprintf("delete %s", o.id))
			case opUpdate:
				var set []string
				for _, e := range o.set {
					set = append(set, e.Key()+"="+e.Value().String())
				}
				ops = append(ops, fmt.Sprintf("update %s set[%s] unset%v", o.id, strings.Join(set, " "), o.unset))
			}
		}
		parts = append(parts, fmt.Sprintf("round %d: %s", i, strings.Join(ops, "; ")))
	}
	return strings.Join(parts, "\n")
}

func TestCompact(t *testing.T) {
	t.Parallel()
	id := rawID("x")
	partial := func(set bson.D, unset ...string) sdk.Update {
		return sdk.Update{ID: id, Type: sdk.UpdatePartial, Doc: rawDoc(set), Unset: unset}
	}
	replace := func(d bson.D) sdk.Update { return sdk.Update{ID: id, Type: sdk.UpdateReplace, Doc: rawDoc(d)} }
	del := sdk.Update{ID: id, Type: sdk.UpdateDelete}
	tests := []struct {
		name string
		in   []sdk.Update
		want string
	}{
		{"last write wins", []sdk.Update{replace(bson.D{{Key: "a", Value: 1}}), del, replace(bson.D{{Key: "b", Value: 2}})},
			`round 0: replace "x" {"_id": "x","b": {"$numberInt":"2"}}`},
		{"partial on a replacement", []sdk.Update{replace(bson.D{{Key: "_id", Value: "x"}, {Key: "a", Value: 1}, {Key: "s", Value: bson.D{{Key: "t", Value: 1}}}}), partial(bson.D{{Key: "s.u", Value: 2}, {Key: "a", Value: 3}, {Key: "n.m", Value: 4}}, "s.t")},
			`round 0: replace "x" {"_id": "x","a": {"$numberInt":"3"},"s": {"u": {"$numberInt":"2"}},"n": {"m": {"$numberInt":"4"}}}`},
		{"partial after a delete creates the document", []sdk.Update{del, partial(bson.D{{Key: "a.b", Value: 1}})},
			`round 0: replace "x" {"_id": "x","a": {"b": {"$numberInt":"1"}}}`},
		{"disjoint partials merge, later wins", []sdk.Update{partial(bson.D{{Key: "a", Value: 1}, {Key: "b", Value: 1}}), partial(bson.D{{Key: "a", Value: 2}}, "b"), partial(bson.D{{Key: "b", Value: 3}}, "c")},
			`round 0: update "x" set[a={"$numberInt":"2"} b={"$numberInt":"3"}] unset[c]`},
		{"overlapping partials keep their order", []sdk.Update{partial(bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: 1}}}}), partial(bson.D{{Key: "a.c", Value: 2}}), partial(bson.D{{Key: "d", Value: 3}})},
			"round 0: update \"x\" set[a={\"b\": {\"$numberInt\":\"1\"}}] unset[]\nround 1: update \"x\" set[a.c={\"$numberInt\":\"2\"} d={\"$numberInt\":\"3\"}] unset[]"},
		{"paths through arrays are left to the server", []sdk.Update{replace(bson.D{{Key: "arr", Value: bson.A{1, 2}}}), partial(bson.D{{Key: "arr.1", Value: 5}})},
			"round 0: replace \"x\" {\"_id\": \"x\",\"arr\": [{\"$numberInt\":\"1\"},{\"$numberInt\":\"2\"}]}\nround 1: update \"x\" set[arr.1={\"$numberInt\":\"5\"}] unset[]"},
		{"_id in a partial is dropped", []sdk.Update{partial(bson.D{{Key: "_id", Value: "x"}, {Key: "a", Value: 1}})},
			`round 0: update "x" set[a={"$numberInt":"1"}] unset[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rounds, err := compact(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := describeRounds(rounds); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	// Different ids stay in one round, in first-seen order.
	rounds, _ := compact([]sdk.Update{
		{ID: rawID(1), Type: sdk.UpdateDelete}, {ID: rawID(2), Type: sdk.UpdateDelete}, {ID: rawID(1), Type: sdk.UpdateInsert, Doc: rawDoc(bson.D{{Key: "_id", Value: 1}})},
	})
	if len(rounds) != 1 || len(rounds[0]) != 2 || rounds[0][0].kind != opReplace || rounds[0][1].kind != opDelete {
		t.Errorf("two ids: %s", describeRounds(rounds))
	}
	if _, err := compact([]sdk.Update{{Type: sdk.UpdateDelete}}); err == nil {
		t.Error("update without _id accepted")
	}
	if _, err := compact([]sdk.Update{{ID: rawID(1), Type: sdk.UpdateReplace}}); err == nil {
		t.Error("replace without a document accepted")
	}
}

// Filters of ranges, checked for their shape (the FerretDB tests check
// what they select).
func TestRangeFilterShapes(t *testing.T) {
	t.Parallel()
	num := func(v any) *bound { b := boundAt(rawID(v)); return &b }
	tests := []struct {
		name   string
		r      idRange
		ferret bool
		want   string
	}{
		{"all", idRange{}, false, `{}`},
		{"within numbers", idRange{lo: num(1), hi: num(5.5)}, false,
			`{"_id": {"$type": [{"$numberInt":"1"},{"$numberInt":"16"},{"$numberInt":"18"},{"$numberInt":"19"}],"$gte": {"$numberInt":"1"},"$lt": {"$numberDouble":"5.5"}}}`},
		{"numbers to strings", idRange{lo: num(1), hi: num("m")}, true,
			`{"$or": [{"_id": {"$type": [{"$numberInt":"1"},{"$numberInt":"16"},{"$numberInt":"18"}],"$gte": {"$numberInt":"1"}}},{"_id": {"$type": [{"$numberInt":"2"}],"$lt": "m"}}]}`},
		{"first partition", idRange{hi: num("m")}, true,
			`{"$or": [{"_id": {"$type": [{"$numberInt":"2"}],"$lt": "m"}},{"_id": {"$type": [{"$numberInt":"10"},{"$numberInt":"1"},{"$numberInt":"16"},{"$numberInt":"18"}]}}]}`},
		{"null split point is the null bracket start", idRange{lo: num(nil)}, true,
			`{"_id": {"$type": [{"$numberInt":"10"},{"$numberInt":"1"},{"$numberInt":"16"},{"$numberInt":"18"},{"$numberInt":"2"},{"$numberInt":"3"},{"$numberInt":"4"},{"$numberInt":"5"},{"$numberInt":"7"},{"$numberInt":"8"},{"$numberInt":"9"},{"$numberInt":"17"},{"$numberInt":"11"}]}}`},
		{"after null", idRange{}.after(rawID(nil)), true,
			`{"_id": {"$type": [{"$numberInt":"1"},{"$numberInt":"16"},{"$numberInt":"18"},{"$numberInt":"2"},{"$numberInt":"3"},{"$numberInt":"4"},{"$numberInt":"5"},{"$numberInt":"7"},{"$numberInt":"8"},{"$numberInt":"9"},{"$numberInt":"17"},{"$numberInt":"11"}]}}`},
		{"after NaN", idRange{hi: num(0)}.after(rawID(math.NaN())), false,
			`{"_id": {"$type": [{"$numberInt":"1"},{"$numberInt":"16"},{"$numberInt":"18"},{"$numberInt":"19"}],"$gte": {"$numberDouble":"-Infinity"},"$lt": {"$numberInt":"0"}}}`},
		{"after a string", idRange{hi: num(true)}.after(rawID("k")), true,
			`{"$or": [{"_id": {"$type": [{"$numberInt":"2"}],"$gt": "k"}},{"_id": {"$type": [{"$numberInt":"8"}],"$lt": true}},{"_id": {"$type": [{"$numberInt":"3"},{"$numberInt":"4"},{"$numberInt":"5"},{"$numberInt":"7"}]}}]}`},
		{"after MaxKey", idRange{}.after(bson.RawValue{Type: bson.TypeMaxKey}), false, `{"_id": {"$in": []}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rawDoc(tt.r.filter(tt.ferret)).String(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	if b := boundAt(rawID(math.NaN())); b.hasValue() {
		t.Error("NaN is a comparison operand")
	}
	if b := boundAt(bson.RawValue{Type: bson.TypeMinKey}); b.hasValue() || b.B != 0 {
		t.Errorf("MinKey bound %+v", b)
	}
}
