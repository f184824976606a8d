package postgres

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// This file maps PostgreSQL values to BSON ("natural" values) and BSON
// values back to PostgreSQL text input ("sink text"). The two directions
// are paired: for every value whose natural BSON form is exact, sink text
// of that form reads back as the same value. Where it is not exact, the
// source adds the PostgreSQL text to the document's metadata field.

// appendNatural appends the natural BSON value of text (a value of type t
// in its PostgreSQL text form) and returns its BSON type and whether it is
// exact: whether sink text of the BSON value reads back in a column of
// type t as the same value.
func appendNatural(dst []byte, t *pgType, text []byte) ([]byte, bsoncore.Type, bool) {
	start := len(dst)
	switch t.kind {
	case kString:
		return appendBSONString(dst, text), bsoncore.TypeString, true
	case kInt32:
		if n, ok := parseInt(text); ok && n >= math.MinInt32 && n <= math.MaxInt32 {
			return bsoncore.AppendInt32(dst, int32(n)), bsoncore.TypeInt32, true
		}
	case kInt64:
		if n, ok := parseInt(text); ok {
			return bsoncore.AppendInt64(dst, n), bsoncore.TypeInt64, true
		}
	case kFloat4, kFloat8:
		bitSize := 64
		if t.kind == kFloat4 {
			bitSize = 32
		}
		if f, ok := parseFloat(text, bitSize); ok {
			return bsoncore.AppendDouble(dst, f), bsoncore.TypeDouble, true
		}
	case kBool:
		switch string(text) {
		case "t":
			return bsoncore.AppendBoolean(dst, true), bsoncore.TypeBoolean, true
		case "f":
			return bsoncore.AppendBoolean(dst, false), bsoncore.TypeBoolean, true
		}
	case kNumeric:
		if h, l, exact, ok := parseNumeric(text); ok {
			return bsoncore.AppendDecimal128(dst, h, l), bsoncore.TypeDecimal128, exact
		}
	case kBytea:
		if b, ok := parseBytea(text); ok {
			return bsoncore.AppendBinary(dst, 0, b), bsoncore.TypeBinary, true
		}
	case kUUID:
		if b, ok := parseUUID(text); ok {
			return bsoncore.AppendBinary(dst, 4, b), bsoncore.TypeBinary, true
		}
	case kDate:
		if us, ok := parseDate(text); ok {
			return bsoncore.AppendDateTime(dst, us/1000), bsoncore.TypeDateTime, true
		}
	case kTimestamp, kTimestamptz:
		if us, ok := parseTimestamp(text); ok {
			return bsoncore.AppendDateTime(dst, floorDiv(us, 1000)), bsoncore.TypeDateTime, us%1000 == 0
		}
	case kJSON, kJSONB:
		var ok bool
		var typ bsoncore.Type
		if dst, typ, ok = appendJSONValue(dst, text); ok {
			return dst, typ, sinkTextEquals(dst[start:], typ, t, text)
		}
		dst = dst[:start]
	case kArray:
		if node, ok := parseArray(text, t.elem.delim); ok {
			dst = appendArrayNode(dst, node, t.elem)
			return dst, bsoncore.TypeArray, sinkTextEquals(dst[start:], bsoncore.TypeArray, t, text)
		}
	}
	// Text the parser does not expect (infinity, a type mapped wrongly):
	// a string is always exact.
	return appendBSONString(dst[:start], text), bsoncore.TypeString, true
}

// sinkTextEquals reports whether sink text of a BSON value is text.
func sinkTextEquals(val []byte, typ bsoncore.Type, t *pgType, text []byte) bool {
	var scratch [256]byte
	out, null, err := appendSinkText(scratch[:0], bson.RawValue{Type: bson.Type(typ), Value: val}, t)
	return err == nil && !null && bytes.Equal(out, text)
}

