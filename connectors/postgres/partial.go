package postgres

import (
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// applyPartial returns doc with the fields of set set and the paths of
// unset removed, with the semantics of MongoDB's $set and $unset: dotted
// paths reach into embedded documents (created when missing) and arrays
// (by index), a new field goes last, an existing one keeps its place, and
// unsetting an array element sets it to null.
//
// dropMeta is for documents of tables with columns: a partial update that
// changes column c without giving its exact text (MetaField.c) makes the
// text in doc's MetaField stale, so it is removed.
func applyPartial(doc, set bson.Raw, unset []string, dropMeta bool) (bson.Raw, error) {
	var d bson.D
	if err := bson.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("read document: %w", err)
	}
	var setElems []bson.RawElement
	if len(set) > 0 {
		var err error
		if setElems, err = set.Elements(); err != nil {
			return nil, fmt.Errorf("read fields to set: %w", err)
		}
	}
	if dropMeta {
		given := map[string]bool{}
		touched := map[string]bool{}
		for _, e := range setElems {
			k := e.Key()
			if k == MetaField {
				return nil, fmt.Errorf("a partial update sets %s as a whole; set %s.<column> instead", MetaField, MetaField)
			}
			if col, ok := strings.CutPrefix(k, MetaField+"."); ok {
				given[col] = true
				continue
			}
			touched[strings.SplitN(k, ".", 2)[0]] = true
		}
		for _, p := range unset {
			if !strings.HasPrefix(p, MetaField+".") && p != MetaField {
				touched[strings.SplitN(p, ".", 2)[0]] = true
			}
		}
		for col := range touched {
			if !given[col] {
				d = unsetPath(d, []string{MetaField, col})
			}
		}
		d = dropEmptyMeta(d)
	}
	for _, e := range setElems {
		var v any
		if err := e.Value().Unmarshal(&v); err != nil {
			return nil, fmt.Errorf("read field %q: %w", e.Key(), err)
		}
		var err error
		if d, err = setPath(d, e.Key(), strings.Split(e.Key(), "."), v); err != nil {
			return nil, err
		}
	}
	for _, p := range unset {
		d = unsetPath(d, strings.Split(p, "."))
	}
	if dropMeta {
		d = dropEmptyMeta(d)
	}
	return bson.Marshal(d)
}

func dropEmptyMeta(d bson.D) bson.D {
	for i, e := range d {
		if e.Key == MetaField {
			if m, ok := e.Value.(bson.D); ok && len(m) == 0 {
				return append(d[:i:i], d[i+1:]...)
			}
		}
	}
	return d
}

func setPath(d bson.D, full string, path []string, v any) (bson.D, error) {
	for i, e := range d {
		if e.Key != path[0] {
			continue
		}
		if len(path) == 1 {
			d[i].Value = v
			return d, nil
		}
		nv, err := setIn(e.Value, full, path[1:], v)
		if err != nil {
			return nil, err
		}
		d[i].Value = nv
		return d, nil
	}
	if len(path) == 1 {
		return append(d, bson.E{Key: path[0], Value: v}), nil
	}
	sub, err := setPath(bson.D{}, full, path[1:], v)
	if err != nil {
		return nil, err
	}
	return append(d, bson.E{Key: path[0], Value: sub}), nil
}

// setIn sets path inside a document or array value.
func setIn(cur any, full string, path []string, v any) (any, error) {
	switch c := cur.(type) {
	case bson.D:
		return setPath(c, full, path, v)
	case bson.A:
		i, err := strconv.Atoi(path[0])
		if err != nil || i < 0 {
			return nil, fmt.Errorf("cannot set %q: %q is not an index of an array", full, path[0])
		}
		for len(c) <= i {
			c = append(c, nil)
		}
		if len(path) == 1 {
			c[i] = v
			return c, nil
		}
		if c[i] == nil {
			c[i] = bson.D{}
		}
		nv, err := setIn(c[i], full, path[1:], v)
		if err != nil {
			return nil, err
		}
		c[i] = nv
		return c, nil
	}
	return nil, fmt.Errorf("cannot set %q: %q is a %T, not a document or an array", full, path[0], cur)
}

func unsetPath(d bson.D, path []string) bson.D {
	for i, e := range d {
		if e.Key != path[0] {
			continue
		}
		if len(path) == 1 {
			return append(d[:i:i], d[i+1:]...)
		}
		d[i].Value = unsetIn(e.Value, path[1:])
		return d
	}
	return d
}

func unsetIn(cur any, path []string) any {
	switch c := cur.(type) {
	case bson.D:
		return unsetPath(c, path)
	case bson.A:
		i, err := strconv.Atoi(path[0])
		if err != nil || i < 0 || i >= len(c) {
			return c
		}
		if len(path) == 1 {
			c[i] = nil
			return c
		}
		c[i] = unsetIn(c[i], path[1:])
		return c
	}
	return cur
}
