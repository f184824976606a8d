package testsink

import (
	"bytes"
	"fmt"
	"math"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Key schema. Namespaces are escaped (0x00 → 0x00 0xff) and terminated by
// 0x00 0x01, which keeps keys ordered by namespace and makes the encoded
// namespace prefix-free: no namespace's keys are a prefix range of another's.
//
//	'd' ns typeByte valueBytes  → the document's exact BSON bytes
//	'n' ns counterName          → per-namespace counter (uint64 merge operand)
//	'c' counterName             → global counter (uint64 merge operand)
//	'm' "format"                → storeFormat
const (
	prefixDoc       = 'd'
	prefixNSCounter = 'n'
	prefixCounter   = 'c'
	prefixMeta      = 'm'
)

// storeFormat is written to a new store and checked on open.
const storeFormat = "testsink/1"

var keyFormat = []byte{prefixMeta, 'f', 'o', 'r', 'm', 'a', 't'}

func appendNS(dst []byte, ns string) []byte {
	for i := 0; i < len(ns); i++ {
		dst = append(dst, ns[i])
		if ns[i] == 0 {
			dst = append(dst, 0xff)
		}
	}
	return append(dst, 0x00, 0x01)
}

// decodeNS splits an escaped namespace off the front of b.
func decodeNS(b []byte) (ns string, rest []byte, err error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case 0xff:
			out = append(out, 0)
			i++
		case 0x01:
			return string(out), b[i+2:], nil
		default:
			return "", nil, fmt.Errorf("testsink: corrupt key %x", b)
		}
	}
	return "", nil, fmt.Errorf("testsink: corrupt key %x: unterminated namespace", b)
}

// docPrefix is the prefix of every document key of ns.
func docPrefix(ns string) []byte {
	return appendNS([]byte{prefixDoc}, ns)
}

// idKey is the canonical key part of an id: its BSON type byte and value
// bytes.
func idKey(id bson.RawValue) []byte {
	k := make([]byte, 0, 1+len(id.Value))
	k = append(k, byte(id.Type))
	return append(k, id.Value...)
}

func docKey(ns string, id bson.RawValue) []byte {
	p := docPrefix(ns)
	k := make([]byte, 0, len(p)+1+len(id.Value))
	k = append(k, p...)
	k = append(k, byte(id.Type))
	return append(k, id.Value...)
}

// idFromKey returns the id held in the id part of a document key.
func idFromKey(k []byte) bson.RawValue {
	if len(k) == 0 {
		return bson.RawValue{}
	}
	return bson.RawValue{Type: bson.Type(k[0]), Value: bytes.Clone(k[1:])}
}

// prefixEnd returns the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// docID returns the _id of doc.
func docID(doc bson.Raw) (bson.RawValue, error) {
	if err := doc.Validate(); err != nil {
		return bson.RawValue{}, fmt.Errorf("invalid BSON document: %w", err)
	}
	id, err := doc.LookupErr("_id")
	if err != nil {
		return bson.RawValue{}, fmt.Errorf("document has no _id")
	}
	return id, nil
}

// validID reports whether id is a complete BSON value.
func validID(id bson.RawValue) error {
	if id.Type == 0 {
		return fmt.Errorf("empty _id")
	}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("invalid _id: %w", err)
	}
	return nil
}

// IDString returns the canonical string of an id: its canonical Extended
// JSON, e.g. {"$numberInt":"1"} for int32 1 and "1" (with quotes) for the
// string "1". Two ids have the same IDString exactly when the store keeps
// them under the same key. It is the key of the map Store.Docs returns.
func IDString(id bson.RawValue) string {
	doc := make([]byte, 0, 4+1+4+len(id.Value)+1)
	doc = append(doc, 0, 0, 0, 0, byte(id.Type))
	doc = append(doc, "_id\x00"...)
	doc = append(doc, id.Value...)
	doc = append(doc, 0)
	n := len(doc)
	doc[0], doc[1], doc[2], doc[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	b, err := bson.MarshalExtJSON(bson.Raw(doc), true, false)
	if err != nil {
		return fmt.Sprintf("invalid:%x:%x", byte(id.Type), id.Value)
	}
	// {"_id":VALUE}
	return string(b[len(`{"_id":`) : len(b)-1])
}

// IDOf returns the IDString of a Go value as the BSON encoder marshals it:
// IDOf(int32(1)) is {"$numberInt":"1"}, IDOf("1") is "1" with quotes. It
// panics if v cannot be marshalled, like regexp.MustCompile.
func IDOf(v any) string {
	typ, val, err := bson.MarshalValue(v)
	if err != nil {
		panic(fmt.Sprintf("testsink.IDOf(%#v): %v", v, err))
	}
	return IDString(bson.RawValue{Type: typ, Value: val})
}

// plainID is how an id stringifies for Options.FatalIDs.
func plainID(id bson.RawValue) string {
	switch id.Type {
	case bson.TypeString:
		return id.StringValue()
	case bson.TypeInt32:
		return strconv.FormatInt(int64(id.Int32()), 10)
	case bson.TypeInt64:
		return strconv.FormatInt(id.Int64(), 10)
	case bson.TypeDouble:
		f := id.Double()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return IDString(id)
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	case bson.TypeObjectID:
		return id.ObjectID().Hex()
	}
	return IDString(id)
}
