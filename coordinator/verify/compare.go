package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// FieldDiffKind names how one field differs between A and B.
type FieldDiffKind string

// Field difference kinds.
const (
	// FieldMissingOnA: the field is in B's document, not in A's.
	FieldMissingOnA FieldDiffKind = "missing_on_a"
	// FieldMissingOnB: the field is in A's document, not in B's.
	FieldMissingOnB FieldDiffKind = "missing_on_b"
	// FieldValue: same type, different value.
	FieldValue FieldDiffKind = "value"
	// FieldType: different BSON types (with NumericEquivalence, the numeric
	// types count as one).
	FieldType FieldDiffKind = "type"
	// FieldOrder: the fields of the (sub)document at Path are the same or
	// overlap, but in another order. Never reported with IgnoreFieldOrder.
	FieldOrder FieldDiffKind = "order"
)

// FieldDiff is one difference between the documents of an id. Path is
// dotted from the top level ("sub.a", "arr.2"); it is empty for an order
// difference of the top-level fields.
type FieldDiff struct {
	Path string        `json:"path"`
	Kind FieldDiffKind `json:"kind"`
	// TypeA and TypeB name the BSON types (MongoDB $type aliases such as
	// "int", "long", "double", "string"), where the field exists.
	TypeA string `json:"type_a,omitempty"`
	TypeB string `json:"type_b,omitempty"`
	// A and B are the values as canonical Extended JSON, cut to
	// maxValueLen characters; empty for order differences and for
	// documents and arrays whose content is described by deeper paths.
	A string `json:"a,omitempty"`
	B string `json:"b,omitempty"`
}

const (
	// maxFieldDiffs bounds the field differences kept per document.
	maxFieldDiffs = 64
	// maxValueLen bounds FieldDiff.A and .B.
	maxValueLen = 80
)

// comparer compares documents under the comparison options. It is
// immutable and safe for concurrent use; scratch buffers live in a
// docComparer per goroutine.
type comparer struct {
	ignoreOrder bool
	numeric     bool
	exclude     *pathNode // nil: nothing excluded
}

// pathNode is a trie of excluded dotted paths.
type pathNode struct {
	children map[string]*pathNode
	leaf     bool // the path ends here: the field is removed
}

func newComparer(ignoreOrder, numeric bool, exclude []string) *comparer {
	c := &comparer{ignoreOrder: ignoreOrder, numeric: numeric}
	for _, p := range exclude {
		if c.exclude == nil {
			c.exclude = &pathNode{}
		}
		n := c.exclude
		for _, part := range strings.Split(p, ".") {
			if n.children == nil {
				n.children = map[string]*pathNode{}
			}
			next := n.children[part]
			if next == nil {
				next = &pathNode{}
				n.children[part] = next
			}
			n = next
		}
		n.leaf = true
	}
	return c
}

// child returns the node for key under n, nil when no excluded path goes
// through it.
func (n *pathNode) child(key string) *pathNode {
	if n == nil {
		return nil
	}
	return n.children[key]
}

// docComparer holds the scratch buffers of one goroutine.
type docComparer struct {
	*comparer
	bufA, bufB []byte
}

func (c *comparer) newDoc() *docComparer { return &docComparer{comparer: c} }

// equal reports whether a and b are equal under the options. Identical
// bytes are equal under any options; otherwise the canonical encodings are
// compared, so no hash collision can hide a difference.
func (d *docComparer) equal(a, b bson.Raw) (bool, error) {
	if bytes.Equal(a, b) {
		return true, nil
	}
	var err error
	if d.bufA, err = d.canonical(d.bufA[:0], a); err != nil {
		return false, err
	}
	if d.bufB, err = d.canonical(d.bufB[:0], b); err != nil {
		return false, err
	}
	return bytes.Equal(d.bufA, d.bufB), nil
}

