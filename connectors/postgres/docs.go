package postgres

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// MetaField is the reserved field of a document that holds, for each
// column whose natural BSON value is not exact, the PostgreSQL text of the
// value: {"_dsync_pg": {"created": "2024-05-01 10:00:00.123456+00"}}. The
// postgres sink reads a column from there in preference to the field; other
// sinks store it as an ordinary field. It is absent when every value is
// exact, and never added with lossless=false.
const MetaField = "_dsync_pg"

// rowVal is one column value of a row in text form.
type rowVal struct {
	text      []byte
	null      bool
	unchanged bool // an unchanged TOAST value that logical replication did not send
	set       bool // the value is known (the column was read)
}

func rawValue(typ bsoncore.Type, val []byte) bson.RawValue {
	return bson.RawValue{Type: bson.Type(typ), Value: val}
}

// appendDoc appends the document of a row; vals are indexed like t.cols.
func (t *table) appendDoc(dst []byte, vals []rowVal, lossless bool) ([]byte, error) {
	if t.docTable {
		return t.appendDocTableDoc(dst, vals)
	}
	idx, dst := bsoncore.AppendDocumentStart(dst)
	var err error
	if dst, err = t.appendID(dst, "_id", vals); err != nil {
		return dst, err
	}
	var inexact []int
	for _, i := range t.src {
		c := &t.cols[i]
		if c.isKey {
			continue
		}
		v := vals[i]
		if v.null || !v.set {
			dst = bsoncore.AppendNullElement(dst, c.name)
			continue
		}
		h := len(dst)
		dst = bsoncore.AppendHeader(dst, bsoncore.TypeNull, c.name)
		var typ bsoncore.Type
		var exact bool
		dst, typ, exact = appendNatural(dst, c.typ, v.text)
		dst[h] = byte(typ)
		if !exact {
			inexact = append(inexact, i)
		}
	}
	if lossless && len(inexact) > 0 {
		var midx int32
		midx, dst = bsoncore.AppendDocumentElementStart(dst, MetaField)
		for _, i := range inexact {
			dst = bsoncore.AppendHeader(dst, bsoncore.TypeString, t.cols[i].name)
			dst = appendBSONString(dst, vals[i].text)
		}
		dst, _ = bsoncore.AppendDocumentEnd(dst, midx)
	}
	return bsoncore.AppendDocumentEnd(dst, idx)
}

// appendID appends the _id element of a row under key: the primary key
// value, an embedded document of the key columns in key order for a
// composite key, or for a table without a primary key the MD5 of the
// row's text (see recordText).
func (t *table) appendID(dst []byte, key string, vals []rowVal) ([]byte, error) {
	switch {
	case t.hashID():
		sum := md5.Sum(t.recordText(nil, vals))
		var hx [32]byte
		hex.Encode(hx[:], sum[:])
		dst = bsoncore.AppendHeader(dst, bsoncore.TypeString, key)
		return appendBSONString(dst, hx[:]), nil
	case len(t.pk) == 1:
		c := &t.cols[t.pk[0]]
		v := vals[t.pk[0]]
		if v.null || !v.set || v.unchanged {
			return dst, fmt.Errorf("table %s: primary key column %s has no value", t, c.name)
		}
		h := len(dst)
		dst = bsoncore.AppendHeader(dst, bsoncore.TypeNull, key)
		var typ bsoncore.Type
		dst, typ = appendKeyValue(dst, c.typ, v.text)
		dst[h] = byte(typ)
		return dst, nil
	}
	idx, dst := bsoncore.AppendDocumentElementStart(dst, key)
	for _, i := range t.pk {
		c := &t.cols[i]
		v := vals[i]
		if v.null || !v.set || v.unchanged {
			return dst, fmt.Errorf("table %s: primary key column %s has no value", t, c.name)
		}
		h := len(dst)
		dst = bsoncore.AppendHeader(dst, bsoncore.TypeNull, c.name)
		var typ bsoncore.Type
		dst, typ = appendKeyValue(dst, c.typ, v.text)
		dst[h] = byte(typ)
	}
	return bsoncore.AppendDocumentEnd(dst, idx)
}