func appendArrayNode(dst []byte, n arrayNode, elem *pgType) []byte {
	idx, dst := bsoncore.AppendArrayStart(dst)
	var key [20]byte
	for i, item := range n.items {
		k := strconv.AppendInt(key[:0], int64(i), 10)
		h := len(dst)
		dst = append(dst, 0)
		dst = append(dst, k...)
		dst = append(dst, 0)
		var typ bsoncore.Type
		switch {
		case item.null:
			typ = bsoncore.TypeNull
		case item.sub:
			dst = appendArrayNode(dst, item, elem)
			typ = bsoncore.TypeArray
		default:
			dst, typ, _ = appendNatural(dst, elem, item.text)
		}
		dst[h] = byte(typ)
	}
	dst, _ = bsoncore.AppendArrayEnd(dst, idx)
	return dst
}

func appendBSONString(dst, s []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)+1))
	dst = append(dst, s...)
	return append(dst, 0)
}

// appendKeyValue appends the BSON value of a primary-key column for _id.
// Keys must be exact and of one BSON type per column type where possible:
// integers, floats, booleans, text types, uuid and bytea map naturally,
// numeric to Decimal128 when exact and date to a BSON date when finite;
// every other type (timestamps among them) becomes its text form.
func appendKeyValue(dst []byte, t *pgType, text []byte) ([]byte, bsoncore.Type) {
	switch t.kind {
	case kInt32, kInt64, kFloat4, kFloat8, kBool, kString, kBytea, kUUID, kNumeric, kDate:
		start := len(dst)
		out, typ, exact := appendNatural(dst, t, text)
		if exact {
			return out, typ
		}
		dst = out[:start]
	}
	return appendBSONString(dst, text), bsoncore.TypeString
}

// appendKeyText appends the text input of one _id part for a key column:
// a string is the text form itself, anything else is converted like a
// column value.
func appendKeyText(dst []byte, v bson.RawValue, t *pgType) ([]byte, error) {
	if v.Type == bson.TypeString {
		s, _ := v.StringValueOK()
		return append(dst, s...), nil
	}
	out, null, err := appendSinkText(dst, v, t)
	if err == nil && null {
		err = fmt.Errorf("a key cannot be null")
	}
	return out, err
}

// typeError reports a BSON value that cannot be stored in a column type.
type typeError struct {
	bsonType bson.Type
	pgType   string
	detail   string
}

func (e *typeError) Error() string {
	s := fmt.Sprintf("a BSON %s cannot be stored in a column of type %s", bsonTypeName(e.bsonType), e.pgType)
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

func bsonTypeName(t bson.Type) string {
	switch t {
	case bson.TypeEmbeddedDocument:
		return "document"
	case bson.TypeDateTime:
		return "date"
	case bson.TypeObjectID:
		return "ObjectId"
	}
	return t.String()
}

// appendSinkText appends the PostgreSQL text input of v for a column of
// type t; null reports SQL NULL. For types the source maps exactly, the
// text is what the server prints for the value, so that a natural value
// can be compared with the source text.
func appendSinkText(dst []byte, v bson.RawValue, t *pgType) ([]byte, bool, error) {
	if v.Type == bson.TypeNull || v.Type == bson.TypeUndefined {
		return dst, true, nil
	}
	switch t.kind {
	case kJSON, kJSONB:
		out, err := appendJSON(dst, v, false)
		return out, false, err
	case kArray:
		switch v.Type {
		case bson.TypeArray:
			arr, _ := v.ArrayOK()
			out, err := appendArrayLiteral(dst, arr, t.elem)
			return out, false, err
		case bson.TypeString:
			s, _ := v.StringValueOK()
			return append(dst, s...), false, nil
		}
		return dst, false, &typeError{bsonType: v.Type, pgType: t.name}
	}
	switch v.Type {
	case bson.TypeString:
		s, _ := v.StringValueOK()
		return append(dst, s...), false, nil
	case bson.TypeInt32:
		i, _ := v.Int32OK()
		return strconv.AppendInt(dst, int64(i), 10), false, nil
	case bson.TypeInt64:
		i, _ := v.Int64OK()
		return strconv.AppendInt(dst, i, 10), false, nil
	case bson.TypeDouble:
		f, _ := v.DoubleOK()
		switch t.kind {
		case kFloat4:
			return appendPGFloat(dst, f, 32), false, nil
		case kNumeric, kInt32, kInt64:
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return appendPGFloat(dst, f, 64), false, nil
			}
			return strconv.AppendFloat(dst, f, 'f', -1, 64), false, nil
		}
		return appendPGFloat(dst, f, 64), false, nil
	case bson.TypeBoolean:
		b, _ := v.BooleanOK()
		if b {
			return append(dst, "true"...), false, nil
		}
		return append(dst, "false"...), false, nil
	case bson.TypeDecimal128:
		d, _ := v.Decimal128OK()
		h, l := d.GetBytes()
		out, ok := appendDecimalPlain(dst, h, l)
		if !ok {
			return dst, false, &typeError{bsonType: v.Type, pgType: t.name, detail: "unreadable Decimal128"}
		}
		return out, false, nil
	case bson.TypeDateTime:
		ms, _ := v.DateTimeOK()
		switch t.kind {
		case kDate:
			if ms%(24*3600*1000) == 0 {
				return appendDate(dst, ms), false, nil
			}
			return appendTimestamp(dst, ms, true), false, nil
		case kTimestamp:
			return appendTimestamp(dst, ms, false), false, nil
		}
		return appendTimestamp(dst, ms, true), false, nil
	case bson.TypeBinary:
		sub, data, _ := v.BinaryOK()
		switch {
		case t.kind == kBytea:
			return appendBytea(dst, data), false, nil
		case (sub == 4 || sub == 3) && len(data) == 16:
			return appendUUID(dst, data), false, nil
		}
		return dst, false, &typeError{bsonType: v.Type, pgType: t.name, detail: fmt.Sprintf("binary subtype %d of %d bytes is neither bytea nor a UUID", sub, len(data))}
	case bson.TypeObjectID:
		oid, _ := v.ObjectIDOK()
		return append(dst, oid.Hex()...), false, nil
	}
	return dst, false, &typeError{bsonType: v.Type, pgType: t.name}
}

