package filter

import (
	"bytes"
	"cmp"
	"math"
	"math/big"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// bracket is the rank of a BSON type in MongoDB's comparison order:
// values of different brackets compare by bracket; queries only match
// values of the bracket of the operand.
func bracket(t bson.Type) int {
	switch t {
	case bson.TypeMinKey:
		return 1
	case bson.TypeNull, bson.TypeUndefined:
		return 2
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble, bson.TypeDecimal128:
		return 3
	case bson.TypeString, bson.TypeSymbol:
		return 4
	case bson.TypeEmbeddedDocument:
		return 5
	case bson.TypeArray:
		return 6
	case bson.TypeBinary:
		return 7
	case bson.TypeObjectID:
		return 8
	case bson.TypeBoolean:
		return 9
	case bson.TypeDateTime:
		return 10
	case bson.TypeTimestamp:
		return 11
	case bson.TypeRegex:
		return 12
	case bson.TypeMaxKey:
		return 14
	}
	return 13 // DBPointer, JavaScript, code with scope
}

// compare orders two values as MongoDB does: by bracket, then by value.
// Numbers of any type compare by their exact value (int32 1, int64 1 and
// double 1.0 are equal); NaN equals NaN and is below every other number.
func compare(a, b bson.RawValue) int {
	if c := cmp.Compare(bracket(a.Type), bracket(b.Type)); c != 0 {
		return c
	}
	switch bracket(a.Type) {
	case 1, 2, 14:
		return 0
	case 3:
		return compareNumbers(a, b)
	case 4:
		return cmp.Compare(stringOf(a), stringOf(b))
	case 5, 6:
		return compareDocs(a.Value, b.Value)
	case 7:
		sa, da, _ := a.BinaryOK()
		sb, db, _ := b.BinaryOK()
		if c := cmp.Compare(len(da), len(db)); c != 0 {
			return c
		}
		if c := cmp.Compare(sa, sb); c != 0 {
			return c
		}
		return bytes.Compare(da, db)
	case 9:
		x, y := a.Boolean(), b.Boolean()
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case 10:
		return cmp.Compare(a.DateTime(), b.DateTime())
	case 11:
		ta, ia := a.Timestamp()
		tb, ib := b.Timestamp()
		if c := cmp.Compare(ta, tb); c != 0 {
			return c
		}
		return cmp.Compare(ia, ib)
	case 12:
		pa, oa := a.Regex()
		pb, ob := b.Regex()
		if c := cmp.Compare(pa, pb); c != 0 {
			return c
		}
		return cmp.Compare(oa, ob)
	}
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return bytes.Compare(a.Value, b.Value)
}

func stringOf(v bson.RawValue) string {
	if s, ok := v.StringValueOK(); ok {
		return s
	}
	s, _ := v.SymbolOK()
	return s
}

// compareDocs compares documents (or arrays) element by element: value
// bracket, then field name, then value; a prefix sorts first.
func compareDocs(a, b []byte) int {
	ea, errA := bson.Raw(a).Elements()
	eb, errB := bson.Raw(b).Elements()
	if errA != nil || errB != nil {
		return bytes.Compare(a, b)
	}
	for i := 0; i < len(ea) && i < len(eb); i++ {
		va, vb := ea[i].Value(), eb[i].Value()
		if c := cmp.Compare(bracket(va.Type), bracket(vb.Type)); c != 0 {
			return c
		}
		if c := cmp.Compare(ea[i].Key(), eb[i].Key()); c != 0 {
			return c
		}
		if c := compare(va, vb); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(ea), len(eb))
}

// number is a numeric value in a form that compares exactly.
type number struct {
	kind  int // 0 NaN, 1 -Inf, 2 finite, 3 +Inf
	isInt bool
	i     int64
	f     float64
	dec   *big.Rat // exact value of a finite Decimal128
}

func numberOf(v bson.RawValue) number {
	switch v.Type {
	case bson.TypeInt32:
		return number{kind: 2, isInt: true, i: int64(v.Int32())}
	case bson.TypeInt64:
		return number{kind: 2, isInt: true, i: v.Int64()}
	case bson.TypeDouble:
		f := v.Double()
		switch {
		case math.IsNaN(f):
			return number{kind: 0}
		case math.IsInf(f, -1):
			return number{kind: 1}
		case math.IsInf(f, 1):
			return number{kind: 3}
		}
		return number{kind: 2, f: f}
	}
	d := v.Decimal128()
	switch {
	case d.IsNaN():
		return number{kind: 0}
	case d.IsInf() < 0:
		return number{kind: 1}
	case d.IsInf() > 0:
		return number{kind: 3}
	}
	bi, exp, err := d.BigInt()
	if err != nil {
		return number{kind: 0}
	}
	r := new(big.Rat).SetInt(bi)
	if exp != 0 {
		p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil)
		if exp > 0 {
			r.Mul(r, new(big.Rat).SetInt(p))
		} else {
			r.Quo(r, new(big.Rat).SetInt(p))
		}
	}
	return number{kind: 2, dec: r}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func (n number) rat() *big.Rat {
	switch {
	case n.dec != nil:
		return n.dec
	case n.isInt:
		return new(big.Rat).SetInt64(n.i)
	}
	return new(big.Rat).SetFloat64(n.f)
}

func compareNumbers(a, b bson.RawValue) int {
	x, y := numberOf(a), numberOf(b)
	if x.kind != 2 || y.kind != 2 {
		return cmp.Compare(x.kind, y.kind)
	}
	switch {
	case x.isInt && y.isInt:
		return cmp.Compare(x.i, y.i)
	case x.dec == nil && y.dec == nil && !x.isInt && !y.isInt:
		return cmp.Compare(x.f, y.f)
	}
	return x.rat().Cmp(y.rat())
}