// idOf returns the _id value of a row.
func (t *table) idOf(vals []rowVal) (bson.RawValue, error) {
	if t.docTable {
		doc, err := t.appendDocTableDoc(nil, vals)
		if err != nil {
			return bson.RawValue{}, err
		}
		return bson.Raw(doc).LookupErr("_id")
	}
	doc := []byte{0, 0, 0, 0}
	doc, err := t.appendID(doc, "_id", vals)
	if err != nil {
		return bson.RawValue{}, err
	}
	doc = append(doc, 0)
	bsoncore.UpdateLength(doc, 0, int32(len(doc)))
	return bson.Raw(doc).LookupErr("_id")
}

// recordText appends the text form of the row over the source columns,
// as ROW(c1, c2, ...)::text prints it (record_out).
func (t *table) recordText(dst []byte, vals []rowVal) []byte {
	dst = append(dst, '(')
	for k, i := range t.src {
		if k > 0 {
			dst = append(dst, ',')
		}
		v := vals[i]
		if v.null || !v.set {
			continue
		}
		quote := len(v.text) == 0
		for _, c := range v.text {
			switch c {
			case '"', '\\', '(', ')', ',', ' ', '\t', '\n', '\r', '\v', '\f':
				quote = true
			}
		}
		if quote {
			dst = append(dst, '"')
		}
		for _, c := range v.text {
			if c == '"' || c == '\\' {
				dst = append(dst, c)
			}
			dst = append(dst, c)
		}
		if quote {
			dst = append(dst, '"')
		}
	}
	return append(dst, ')')
}

// appendDocTableDoc returns the document stored in a document table row:
// the doc column's Extended JSON, with _id from the _id column when the
// document has none.
func (t *table) appendDocTableDoc(dst []byte, vals []rowVal) ([]byte, error) {
	idCol, docCol := t.pk[0], 1-t.pk[0]
	dv := vals[docCol]
	if dv.null || !dv.set {
		return dst, fmt.Errorf("document table %s: doc is null", t)
	}
	doc, err := parseEJSON(dv.text)
	if err != nil {
		return dst, fmt.Errorf("document table %s: %w", t, err)
	}
	if _, err := doc.LookupErr("_id"); err == nil {
		return append(dst, doc...), nil
	}
	iv := vals[idCol]
	if iv.null || !iv.set {
		return dst, fmt.Errorf("document table %s: _id is null", t)
	}
	idx, dst := bsoncore.AppendDocumentStart(dst)
	h := len(dst)
	dst = bsoncore.AppendHeader(dst, bsoncore.TypeNull, "_id")
	var typ bsoncore.Type
	if c := t.cols[idCol]; c.typ.kind == kJSONB {
		v, err := parseEJSONValue(iv.text)
		if err != nil {
			return dst, fmt.Errorf("document table %s: _id: %w", t, err)
		}
		typ = bsoncore.Type(v.Type)
		dst = append(dst, v.Value...)
	} else {
		dst, typ = appendKeyValue(dst, c.typ, iv.text)
	}
	dst[h] = byte(typ)
	elems, _ := doc.Elements()
	for _, e := range elems {
		dst = append(dst, e...)
	}
	return bsoncore.AppendDocumentEnd(dst, idx)
}

// parseEJSON reads a document written by appendJSON(typed) (or any
// Extended JSON document).
func parseEJSON(text []byte) (bson.Raw, error) {
	var d bson.D
	if err := bson.UnmarshalExtJSON(text, false, &d); err != nil {
		return nil, fmt.Errorf("read Extended JSON document: %w", err)
	}
	return bson.Marshal(d)
}

// parseEJSONValue reads one Extended JSON value.
func parseEJSONValue(text []byte) (bson.RawValue, error) {
	wrapped := make([]byte, 0, len(text)+8)
	wrapped = append(wrapped, `{"v": `...)
	wrapped = append(wrapped, text...)
	wrapped = append(wrapped, '}')
	doc, err := parseEJSON(wrapped)
	if err != nil {
		return bson.RawValue{}, err
	}
	return doc.LookupErr("v")
}