// appendArrayLiteral appends a BSON array as an array literal of element
// type elem; nested arrays become further dimensions.
func appendArrayLiteral(dst []byte, arr bson.RawArray, elem *pgType) ([]byte, error) {
	vals, err := arr.Values()
	if err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	var scratch []byte
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, elem.delim)
		}
		if v.Type == bson.TypeArray && elem.kind != kJSON && elem.kind != kJSONB {
			// A nested array is another dimension, except in arrays of
			// JSON, whose elements are more often JSON arrays.
			sub, _ := v.ArrayOK()
			if dst, err = appendArrayLiteral(dst, sub, elem); err != nil {
				return dst, err
			}
			continue
		}
		var null bool
		scratch, null, err = appendSinkText(scratch[:0], v, elem)
		if err != nil {
			return dst, err
		}
		if null {
			dst = append(dst, "NULL"...)
			continue
		}
		dst = appendArrayElem(dst, scratch, elem.delim)
	}
	return append(dst, '}'), nil
}

// JSON

// appendJSONValue parses JSON text into its natural BSON value: objects
// become documents (keys in text order), arrays arrays, integers int32 or
// int64 when they fit, other numbers doubles.
func appendJSONValue(dst, text []byte) ([]byte, bsoncore.Type, bool) {
	p := jsonParser{b: text}
	p.space()
	out, typ, ok := p.value(dst, 0)
	if !ok {
		return dst, 0, false
	}
	p.space()
	return out, typ, p.i == len(p.b)
}

// jsonParser reads JSON straight into BSON.
type jsonParser struct {
	b []byte
	i int
}

