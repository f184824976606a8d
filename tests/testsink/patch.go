package testsink

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// maxArrayPad bounds how far past its end a $set may extend an array, so a
// bad path cannot allocate without limit.
const maxArrayPad = 1 << 20

// applyPartial applies a partial update to doc (nil when the document does
// not exist) and returns the new document. The fields of set are dotted
// paths; unset lists dotted paths to remove. Unchanged parts keep their
// exact bytes.
func applyPartial(doc bson.Raw, id bson.RawValue, set bson.Raw, unset []string) (bson.Raw, error) {
	var t *tree
	if doc == nil {
		t = &tree{elems: []elem{{key: "_id", val: id}}}
	} else {
		var err error
		if t, err = parseTree(doc, false); err != nil {
			return nil, fmt.Errorf("stored document: %w", err)
		}
	}
	if len(set) > 0 {
		elems, err := set.Elements()
		if err != nil {
			return nil, fmt.Errorf("fields to set: %w", err)
		}
		for _, e := range elems {
			path := strings.Split(e.Key(), ".")
			if path[0] == "_id" {
				continue // an _id never changes
			}
			if err := t.set(path, e.Value()); err != nil {
				return nil, fmt.Errorf("set %q: %w", e.Key(), err)
			}
		}
	}
	for _, f := range unset {
		if strings.IndexByte(f, 0) >= 0 {
			return nil, fmt.Errorf("unset %q: field name holds a NUL byte", f)
		}
		path := strings.Split(f, ".")
		if path[0] == "_id" {
			continue
		}
		t.unset(path)
	}
	return t.appendTo(nil), nil
}

// tree is a document or array being edited. Only the nodes along edited
// paths are expanded; the other values stay raw bytes.
type tree struct {
	elems []elem
	array bool
}

type elem struct {
	key string
	val bson.RawValue
	sub *tree // non-nil once an embedded document or array is expanded
}

func parseTree(doc []byte, array bool) (*tree, error) {
	elems, err := bson.Raw(doc).Elements()
	if err != nil {
		return nil, err
	}
	t := &tree{elems: make([]elem, len(elems)), array: array}
	for i, e := range elems {
		t.elems[i] = elem{key: e.Key(), val: e.Value()}
	}
	return t, nil
}

// arrayIndex parses a canonical non-negative decimal array index.
func arrayIndex(s string) (int, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func (t *tree) find(key string) int {
	if t.array {
		if i, ok := arrayIndex(key); ok && i < len(t.elems) {
			return i
		}
		return -1
	}
	for i := range t.elems {
		if t.elems[i].key == key {
			return i
		}
	}
	return -1
}

// child returns the expanded value of e, or nil if it is not a document or
// an array.
func (e *elem) child() (*tree, error) {
	if e.sub != nil {
		return e.sub, nil
	}
	var err error
	switch e.val.Type {
	case bson.TypeEmbeddedDocument:
		e.sub, err = parseTree(e.val.Value, false)
	case bson.TypeArray:
		e.sub, err = parseTree(e.val.Value, true)
	}
	return e.sub, err
}

func (t *tree) set(path []string, v bson.RawValue) error {
	key := path[0]
	i := -1
	if t.array {
		idx, ok := arrayIndex(key)
		if !ok {
			// A field name into an array: the array becomes a document with
			// its elements under "0", "1", ... and the new field.
			t.array = false
			for j := range t.elems {
				t.elems[j].key = strconv.Itoa(j)
			}
		} else {
			if idx > len(t.elems)+maxArrayPad {
				return fmt.Errorf("array index %d is too far past the end (%d elements)", idx, len(t.elems))
			}
			for len(t.elems) <= idx {
				t.elems = append(t.elems, elem{val: bson.RawValue{Type: bson.TypeNull}})
			}
			i = idx
		}
	}
	if i < 0 {
		if i = t.find(key); i < 0 {
			t.elems = append(t.elems, elem{key: key})
			i = len(t.elems) - 1
		}
	}
	e := &t.elems[i]
	if len(path) == 1 {
		e.val, e.sub = v, nil
		return nil
	}
	sub, err := e.child()
	if err != nil {
		return err
	}
	if sub == nil {
		// Missing or not a container: replaced by a new document.
		e.sub = &tree{}
		sub = e.sub
	}
	return sub.set(path[1:], v)
}

func (t *tree) unset(path []string) {
	i := t.find(path[0])
	if i < 0 {
		return
	}
	e := &t.elems[i]
	if len(path) == 1 {
		if t.array {
			// As in MongoDB, unsetting an array element leaves a null, so
			// later indexes keep their meaning.
			e.val, e.sub = bson.RawValue{Type: bson.TypeNull}, nil
			return
		}
		t.elems = append(t.elems[:i], t.elems[i+1:]...)
		return
	}
	if sub, err := e.child(); err == nil && sub != nil {
		sub.unset(path[1:])
	}
}

// appendTo appends the BSON encoding of t to dst. Keys of an expanded array
// are renumbered 0, 1, ...
func (t *tree) appendTo(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for i := range t.elems {
		e := &t.elems[i]
		typ := e.val.Type
		if e.sub != nil {
			typ = bson.TypeEmbeddedDocument
			if e.sub.array {
				typ = bson.TypeArray
			}
		}
		dst = append(dst, byte(typ))
		if t.array {
			dst = strconv.AppendInt(dst, int64(i), 10)
		} else {
			dst = append(dst, e.key...)
		}
		dst = append(dst, 0)
		if e.sub != nil {
			dst = e.sub.appendTo(dst)
		} else {
			dst = append(dst, e.val.Value...)
		}
	}
	dst = append(dst, 0)
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}
