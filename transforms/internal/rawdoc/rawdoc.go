// Package rawdoc reads and edits raw BSON documents by dotted path for the
// built-in transforms. Unchanged parts of a document keep their exact bytes
// and their order.
//
// [Lookup], [Set] and [Remove] descend through embedded documents only, as
// MongoDB's $rename does; [Rewrite] can also descend into the documents held
// by arrays, as MongoDB projections do.
package rawdoc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/dsyncio/dsync/transforms/internal/fieldpath"
)

// Builder builds a document or an array, element by element.
type Builder struct{ buf []byte }

// NewBuilder returns a builder with room for about size bytes.
func NewBuilder(size int) *Builder { return &Builder{buf: make([]byte, 4, max(size, 5))} }

// Append appends key: v.
func (b *Builder) Append(key string, v bson.RawValue) {
	b.buf = append(b.buf, byte(v.Type))
	b.buf = append(b.buf, key...)
	b.buf = append(b.buf, 0)
	b.buf = append(b.buf, v.Value...)
}

// AppendKey appends key: v, with key as bytes.
func (b *Builder) AppendKey(key []byte, v bson.RawValue) {
	b.buf = append(b.buf, byte(v.Type))
	b.buf = append(b.buf, key...)
	b.buf = append(b.buf, 0)
	b.buf = append(b.buf, v.Value...)
}

// AppendElement appends an element as is.
func (b *Builder) AppendElement(e bson.RawElement) { b.buf = append(b.buf, e...) }

// Build returns the document. The builder must not be used afterwards.
func (b *Builder) Build() bson.Raw {
	b.buf = append(b.buf, 0)
	binary.LittleEndian.PutUint32(b.buf, uint32(len(b.buf)))
	return bson.Raw(b.buf)
}

// Empty is the empty document.
func Empty() bson.Raw { return bson.Raw{5, 0, 0, 0, 0} }

// DocValue wraps a document as a value.
func DocValue(d bson.Raw) bson.RawValue {
	return bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: d}
}

// ArrayValue wraps an array built with a Builder (keys "0", "1", ...).
func ArrayValue(a bson.Raw) bson.RawValue { return bson.RawValue{Type: bson.TypeArray, Value: a} }

// String returns a string value.
func String(s string) bson.RawValue {
	v := binary.LittleEndian.AppendUint32(nil, uint32(len(s)+1))
	v = append(append(v, s...), 0)
	return bson.RawValue{Type: bson.TypeString, Value: v}
}

// Null returns the null value.
func Null() bson.RawValue { return bson.RawValue{Type: bson.TypeNull} }

// DateTime returns a UTC datetime value, in milliseconds since the epoch.
func DateTime(ms int64) bson.RawValue {
	return bson.RawValue{Type: bson.TypeDateTime, Value: binary.LittleEndian.AppendUint64(nil, uint64(ms))}
}

// ID returns the _id of doc.
func ID(doc bson.Raw) (bson.RawValue, bool) {
	v, err := doc.LookupErr("_id")
	return v, err == nil
}

// NotDocumentError reports a value on the way to a path that is not a
// document, so the path cannot be created.
type NotDocumentError struct {
	// Path is the path of the value.
	Path fieldpath.Path
	// Type is its BSON type.
	Type bson.Type
}

func (e *NotDocumentError) Error() string {
	return fmt.Sprintf("%q is of type %s, not a document", e.Path.String(), e.Type)
}

// ErrInvalidDocument is returned for bytes that are not a BSON document.
var ErrInvalidDocument = errors.New("rawdoc: invalid BSON document")

// Each calls fn for each element of doc, in order, without copying: key
// and e are the element's name and bytes, v its value. It stops at the
// first error of fn, and fails with ErrInvalidDocument on malformed bytes
// (the values inside are not checked).
func Each(doc []byte, fn func(key []byte, e bson.RawElement, v bson.RawValue) error) error {
	if len(doc) < 5 {
		return ErrInvalidDocument
	}
	n := int(binary.LittleEndian.Uint32(doc))
	if n < 5 || n > len(doc) || doc[n-1] != 0 {
		return ErrInvalidDocument
	}
	rem := doc[4 : n-1]
	for len(rem) > 0 {
		el, r, ok := bsoncore.ReadElement(rem)
		if !ok {
			return ErrInvalidDocument
		}
		key := el.KeyBytes()
		v := bson.RawValue{Type: bson.Type(el[0]), Value: el[len(key)+2:]}
		if err := fn(key, bson.RawElement(el), v); err != nil {
			return err
		}
		rem = r
	}
	return nil
}