const maxJSONDepth = 200

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(dst []byte, depth int) ([]byte, bsoncore.Type, bool) {
	if p.i >= len(p.b) || depth > maxJSONDepth {
		return dst, 0, false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		p.i++
		idx, dst := bsoncore.AppendDocumentStart(dst)
		p.space()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
			return dst, bsoncore.TypeEmbeddedDocument, true
		}
		for {
			p.space()
			h := len(dst)
			dst = append(dst, 0)
			var ok bool
			if dst, ok = p.str(dst, true); !ok {
				return dst, 0, false
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return dst, 0, false
			}
			p.i++
			p.space()
			var typ bsoncore.Type
			if dst, typ, ok = p.value(dst, depth+1); !ok {
				return dst, 0, false
			}
			dst[h] = byte(typ)
			p.space()
			if p.i >= len(p.b) {
				return dst, 0, false
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] != '}' {
				return dst, 0, false
			}
			p.i++
			dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
			return dst, bsoncore.TypeEmbeddedDocument, true
		}
	case c == '[':
		p.i++
		idx, dst := bsoncore.AppendArrayStart(dst)
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			dst, _ = bsoncore.AppendArrayEnd(dst, idx)
			return dst, bsoncore.TypeArray, true
		}
		for n := 0; ; n++ {
			p.space()
			h := len(dst)
			dst = append(dst, 0)
			dst = append(strconv.AppendInt(dst, int64(n), 10), 0)
			var typ bsoncore.Type
			var ok bool
			if dst, typ, ok = p.value(dst, depth+1); !ok {
				return dst, 0, false
			}
			dst[h] = byte(typ)
			p.space()
			if p.i >= len(p.b) {
				return dst, 0, false
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] != ']' {
				return dst, 0, false
			}
			p.i++
			dst, _ = bsoncore.AppendArrayEnd(dst, idx)
			return dst, bsoncore.TypeArray, true
		}
	case c == '"':
		lenAt := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		var ok bool
		if dst, ok = p.str(dst, false); !ok {
			return dst, 0, false
		}
		binary.LittleEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
		return dst, bsoncore.TypeString, true
	case c == 't' && bytes.HasPrefix(p.b[p.i:], []byte("true")):
		p.i += 4
		return bsoncore.AppendBoolean(dst, true), bsoncore.TypeBoolean, true
	case c == 'f' && bytes.HasPrefix(p.b[p.i:], []byte("false")):
		p.i += 5
		return bsoncore.AppendBoolean(dst, false), bsoncore.TypeBoolean, true
	case c == 'n' && bytes.HasPrefix(p.b[p.i:], []byte("null")):
		p.i += 4
		return dst, bsoncore.TypeNull, true
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		integer := true
		for p.i < len(p.b) {
			switch d := p.b[p.i]; {
			case d >= '0' && d <= '9', d == '-', d == '+':
			case d == '.', d == 'e', d == 'E':
				integer = false
			default:
				goto done
			}
			p.i++
		}
	done:
		num := p.b[start:p.i]
		if integer {
			if n, ok := parseInt(num); ok {
				if n >= math.MinInt32 && n <= math.MaxInt32 {
					return bsoncore.AppendInt32(dst, int32(n)), bsoncore.TypeInt32, true
				}
				return bsoncore.AppendInt64(dst, n), bsoncore.TypeInt64, true
			}
		}
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil && !math.IsInf(f, 0) {
			return dst, 0, false
		}
		return bsoncore.AppendDouble(dst, f), bsoncore.TypeDouble, true
	}
	return dst, 0, false
}