// hash returns 16 hex digits of the SHA-256 of doc's canonical encoding,
// or "" for a nil document. Records keep it to tell whether a document
// changed between rechecks.
func (d *docComparer) hash(doc bson.Raw) (string, error) {
	if len(doc) == 0 {
		return "", nil
	}
	var err error
	if d.bufA, err = d.canonical(d.bufA[:0], doc); err != nil {
		return "", err
	}
	sum := sha256.Sum256(d.bufA)
	return hex.EncodeToString(sum[:8]), nil
}

// canonical appends the canonical encoding of doc: excluded fields removed,
// fields sorted by name at every level with ignoreOrder, numbers reduced to
// their exact value with numeric. The encoding is only ever compared, never
// decoded; it is unambiguous: every value starts with a tag and is
// self-delimiting.
func (c *comparer) canonical(dst []byte, doc bson.Raw) ([]byte, error) {
	if err := bsoncore.Document(doc).Validate(); err != nil {
		return nil, fmt.Errorf("%w: invalid BSON: %v", ErrBadDocument, err)
	}
	return c.appendDoc(dst, doc, c.exclude), nil
}

// elements returns the elements of a validated document or array, without
// the excluded ones (for a document).
func elements(doc []byte, node *pathNode, isArray bool) []bsoncore.Element {
	var out []bsoncore.Element
	rest := doc[4 : len(doc)-1]
	for len(rest) > 0 {
		e, r, ok := bsoncore.ReadElement(rest)
		if !ok {
			break // validated: cannot happen
		}
		rest = r
		if !isArray {
			if n := node.child(e.Key()); n != nil && n.leaf {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

func (c *comparer) sorted(els []bsoncore.Element) []bsoncore.Element {
	if c.ignoreOrder {
		slices.SortStableFunc(els, func(a, b bsoncore.Element) int { return bytes.Compare(a.KeyBytes(), b.KeyBytes()) })
	}
	return els
}

func (c *comparer) appendDoc(dst, doc []byte, node *pathNode) []byte {
	dst = append(dst, 'D')
	for _, e := range c.sorted(elements(doc, node, false)) {
		key := e.KeyBytes()
		dst = append(dst, 1)
		dst = binary.AppendUvarint(dst, uint64(len(key)))
		dst = append(dst, key...)
		dst = c.appendValue(dst, e.Value(), node.child(string(key)))
	}
	return append(dst, 0)
}

func (c *comparer) appendValue(dst []byte, v bsoncore.Value, node *pathNode) []byte {
	switch v.Type {
	case bsoncore.TypeEmbeddedDocument:
		return c.appendDoc(dst, v.Data, node)
	case bsoncore.TypeArray:
		// Array positions are significant; an excluded path applies to
		// each element that is a document.
		dst = append(dst, 'A')
		for _, e := range elements(v.Data, nil, true) {
			dst = append(dst, 1)
			dst = c.appendValue(dst, e.Value(), node)
		}
		return append(dst, 0)
	case bsoncore.TypeInt32, bsoncore.TypeInt64, bsoncore.TypeDouble, bsoncore.TypeDecimal128:
		if c.numeric {
			return appendNumber(append(dst, 'N'), v)
		}
	}
	dst = append(dst, byte(v.Type))
	dst = binary.AppendUvarint(dst, uint64(len(v.Data)))
	return append(dst, v.Data...)
}

// appendNumber appends the exact value of a number: 'i' and 8 bytes for an
// integer that fits int64, 'n' for NaN, '+'/'-' for infinities, else 'r' and
// the reduced fraction. int32 1, int64 1, double 1.0 and decimal 1.00 all
// encode as 'i' 1; double 0.1 and decimal 0.1 differ (the double is not
// exactly one tenth).
func appendNumber(dst []byte, v bsoncore.Value) []byte {
	appendInt := func(i int64) []byte { return binary.BigEndian.AppendUint64(append(dst, 'i'), uint64(i)) }
	appendRat := func(r *big.Rat) []byte {
		if r.IsInt() && r.Num().IsInt64() {
			return appendInt(r.Num().Int64())
		}
		s := r.String()
		dst = binary.AppendUvarint(append(dst, 'r'), uint64(len(s)))
		return append(dst, s...)
	}
	switch v.Type {
	case bsoncore.TypeInt32:
		return appendInt(int64(v.Int32()))
	case bsoncore.TypeInt64:
		return appendInt(v.Int64())
	case bsoncore.TypeDouble:
		f := v.Double()
		switch {
		case math.IsNaN(f):
			return append(dst, 'n')
		case math.IsInf(f, 1):
			return append(dst, '+')
		case math.IsInf(f, -1):
			return append(dst, '-')
		case f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63:
			return appendInt(int64(f)) // -0.0 is 0
		}
		return appendRat(new(big.Rat).SetFloat64(f))
	default: // decimal128
		h, l := v.Decimal128()
		d := bson.NewDecimal128(h, l)
		switch {
		case d.IsNaN():
			return append(dst, 'n')
		case d.IsInf() > 0:
			return append(dst, '+')
		case d.IsInf() < 0:
			return append(dst, '-')
		}
		bi, exp, err := d.BigInt()
		if err != nil {
			return append(dst, 'n') // unreachable: NaN and infinities handled above
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
		return appendRat(r)
	}
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// diff lists how a and b differ, at most maxFieldDiffs entries (truncated
// reports more). Both must be valid documents; it is only called for
// documents that equal found different.
func (c *comparer) diff(a, b bson.Raw) (diffs []FieldDiff, truncated bool) {
	w := &diffWalker{c: c}
	w.docs("", a, b, c.exclude)
	if len(w.out) == 0 {
		// Only the later occurrences of a repeated field name differ: the
		// walk compares a repeated name by its first occurrence.
		w.out = append(w.out, FieldDiff{Kind: FieldValue})
	}
	return w.out, w.truncated
}

type diffWalker struct {
	c         *comparer
	out       []FieldDiff
	truncated bool
}

func (w *diffWalker) add(d FieldDiff) {
	if len(w.out) >= maxFieldDiffs {
		w.truncated = true
		return
	}
	w.out = append(w.out, d)
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func (w *diffWalker) docs(path string, a, b []byte, node *pathNode) {
	ea, eb := elements(a, node, false), elements(b, node, false)
	index := func(els []bsoncore.Element) map[string]bsoncore.Value {
		m := make(map[string]bsoncore.Value, len(els))
		for _, e := range els {
			if _, dup := m[e.Key()]; !dup {
				m[e.Key()] = e.Value()
			}
		}
		return m
	}
	// A key given twice in one document is compared by its first
	// occurrence; canonical still sees every occurrence.
	ma, mb := index(ea), index(eb)
	var commonA, commonB []string
	done := make(map[string]bool, len(ea))
	for _, e := range ea {
		k := e.Key()
		if done[k] {
			continue
		}
		done[k] = true
		vb, ok := mb[k]
		if !ok {
			w.add(FieldDiff{Path: joinPath(path, k), Kind: FieldMissingOnB, TypeA: typeName(e.Value().Type, false), A: valueString(e.Value())})
			continue
		}
		commonA = append(commonA, k)
		w.values(joinPath(path, k), e.Value(), vb, node.child(k))
	}
	clear(done)
	for _, e := range eb {
		k := e.Key()
		if done[k] {
			continue
		}
		done[k] = true
		if _, ok := ma[k]; !ok {
			w.add(FieldDiff{Path: joinPath(path, k), Kind: FieldMissingOnA, TypeB: typeName(e.Value().Type, false), B: valueString(e.Value())})
			continue
		}
		commonB = append(commonB, k)
	}
	if !w.c.ignoreOrder && !slices.Equal(commonA, commonB) {
		w.add(FieldDiff{Path: path, Kind: FieldOrder})
	}
}

func (w *diffWalker) values(path string, va, vb bsoncore.Value, node *pathNode) {
	ta, tb := typeName(va.Type, w.c.numeric), typeName(vb.Type, w.c.numeric)
	if ta != tb {
		w.add(FieldDiff{Path: path, Kind: FieldType, TypeA: typeName(va.Type, false), TypeB: typeName(vb.Type, false),
			A: valueString(va), B: valueString(vb)})
		return
	}
	switch va.Type {
	case bsoncore.TypeEmbeddedDocument:
		w.docs(path, va.Data, vb.Data, node)
		return
	case bsoncore.TypeArray:
		ea, eb := elements(va.Data, nil, true), elements(vb.Data, nil, true)
		for i := range max(len(ea), len(eb)) {
			p := joinPath(path, strconv.Itoa(i))
			switch {
			case i >= len(eb):
				w.add(FieldDiff{Path: p, Kind: FieldMissingOnB, TypeA: typeName(ea[i].Value().Type, false), A: valueString(ea[i].Value())})
			case i >= len(ea):
				w.add(FieldDiff{Path: p, Kind: FieldMissingOnA, TypeB: typeName(eb[i].Value().Type, false), B: valueString(eb[i].Value())})
			default:
				w.values(p, ea[i].Value(), eb[i].Value(), node)
			}
		}
		return
	}
	ca := w.c.appendValue(nil, va, node)
	cb := w.c.appendValue(nil, vb, node)
	if !bytes.Equal(ca, cb) {
		d := FieldDiff{Path: path, Kind: FieldValue, TypeA: typeName(va.Type, false), TypeB: typeName(vb.Type, false),
			A: valueString(va), B: valueString(vb)}
		if d.TypeA == d.TypeB {
			d.TypeB = ""
		}
		w.add(d)
	}
}

// valueString renders v as canonical Extended JSON, cut to maxValueLen.
func valueString(v bsoncore.Value) string {
	s, truncated := v.StringN(maxValueLen)
	if truncated {
		s += "…"
	}
	return s
}

// typeName returns MongoDB's $type alias of t; with numeric, the numeric
// types are all "number".
func typeName(t bsoncore.Type, numeric bool) string {
	switch t {
	case bsoncore.TypeDouble, bsoncore.TypeInt32, bsoncore.TypeInt64, bsoncore.TypeDecimal128:
		if numeric {
			return "number"
		}
	}
	switch t {
	case bsoncore.TypeDouble:
		return "double"
	case bsoncore.TypeString:
		return "string"
	case bsoncore.TypeEmbeddedDocument:
		return "object"
	case bsoncore.TypeArray:
		return "array"
	case bsoncore.TypeBinary:
		return "binData"
	case bsoncore.TypeUndefined:
		return "undefined"
	case bsoncore.TypeObjectID:
		return "objectId"
	case bsoncore.TypeBoolean:
		return "bool"
	case bsoncore.TypeDateTime:
		return "date"
	case bsoncore.TypeNull:
		return "null"
	case bsoncore.TypeRegex:
		return "regex"
	case bsoncore.TypeDBPointer:
		return "dbPointer"
	case bsoncore.TypeJavaScript:
		return "javascript"
	case bsoncore.TypeSymbol:
		return "symbol"
	case bsoncore.TypeCodeWithScope:
		return "javascriptWithScope"
	case bsoncore.TypeInt32:
		return "int"
	case bsoncore.TypeTimestamp:
		return "timestamp"
	case bsoncore.TypeInt64:
		return "long"
	case bsoncore.TypeDecimal128:
		return "decimal"
	case bsoncore.TypeMinKey:
		return "minKey"
	case bsoncore.TypeMaxKey:
		return "maxKey"
	}
	return fmt.Sprintf("type 0x%02x", byte(t))
}