// Lookup returns the value at p, descending through embedded documents.
func Lookup(doc bson.Raw, p fieldpath.Path) (bson.RawValue, bool) {
	cur := doc
	for i, seg := range p {
		v, err := cur.LookupErr(seg)
		if err != nil {
			return bson.RawValue{}, false
		}
		if i == len(p)-1 {
			return v, true
		}
		sub, ok := v.DocumentOK()
		if !ok {
			return bson.RawValue{}, false
		}
		cur = sub
	}
	return bson.RawValue{}, false
}

// Position says where [Set] adds a field its parent does not have.
type Position int

const (
	// Last adds the field after the others.
	Last Position = iota
	// First adds the field before the others; at the top level, right
	// after _id.
	First
)

// Set returns doc with v at p. An existing field keeps its place; a missing
// one is added at pos in its parent, and missing parents are created the
// same way. A value on the way that is not a document fails with a
// *NotDocumentError.
func Set(doc bson.Raw, p fieldpath.Path, v bson.RawValue, pos Position) (bson.Raw, error) {
	return set(doc, p, 0, v, pos)
}

func set(doc bson.Raw, p fieldpath.Path, depth int, v bson.RawValue, pos Position) (bson.Raw, error) {
	key := p[depth]
	last := depth == len(p)-1
	found, n, firstIsID := -1, 0, false
	var cur bson.RawValue
	err := Each(doc, func(k []byte, _ bson.RawElement, ev bson.RawValue) error {
		if n == 0 {
			firstIsID = string(k) == "_id"
		}
		if found < 0 && string(k) == key {
			found, cur = n, ev
		}
		n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	nv := v
	if !last {
		sub := Empty()
		if found >= 0 {
			var ok bool
			if sub, ok = cur.DocumentOK(); !ok {
				return nil, &NotDocumentError{Path: p[:depth+1], Type: cur.Type}
			}
		}
		sub, err := set(sub, p, depth+1, v, pos)
		if err != nil {
			return nil, err
		}
		nv = DocValue(sub)
	}
	b := NewBuilder(len(doc) + len(key) + len(nv.Value) + 2)
	at := -1 // index of the element after which a new field goes; -1: first
	if found < 0 {
		switch {
		case pos == Last:
			at = n - 1
		case depth == 0 && firstIsID:
			at = 0
		}
		if at < 0 {
			b.Append(key, nv)
		}
	}
	i := 0
	_ = Each(doc, func(_ []byte, e bson.RawElement, _ bson.RawValue) error {
		if i == found {
			b.Append(key, nv)
		} else {
			b.AppendElement(e)
		}
		if found < 0 && i == at {
			b.Append(key, nv)
		}
		i++
		return nil
	})
	return b.Build(), nil
}

// Remove returns doc without the field at p and the value removed, if any.
func Remove(doc bson.Raw, p fieldpath.Path) (bson.Raw, bson.RawValue, bool, error) {
	found := -1
	var cur bson.RawValue
	i := 0
	err := Each(doc, func(k []byte, _ bson.RawElement, v bson.RawValue) error {
		if found < 0 && string(k) == p[0] {
			found, cur = i, v
		}
		i++
		return nil
	})
	if err != nil || found < 0 {
		return doc, bson.RawValue{}, false, err
	}
	removed := cur
	var nv bson.RawValue
	if len(p) > 1 {
		sub, ok := cur.DocumentOK()
		if !ok {
			return doc, bson.RawValue{}, false, nil
		}
		sub, r, ok, err := Remove(sub, p[1:])
		if err != nil || !ok {
			return doc, bson.RawValue{}, false, err
		}
		nv, removed = DocValue(sub), r
	}
	b := NewBuilder(len(doc))
	i = 0
	_ = Each(doc, func(k []byte, e bson.RawElement, _ bson.RawValue) error {
		switch {
		case i != found:
			b.AppendElement(e)
		case len(p) > 1:
			b.AppendKey(k, nv)
		}
		i++
		return nil
	})
	return b.Build(), removed, true, nil
}

// Rewrite rewrites the values that a tree of paths selects, in one pass
// over a document.
type Rewrite[T any] struct {
	// Leaf returns the new value of v, found at the path of leaf; keep
	// false removes it.
	Leaf func(leaf *fieldpath.Tree[T], v bson.RawValue) (nv bson.RawValue, keep bool, err error)
	// KeepOthers keeps the values on no path of the tree; otherwise they
	// are removed (a projection that keeps only the tree's paths). Removed
	// elements of arrays renumber the others.
	KeepOthers bool
	// Arrays applies the rest of a path to every document in an array met
	// on the way; otherwise an array is like any other value that is not a
	// document.
	Arrays bool
}

// Doc rewrites doc, whose paths are relative to t.
func (r *Rewrite[T]) Doc(doc bson.Raw, t *fieldpath.Tree[T]) (bson.Raw, error) {
	b := NewBuilder(len(doc))
	err := Each(doc, func(key []byte, e bson.RawElement, v bson.RawValue) error {
		c := t.Children[string(key)]
		if c == nil {
			if r.KeepOthers {
				b.AppendElement(e)
			}
			return nil
		}
		var nv bson.RawValue
		var keep bool
		var err error
		if c.Leaf {
			nv, keep, err = r.Leaf(c, v)
		} else {
			nv, keep, err = r.Value(v, c)
		}
		if err != nil {
			return err
		}
		if keep {
			b.AppendKey(key, nv)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b.Build(), nil
}

// Value rewrites v, a value at the inner node t: a document is rewritten,
// so is each document of an array with Arrays; other values are kept with
// KeepOthers, else removed (keep false).
func (r *Rewrite[T]) Value(v bson.RawValue, t *fieldpath.Tree[T]) (bson.RawValue, bool, error) {
	switch {
	case v.Type == bson.TypeEmbeddedDocument:
		d, err := r.Doc(v.Value, t)
		if err != nil {
			return bson.RawValue{}, false, err
		}
		return DocValue(d), true, nil
	case v.Type == bson.TypeArray && r.Arrays:
		b := NewBuilder(len(v.Value))
		n := 0
		err := Each(v.Value, func(key []byte, e bson.RawElement, ev bson.RawValue) error {
			if ev.Type == bson.TypeEmbeddedDocument {
				d, err := r.Doc(ev.Value, t)
				if err != nil {
					return err
				}
				ev = DocValue(d)
			} else if !r.KeepOthers {
				return nil
			}
			if r.KeepOthers {
				b.AppendKey(key, ev) // nothing removed: the index is the key
			} else {
				b.Append(strconv.Itoa(n), ev)
			}
			n++
			return nil
		})
		if err != nil {
			return bson.RawValue{}, false, err
		}
		return ArrayValue(b.Build()), true, nil
	}
	return v, r.KeepOthers, nil
}

// MapLeaves returns v with fn applied to every value inside it that is
// neither a document nor an array (v itself when it is neither), keeping
// the shape of documents and arrays.
func MapLeaves(v bson.RawValue, fn func(bson.RawValue) bson.RawValue) (bson.RawValue, error) {
	if v.Type != bson.TypeEmbeddedDocument && v.Type != bson.TypeArray {
		return fn(v), nil
	}
	b := NewBuilder(len(v.Value))
	err := Each(v.Value, func(key []byte, _ bson.RawElement, ev bson.RawValue) error {
		nv, err := MapLeaves(ev, fn)
		if err != nil {
			return err
		}
		b.AppendKey(key, nv)
		return nil
	})
	if err != nil {
		return bson.RawValue{}, err
	}
	return bson.RawValue{Type: v.Type, Value: b.Build()}, nil
}
