package mongodb

import (
	"bytes"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A bracket is a set of BSON types that MongoDB compares with each other.
// Query comparisons ($gt, $lt, ...) only match values of the bracket of
// their operand, and the _id order sorts whole brackets in the order of the
// brackets table. Ranges of _id that cross brackets are therefore written
// as unions of per-bracket clauses selected with $type.
type bracket struct {
	name string
	// codes are the $type codes of the bracket's BSON types.
	codes []int32
	// ordered brackets hold many distinct _id values that $gt and $lt
	// compare; the others (MinKey, undefined, null, MaxKey) hold at most one
	// _id, since the _id index is unique.
	ordered bool
}

// brackets lists every BSON type in MongoDB's sort order.
var brackets = []bracket{
	{"minKey", []int32{-1}, false},
	{"undefined", []int32{6}, false},
	{"null", []int32{10}, false},
	{"number", []int32{1, 16, 18, 19}, true},
	{"string", []int32{2, 14}, true},
	{"object", []int32{3}, true},
	{"array", []int32{4}, true},
	{"binData", []int32{5}, true},
	{"objectId", []int32{7}, true},
	{"bool", []int32{8}, true},
	{"date", []int32{9}, true},
	{"timestamp", []int32{17}, true},
	{"regex", []int32{11}, true},
	{"dbPointer", []int32{12}, true},
	{"javascript", []int32{13}, true},
	{"javascriptWithScope", []int32{15}, true},
	{"maxKey", []int32{127}, false},
}

// ferretTypeCodes are the $type codes FerretDB knows; it rejects the others
// and cannot store values of those types.
var ferretTypeCodes = map[int32]bool{1: true, 2: true, 3: true, 4: true, 5: true, 7: true, 8: true, 9: true, 10: true, 11: true, 16: true, 17: true, 18: true}

// bracketOf returns the index in brackets of t's bracket.
func bracketOf(t bson.Type) int {
	code := int32(int8(t))
	if t == bson.TypeMaxKey {
		code = 127
	}
	for i, b := range brackets {
		for _, c := range b.codes {
			if c == code {
				return i
			}
		}
	}
	// Unknown types sort with nothing; keep them in the last bracket.
	return len(brackets) - 1
}

// bound is one end of an _id range: the start of bracket B when V is empty,
// else the value V (of bracket B).
type bound struct {
	B int
	V bson.RawValue
}

func (b bound) hasValue() bool { return b.V.Type != 0 }

// boundAt returns the bound at value v. Values that cannot serve as a
// comparison operand (the unordered brackets, NaN) give the start of their
// bracket.
func boundAt(v bson.RawValue) bound {
	b := bound{B: bracketOf(v.Type)}
	if brackets[b.B].ordered && !isNaN(v) {
		b.V = v
	}
	return b
}

func isNaN(v bson.RawValue) bool {
	switch v.Type {
	case bson.TypeDouble:
		return math.IsNaN(v.Double())
	case bson.TypeDecimal128:
		d, ok := v.Decimal128OK()
		return ok && isDecimalNaN(d)
	}
	return false
}

func isDecimalNaN(d bson.Decimal128) bool {
	h, _ := d.GetBytes()
	return h>>58&0x1f == 0x1f
}

// sameAs reports whether b and o are the same bound.
func (b bound) sameAs(o bound) bool {
	return b.B == o.B && b.V.Type == o.V.Type && bytes.Equal(b.V.Value, o.V.Value)
}

// idRange is a set of _id values: from lo (inclusive; after it when
// loExcl) to hi (exclusive). A nil end is unbounded.
type idRange struct {
	lo     *bound
	loExcl bool
	hi     *bound
}

// after returns the range of r's values after v (the keyset resume
// range of a partition whose last returned _id is v).
func (r idRange) after(v bson.RawValue) idRange {
	b := bracketOf(v.Type)
	switch {
	case isNaN(v):
		// NaN sorts before every number and is not a usable operand;
		// {$gte: -Infinity} selects the rest of the numbers.
		return idRange{lo: &bound{B: b, V: doubleValue(math.Inf(-1))}, hi: r.hi}
	case !brackets[b].ordered:
		// The only _id of an unordered bracket: continue at the next one.
		if b+1 >= len(brackets) {
			return idRange{lo: &bound{B: b}, loExcl: true, hi: r.hi}
		}
		return idRange{lo: &bound{B: b + 1}, hi: r.hi}
	}
	return idRange{lo: &bound{B: b, V: v}, loExcl: true, hi: r.hi}
}

func doubleValue(f float64) bson.RawValue {
	var buf [8]byte
	bits := math.Float64bits(f)
	for i := range 8 {
		buf[i] = byte(bits >> (8 * i))
	}
	return bson.RawValue{Type: bson.TypeDouble, Value: buf[:]}
}

// filter returns the query selecting exactly the _ids of r. ferret limits
// $type codes to those FerretDB knows.
func (r idRange) filter(ferret bool) bson.D {
	if r.lo == nil && r.hi == nil {
		return bson.D{}
	}
	if r.lo != nil && r.loExcl && !r.lo.hasValue() {
		// After the end of the last bracket: nothing.
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}
	}
	codes := func(from, to int) bson.A {
		var a bson.A
		for _, b := range brackets[from:to] {
			for _, c := range b.codes {
				if !ferret || ferretTypeCodes[c] {
					a = append(a, c)
				}
			}
		}
		return a
	}
	loOp := "$gte"
	if r.loExcl {
		loOp = "$gt"
	}
	// Same bracket, both with values: one clause.
	if r.lo != nil && r.hi != nil && r.lo.B == r.hi.B && r.lo.hasValue() && r.hi.hasValue() {
		return bson.D{{Key: "_id", Value: bson.D{
			{Key: "$type", Value: codes(r.lo.B, r.lo.B+1)},
			{Key: loOp, Value: r.lo.V},
			{Key: "$lt", Value: r.hi.V},
		}}}
	}
	var clauses bson.A
	from, to := 0, len(brackets)
	if r.lo != nil {
		from = r.lo.B
		if r.lo.hasValue() {
			clauses = append(clauses, bson.D{{Key: "_id", Value: bson.D{
				{Key: "$type", Value: codes(r.lo.B, r.lo.B+1)},
				{Key: loOp, Value: r.lo.V},
			}}})
			from++
		}
	}
	if r.hi != nil {
		to = r.hi.B
		if r.hi.hasValue() {
			clauses = append(clauses, bson.D{{Key: "_id", Value: bson.D{
				{Key: "$type", Value: codes(r.hi.B, r.hi.B+1)},
				{Key: "$lt", Value: r.hi.V},
			}}})
		}
	}
	if from < to {
		if a := codes(from, to); len(a) > 0 {
			clauses = append(clauses, bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: a}}}})
		}
	}
	switch len(clauses) {
	case 0:
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}
	case 1:
		return clauses[0].(bson.D)
	}
	return bson.D{{Key: "$or", Value: clauses}}
}