// str reads a JSON string and appends its UTF-8 bytes and a NUL; a key
// (BSON cstring) may not contain NUL.
func (p *jsonParser) str(dst []byte, key bool) ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return dst, false
	}
	p.i++
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return append(dst, 0), true
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return dst, false
			}
			e := p.b[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return dst, false
				}
				if utf16.IsSurrogate(r) {
					if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
						p.i += 2
						r2, ok := p.hex4()
						if !ok {
							return dst, false
						}
						r = utf16.DecodeRune(r, r2)
					} else {
						r = utf8.RuneError
					}
				}
				if r == 0 && key {
					return dst, false
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return dst, false
			}
		default:
			if c == 0 && key {
				return dst, false
			}
			dst = append(dst, c)
			p.i++
		}
	}
	return dst, false
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// appendJSON appends v as JSON in the layout jsonb prints (", " and ": "
// separators). JSON types map to themselves; doubles print in fixed
// notation, integral ones with ".0" so that they read back as doubles.
// Other BSON types use MongoDB Extended JSON v2 wrappers ({"$date": ...}).
// typed additionally keeps every BSON type exactly, for document tables:
// int64 as {"$numberLong": "n"}, Decimal128 as {"$numberDecimal": "d"} and
// non-finite or negative-zero doubles as {"$numberDouble": "..."}.
func appendJSON(dst []byte, v bson.RawValue, typed bool) ([]byte, error) {
	switch v.Type {
	case bson.TypeNull:
		return append(dst, "null"...), nil
	case bson.TypeBoolean:
		if b, _ := v.BooleanOK(); b {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case bson.TypeString:
		s, _ := v.StringValueOK()
		return appendJSONString(dst, s), nil
	case bson.TypeInt32:
		i, _ := v.Int32OK()
		return strconv.AppendInt(dst, int64(i), 10), nil
	case bson.TypeInt64:
		i, _ := v.Int64OK()
		if typed {
			dst = append(dst, `{"$numberLong": "`...)
			dst = strconv.AppendInt(dst, i, 10)
			return append(dst, `"}`...), nil
		}
		return strconv.AppendInt(dst, i, 10), nil
	case bson.TypeDouble:
		f, _ := v.DoubleOK()
		special := ""
		switch {
		case math.IsNaN(f):
			special = "NaN"
		case math.IsInf(f, 1):
			special = "Infinity"
		case math.IsInf(f, -1):
			special = "-Infinity"
		case f == 0 && math.Signbit(f) && typed:
			special = "-0.0"
		}
		if special != "" {
			return append(append(append(dst, `{"$numberDouble": "`...), special...), `"}`...), nil
		}
		dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
		if f == math.Trunc(f) {
			dst = append(dst, ".0"...)
		}
		return dst, nil
	case bson.TypeDecimal128:
		d, _ := v.Decimal128OK()
		h, l := d.GetBytes()
		if typed || d.IsNaN() || d.IsInf() != 0 {
			return append(append(append(dst, `{"$numberDecimal": "`...), d.String()...), `"}`...), nil
		}
		out, _ := appendDecimalPlain(dst, h, l)
		return out, nil
	case bson.TypeEmbeddedDocument:
		doc, _ := v.DocumentOK()
		elems, err := doc.Elements()
		if err != nil {
			return dst, err
		}
		dst = append(dst, '{')
		for i, e := range elems {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendJSONString(dst, e.Key())
			dst = append(dst, ": "...)
			if dst, err = appendJSON(dst, e.Value(), typed); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case bson.TypeArray:
		arr, _ := v.ArrayOK()
		vals, err := arr.Values()
		if err != nil {
			return dst, err
		}
		dst = append(dst, '[')
		for i, e := range vals {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			if dst, err = appendJSON(dst, e, typed); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case bson.TypeDateTime:
		ms, _ := v.DateTimeOK()
		t := time.UnixMilli(ms).UTC()
		if t.Year() >= 1970 && t.Year() <= 9999 {
			dst = append(dst, `{"$date": "`...)
			dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000Z")
			return append(dst, `"}`...), nil
		}
		dst = append(dst, `{"$date": {"$numberLong": "`...)
		dst = strconv.AppendInt(dst, ms, 10)
		return append(dst, `"}}`...), nil
	case bson.TypeObjectID:
		oid, _ := v.ObjectIDOK()
		return append(append(append(dst, `{"$oid": "`...), oid.Hex()...), `"}`...), nil
	case bson.TypeBinary:
		sub, data, _ := v.BinaryOK()
		dst = append(dst, `{"$binary": {"base64": "`...)
		dst = base64.StdEncoding.AppendEncode(dst, data)
		dst = append(dst, `", "subType": "`...)
		dst = append(dst, fmt.Sprintf("%02x", sub)...)
		return append(dst, `"}}`...), nil
	}
	// Rare types: canonical Extended JSON from the driver.
	b, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, true, false)
	if err != nil {
		return dst, err
	}
	// {"v":<value>}
	if len(b) < 6 {
		return dst, fmt.Errorf("cannot encode BSON %s as JSON", v.Type)
	}
	return append(dst, b[5:len(b)-1]...), nil
}

// appendJSONString appends s quoted and escaped as PostgreSQL's json
// output escapes it.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, fmt.Sprintf(`\u%04x`, c)...)
				continue
			}
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
